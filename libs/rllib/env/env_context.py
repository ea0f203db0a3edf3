"""``EnvContext``: the ``env_config`` dict an env creator receives, plus where it runs."""


class EnvContext(dict):
    """``env_config`` with ``worker_index`` (0 = local), ``num_workers`` and ``vector_index``::

        def creator(env_config):
            return MyEnv(seed=env_config.worker_index * 100 + env_config.vector_index)
    """

    def __init__(self, env_config, worker_index=0, vector_index=0, num_workers=0):
        super().__init__(env_config or {})
        self.worker_index = worker_index
        self.vector_index = vector_index
        self.num_workers = num_workers

    def copy_with_overrides(self, env_config=None, worker_index=None, vector_index=None):
        return EnvContext(dict(self) if env_config is None else env_config,
                          self.worker_index if worker_index is None else worker_index,
                          self.vector_index if vector_index is None else vector_index,
                          self.num_workers)


__all__ = ["EnvContext"]
