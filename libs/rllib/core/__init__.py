"""Core names shared by algorithms, learners and env runners."""

DEFAULT_MODULE_ID = "default_policy"
DEFAULT_AGENT_ID = "default_agent"
ALL_MODULES = "__all_modules__"


class Columns:
    """Batch column names (RLlib's ``Columns``)."""
    OBS = "obs"
    NEXT_OBS = "new_obs"
    ACTIONS = "actions"
    REWARDS = "rewards"
    TERMINATEDS = "terminateds"
    TRUNCATEDS = "truncateds"
    ACTION_LOGP = "action_logp"
    ACTION_DIST_INPUTS = "action_dist_inputs"
    VF_PREDS = "vf_preds"
    QF_PREDS = "qf_preds"


__all__ = ["ALL_MODULES", "Columns", "DEFAULT_AGENT_ID", "DEFAULT_MODULE_ID"]
