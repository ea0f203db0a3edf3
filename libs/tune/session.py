"""What a trainable calls from inside a trial: ``tune.report``, ``tune.get_checkpoint``,
``tune.get_context``.

The trial worker (trial_worker.py) installs one ``_Session`` per running trial
in its process; ``report`` hands metrics to it, and the worker ships them to the
driver.  Called outside a trial, these functions raise with a hint.
"""

_session = None


def _set_session(session):
    global _session
    _session = session


def _current(name):
    if _session is None:
        raise RuntimeError(f"tune.{name}() was called outside a Tune trial. Call it from the "
                           "trainable function that you pass to tune.Tuner(...) or tune.run(...).")
    return _session


def report(metrics, *, checkpoint=None, checkpoint_dir_name=None):
    """Report one result (a dict of metrics) and optionally a checkpoint::

        def train(config):
            for epoch in range(10):
                tune.report({"loss": 1.0 / (epoch + 1)})
    """
    if not isinstance(metrics, dict):
        raise TypeError(f"tune.report() takes a dict of metrics, got "
                        f"{type(metrics).__name__}; write tune.report({{'score': score}}).")
    _current("report").report(metrics, checkpoint, checkpoint_dir_name)


def get_checkpoint():
    """The checkpoint to resume from (after a failure, restore or PBT exploit), or None::

        checkpoint = tune.get_checkpoint()
        start = 0
        if checkpoint:
            with checkpoint.as_directory() as d:
                start = int(open(os.path.join(d, "epoch")).read()) + 1
    """
    return _current("get_checkpoint").checkpoint


class TuneContext:
    """Facts about the running trial: ``tune.get_context().get_trial_id()``."""

    def __init__(self, info):
        self._info = info

    def get_trial_id(self):
        return self._info["trial_id"]

    def get_trial_name(self):
        return self._info["trial_name"]

    def get_trial_dir(self):
        return self._info["trial_dir"]

    def get_trial_resources(self):
        return dict(self._info.get("resources") or {})

    def get_experiment_name(self):
        return self._info["experiment_name"]

    # A Tune trial is one process; a minray.train worker's session fills these in.
    def get_world_size(self):
        return self._info.get("world_size", 1)

    def get_world_rank(self):
        return self._info.get("world_rank", 0)

    def get_local_rank(self):
        return self._info.get("local_rank", 0)


def get_context():
    """A ``TuneContext`` for the running trial (ids, trial dir, resources)."""
    return TuneContext(_current("get_context").info)
