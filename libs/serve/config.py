"""Validated option records for Serve: a deployment's config, its autoscaling
policy and the HTTP proxy's options (Ray Serve 2.60's names and defaults).

    cfg = DeploymentConfig.from_options({"num_replicas": 2, "max_ongoing_requests": 10})
    cfg.num_replicas            # 2

One validated record is shared by ``@serve.deployment``, ``.options()`` and the
controller, so a bad value is refused once, where the user wrote it.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000


@dataclass
class AutoscalingConfig:
    """``autoscaling_config={...}``: replicas follow the ongoing requests.

    desired = ceil(mean ongoing requests over look_back_period_s / target_ongoing_requests),
    clamped to [min_replicas, max_replicas]; a higher (lower) desire must hold for
    upscale_delay_s (downscale_delay_s) before the controller acts on it.
    """
    min_replicas: int = 1
    max_replicas: int = 1
    initial_replicas: Optional[int] = None
    target_ongoing_requests: float = 2.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    metrics_interval_s: float = 10.0
    look_back_period_s: float = 30.0
    upscaling_factor: Optional[float] = None
    downscaling_factor: Optional[float] = None
    smoothing_factor: float = 1.0

    @classmethod
    def from_value(cls, value):
        if value is None or isinstance(value, AutoscalingConfig):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"autoscaling_config must be a dict or AutoscalingConfig, "
                            f"got {type(value).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"Unknown autoscaling_config field(s) {sorted(unknown)}; "
                             f"valid fields are {sorted(known)}.")
        cfg = cls(**value)
        if cfg.min_replicas < 0:
            raise ValueError(f"min_replicas must be >= 0, got {cfg.min_replicas}.")
        if cfg.max_replicas < max(cfg.min_replicas, 1):
            raise ValueError(f"max_replicas must be >= max(min_replicas, 1), got "
                             f"max_replicas={cfg.max_replicas}, min_replicas={cfg.min_replicas}.")
        if cfg.target_ongoing_requests <= 0:
            raise ValueError(f"target_ongoing_requests must be > 0, got "
                             f"{cfg.target_ongoing_requests}.")
        if cfg.initial_replicas is not None and not (
                cfg.min_replicas <= cfg.initial_replicas <= cfg.max_replicas):
            raise ValueError(f"initial_replicas must lie in [min_replicas, max_replicas], got "
                             f"{cfg.initial_replicas}.")
        return cfg


# The options that change a replica's code (a new version: rolling restart) versus
# the ones applied to running replicas (scale, reconfigure, limits).
CODE_OPTIONS = ("ray_actor_options",)

DEPLOYMENT_OPTIONS = {
    "name", "num_replicas", "autoscaling_config", "max_ongoing_requests",
    "max_queued_requests", "ray_actor_options", "user_config", "health_check_period_s",
    "health_check_timeout_s", "graceful_shutdown_timeout_s",
    "graceful_shutdown_wait_loop_s", "route_prefix", "version", "placement_group_bundles",
    "placement_group_strategy", "max_replicas_per_node", "logging_config",
    "request_router_config",
}


# What a replica's actor may be given through ray_actor_options (as Ray Serve).
RAY_ACTOR_OPTIONS = {"num_cpus", "num_gpus", "memory", "object_store_memory", "resources",
                     "accelerator_type", "runtime_env", "scheduling_strategy",
                     "label_selector"}


@dataclass
class DeploymentConfig:
    """The per-deployment settings (Ray's defaults)."""
    num_replicas: Optional[int] = 1
    autoscaling_config: Optional[AutoscalingConfig] = None
    max_ongoing_requests: int = 5
    max_queued_requests: int = -1
    ray_actor_options: Dict[str, Any] = field(default_factory=dict)
    user_config: Any = None
    health_check_period_s: float = 10.0
    health_check_timeout_s: float = 30.0
    graceful_shutdown_timeout_s: float = 20.0
    graceful_shutdown_wait_loop_s: float = 2.0

    @classmethod
    def from_options(cls, options, base=None):
        """A new config: ``base`` (or the defaults) updated with ``options``."""
        cfg = dataclasses.replace(base) if base is not None else cls()
        for key, value in options.items():
            if key in ("name", "route_prefix", "version", "placement_group_bundles",
                       "placement_group_strategy", "max_replicas_per_node",
                       "logging_config", "request_router_config"):
                continue
            if key == "autoscaling_config":
                value = AutoscalingConfig.from_value(value)
            setattr(cfg, key, value)
        if options.get("autoscaling_config") is not None:
            if isinstance(options.get("num_replicas"), int):
                raise ValueError("Manually setting num_replicas is not allowed when "
                                 "autoscaling_config is provided: pass one or the other.")
            cfg.num_replicas = None
        elif isinstance(options.get("num_replicas"), int):
            cfg.autoscaling_config = None
        if options.get("num_replicas") == "auto":
            cfg.num_replicas = None
            cfg.autoscaling_config = cfg.autoscaling_config or AutoscalingConfig(
                min_replicas=1, max_replicas=100, upscale_delay_s=30.0,
                downscale_delay_s=600.0)
        cfg.validate()
        return cfg

    def validate(self):
        if self.num_replicas is not None and (
                not isinstance(self.num_replicas, int) or self.num_replicas < 0):
            raise ValueError(f"num_replicas must be a non-negative int or 'auto', got "
                             f"{self.num_replicas!r}.")
        if not isinstance(self.max_ongoing_requests, int) or self.max_ongoing_requests < 1:
            raise ValueError(f"max_ongoing_requests must be an int >= 1, got "
                             f"{self.max_ongoing_requests!r}.")
        if not isinstance(self.max_queued_requests, int) or (
                self.max_queued_requests < 0 and self.max_queued_requests != -1):
            raise ValueError(f"max_queued_requests must be -1 (no limit) or an int >= 0, got "
                             f"{self.max_queued_requests!r}.")
        if not isinstance(self.ray_actor_options, dict):
            raise TypeError(f"ray_actor_options must be a dict, got "
                            f"{type(self.ray_actor_options).__name__}.")
        bad = set(self.ray_actor_options) - RAY_ACTOR_OPTIONS
        if bad:
            raise ValueError(f"Unknown ray_actor_options {sorted(bad)}; valid keys are "
                             f"{sorted(RAY_ACTOR_OPTIONS)}.")
        for key in ("health_check_period_s", "health_check_timeout_s",
                    "graceful_shutdown_timeout_s"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a number >= 0, got {value!r}.")

    def initial_target(self):
        """The replica count to start with."""
        if self.autoscaling_config is None:
            return self.num_replicas
        a = self.autoscaling_config
        return a.initial_replicas if a.initial_replicas is not None else a.min_replicas


@dataclass
class HTTPOptions:
    """``serve.start(http_options={"host": ..., "port": ...})``."""
    host: str = DEFAULT_HTTP_HOST
    port: int = DEFAULT_HTTP_PORT
    root_path: str = ""
    request_timeout_s: Optional[float] = None
    keep_alive_timeout_s: float = 5.0

    @classmethod
    def from_value(cls, value):
        if value is None:
            return cls()
        if isinstance(value, HTTPOptions):
            return value
        if not isinstance(value, dict):
            raise TypeError(f"http_options must be a dict, got {type(value).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = {k: v for k, v in value.items() if k not in known}
        ignored = {"location", "middlewares", "ssl_keyfile", "ssl_certfile"}
        bad = set(extra) - ignored
        if bad:
            raise ValueError(f"Unknown http_options field(s) {sorted(bad)}; valid fields are "
                             f"{sorted(known)}.")
        opts = cls(**{k: v for k, v in value.items() if k in known})
        if not isinstance(opts.port, int) or not 0 <= opts.port < 65536:
            raise ValueError(f"http_options port must be an int in [0, 65535], got "
                             f"{opts.port!r}.")
        return opts
