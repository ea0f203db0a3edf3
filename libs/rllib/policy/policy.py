"""``PolicySpec``: one policy's (module's) class, spaces and config overrides."""

import dataclasses


@dataclasses.dataclass
class PolicySpec:
    """``multi_agent(policies={"p1": PolicySpec(), "p2": PolicySpec(config={"gamma": 0.9})})``.

    Spaces left as None are taken from the env (from an agent mapped to the policy).
    """
    policy_class: type = None
    observation_space: object = None
    action_space: object = None
    config: dict = None


__all__ = ["PolicySpec"]
