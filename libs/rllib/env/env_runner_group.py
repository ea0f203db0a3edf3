"""``EnvRunnerGroup``: the local env runner plus ``num_env_runners`` runner actors.

    group.sync_weights(weights, global_vars)   # minray.put once, every runner loads it
    outputs = group.sample(num_timesteps=...)  # in parallel; dead actors are replaced

Fault tolerance (Ray's ``restart_failed_env_runners=True``): a runner actor
that dies (its process killed, ``RayActorError``) is recreated with the same
index and the latest weights; its share of this round is dropped and the
others' samples are used.  An exception raised by the env itself is not a
runner failure and reaches the caller.
"""

import logging

import minray
from minray.exceptions import GetTimeoutError, RayActorError

from .env_runner import SingleAgentEnvRunner
from .multi_agent_env_runner import MultiAgentEnvRunner

logger = logging.getLogger(__name__)


def runner_class(multi_agent):
    return MultiAgentEnvRunner if multi_agent else SingleAgentEnvRunner


class EnvRunnerGroup:
    """A local runner (when needed) and remote runner actors built from one spec."""

    def __init__(self, make_spec, num_env_runners, local=True, num_cpus_per_env_runner=1,
                 restart_failed=True, max_restarts=1000, multi_agent=False,
                 start_timeout_s=180.0):
        self._make_spec = make_spec  # worker_index -> RunnerSpec
        self._cls = runner_class(multi_agent)
        self._num_cpus = num_cpus_per_env_runner
        self.restart_failed = restart_failed
        self.max_restarts = max_restarts
        self.num_restarts = 0
        self._weights_ref = None
        self._global_vars = None
        self.local_env_runner = self._cls(make_spec(0)) if local else None
        self._actor_cls = None
        self._remote = {}
        for index in range(1, num_env_runners + 1):
            self._remote[index] = self._start(index)
        if self._remote:  # fail fast (a bad env raises here, not on the first sample)
            self._wait_started(start_timeout_s)

    def _wait_started(self, timeout_s):
        refs = [r.ping.remote() for r in self._remote.values()]
        try:
            minray.get(refs, timeout=timeout_s)
        except GetTimeoutError:
            self.stop()
            raise GetTimeoutError(
                f"{len(refs)} env-runner actors did not start within {timeout_s:.0f}s. Each "
                f"needs {self._num_cpus} CPU(s) (num_cpus_per_env_runner); the cluster has "
                f"{minray.available_resources().get('CPU', 0)} free now. Lower "
                "num_env_runners, set num_cpus_per_env_runner=0, or give minray.init() more "
                "CPUs.") from None

    def _start(self, index):
        if self._actor_cls is None:
            self._actor_cls = minray.remote(num_cpus=self._num_cpus)(self._cls)
        actor = self._actor_cls.remote(self._make_spec(index))
        if self._weights_ref is not None:
            actor.set_weights.remote(self._weights_ref, self._global_vars)
        return actor

    @property
    def num_remote_env_runners(self):
        return len(self._remote)

    @property
    def num_healthy_remote_workers(self):
        return len(self._remote)

    def remote_env_runners(self):
        return dict(self._remote)

    def sync_weights(self, weights, global_vars=None):
        if self.local_env_runner is not None:
            self.local_env_runner.set_weights(weights, global_vars)
        if self._remote:
            self._weights_ref = minray.put(weights)
            self._global_vars = global_vars
            for actor in self._remote.values():
                actor.set_weights.remote(self._weights_ref, global_vars)

    def _replace(self, index, error):
        if not self.restart_failed or self.num_restarts >= self.max_restarts:
            raise error
        self.num_restarts += 1
        logger.warning("env runner %d died (%s); starting a replacement", index, error)
        try:
            minray.kill(self._remote[index])
        except Exception:  # noqa: BLE001 - it is already gone
            pass
        self._remote[index] = self._start(index)

    def foreach_env_runner(self, fn, local_env_runner=True):
        """``[fn(runner) ...]`` on the local runner (if any and asked for) and every actor."""
        out = []
        if local_env_runner and self.local_env_runner is not None:
            out.append(fn(self.local_env_runner))
        refs = {i: a.apply.remote(fn) for i, a in self._remote.items()}
        for index, ref in refs.items():
            try:
                out.append(minray.get(ref))
            except RayActorError as error:
                self._replace(index, error)
        return out

    def sample(self, num_timesteps=None, num_episodes=None, explore=True, random_actions=False,
               use_local=None):
        """Sample on every remote runner (or the local one when there are none).

        ``num_timesteps`` / ``num_episodes`` are totals, split over the runners.
        """
        if not self._remote or use_local:
            return [self.local_env_runner.sample(num_timesteps, num_episodes, explore,
                                                 random_actions)]
        for _attempt in range(3):
            outputs = self.collect(self.sample_async(num_timesteps, num_episodes, explore,
                                                     random_actions))
            if outputs:
                return outputs
        raise RuntimeError("every env runner died three times in a row while sampling; see the "
                           "runners' logs for the cause.")

    def sample_async(self, num_timesteps=None, num_episodes=None, explore=True,
                     random_actions=False):
        """Start ``sample`` on every remote runner; ``collect`` the returned refs."""
        k = max(1, len(self._remote))
        per_t = None if num_timesteps is None else -(-num_timesteps // k)
        per_e = None if num_episodes is None else -(-num_episodes // k)
        return {i: a.sample.remote(per_t, per_e, explore, random_actions)
                for i, a in self._remote.items()}

    def collect(self, refs):
        """The outputs of ``sample_async``'s refs; a dead runner is replaced and skipped."""
        outputs = []
        for index, ref in refs.items():
            try:
                outputs.append(minray.get(ref))
            except RayActorError as error:
                self._replace(index, error)
        return outputs

    def stop(self):
        if self.local_env_runner is not None:
            self.local_env_runner.stop()
        for actor in self._remote.values():
            try:
                minray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._remote = {}


__all__ = ["EnvRunnerGroup"]
