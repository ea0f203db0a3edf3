"""minray.air.session: the AIR session functions, which are minray.train's::

    from minray.air import session
    session.report({"loss": loss}, checkpoint=ckpt)
    shard = session.get_dataset_shard("train")
"""

from minray.train import get_checkpoint, get_context, get_dataset_shard, report


def get_world_rank():
    return get_context().get_world_rank()


def get_world_size():
    return get_context().get_world_size()


def get_local_rank():
    return get_context().get_local_rank()


def get_local_world_size():
    return get_context().get_local_world_size()


def get_node_rank():
    return get_context().get_node_rank()


def get_trial_name():
    return get_context().get_trial_name()


def get_trial_id():
    return get_context().get_trial_id()


def get_trial_dir():
    return get_context().get_trial_dir()


def get_experiment_name():
    return get_context().get_experiment_name()


__all__ = ["get_checkpoint", "get_context", "get_dataset_shard", "get_experiment_name",
           "get_local_rank", "get_local_world_size", "get_node_rank", "get_trial_dir",
           "get_trial_id", "get_trial_name", "get_world_rank", "get_world_size", "report"]
