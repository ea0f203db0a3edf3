"""``Learner``: owns the trained RL modules and their optimizers; ``update`` runs the loss.

    learner = PPOLearner(config, module_specs, modules_to_train)
    stats = learner.update({"default_policy": batch}, timestep)   # {module_id: {...}}
    weights = learner.get_weights()                              # numpy, for env runners

Subclasses implement ``update_module(module_id, batch, timestep) -> stats``.
"""

import numpy as np
import torch

from ...utils.schedules import schedule_value


class Learner:
    def __init__(self, config, module_specs, modules_to_train):
        self.config = config
        self.modules = {mid: spec.build() for mid, spec in module_specs.items()}
        self.modules_to_train = set(modules_to_train)
        self.optimizers = {}
        for mid in self.modules_to_train:
            lr = schedule_value(self.module_config(mid).get("lr", config.lr), 0)
            self.optimizers[mid] = torch.optim.Adam(self.trainable_parameters(mid), lr=lr)
        self.lifetime_trained = {mid: 0 for mid in self.modules}
        self.build()

    def build(self):
        pass

    def module_config(self, mid):
        """Per-policy overrides (PolicySpec(config={...})) on top of the algorithm config."""
        return getattr(self.config, "_policy_overrides", {}).get(mid, {})

    def setting(self, mid, name):
        return self.module_config(mid).get(name, getattr(self.config, name))

    def trainable_parameters(self, mid):
        return list(self.modules[mid].parameters())

    def apply_gradients(self, mid, loss, timestep, params=None):
        opt = self.optimizers[mid]
        for group in opt.param_groups:
            group["lr"] = schedule_value(self.setting(mid, "lr"), timestep)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_clip = self.setting(mid, "grad_clip")
        norm = None
        if grad_clip:
            params = params or [p for g in opt.param_groups for p in g["params"]]
            if self.config.grad_clip_by == "value":
                torch.nn.utils.clip_grad_value_(params, grad_clip)
            else:
                norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
        opt.step()
        return norm

    def update(self, batches, timestep):
        stats = {}
        for mid, batch in batches.items():
            if mid not in self.modules_to_train or not len(batch["rewards"]):
                continue
            module_stats = self.update_module(mid, batch, timestep)
            size = len(batch["rewards"])
            self.lifetime_trained[mid] += size
            module_stats["num_module_steps_trained"] = size
            module_stats["num_module_steps_trained_lifetime"] = self.lifetime_trained[mid]
            module_stats["module_train_batch_size_mean"] = float(size)
            module_stats["default_optimizer_learning_rate"] = schedule_value(
                self.setting(mid, "lr"), timestep)
            stats[mid] = {k: (float(v) if isinstance(v, (torch.Tensor, np.floating)) else v)
                          for k, v in module_stats.items()}
        return stats

    def update_module(self, mid, batch, timestep):
        raise TypeError(f"{type(self).__name__} must define update_module(mid, batch, timestep).")

    def get_weights(self):
        return {mid: m.get_state() for mid, m in self.modules.items()}

    def get_state(self):
        return {"modules": {mid: m.state_dict() for mid, m in self.modules.items()},
                "optimizers": {mid: o.state_dict() for mid, o in self.optimizers.items()},
                "lifetime_trained": dict(self.lifetime_trained), "extra": self.extra_state()}

    def set_state(self, state):
        for mid, sd in state["modules"].items():
            self.modules[mid].load_state_dict(sd)
        for mid, sd in state["optimizers"].items():
            if mid in self.optimizers:
                self.optimizers[mid].load_state_dict(sd)
        self.lifetime_trained.update(state["lifetime_trained"])
        self.set_extra_state(state.get("extra") or {})

    def extra_state(self):
        return {}

    def set_extra_state(self, state):
        pass


def to_tensors(batch, keys=None):
    return {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()
            if keys is None or k in keys}


__all__ = ["Learner", "to_tensors"]
