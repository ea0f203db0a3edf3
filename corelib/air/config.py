"""minray.air.config: the AIR config records, which are minray.train's::

    from minray.air.config import ScalingConfig, RunConfig
"""

from minray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig

DatasetConfig = DataConfig

__all__ = ["CheckpointConfig", "DataConfig", "DatasetConfig", "FailureConfig", "RunConfig",
           "ScalingConfig"]
