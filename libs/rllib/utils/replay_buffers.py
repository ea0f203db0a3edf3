"""Replay buffers for off-policy algorithms: uniform or prioritized (Schaul et al. 2016).

    buf = PrioritizedReplayBuffer(capacity=50_000, alpha=0.6, beta=0.4, seed=0)
    buf.add(transitions)                       # dict of equal-length numpy columns
    batch = buf.sample(32)                     # columns + "weights" + "indices"
    buf.update_priorities(batch["indices"], np.abs(td_errors))

Storage is a ring of preallocated numpy columns.  Priorities live in one array;
sampling draws indices with probability p_i^alpha / sum (numpy's choice over
the array: O(capacity) per batch, simple and fast enough at these sizes).
"""

import numpy as np


class ReplayBuffer:
    """Uniform replay over a ring of numpy columns."""

    def __init__(self, capacity=50_000, seed=None, **kwargs):
        self.capacity = int(capacity)
        self._cols = None
        self._next = 0
        self._size = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self):
        return self._size

    def add(self, batch):
        n = len(next(iter(batch.values())))
        if n == 0:
            return np.zeros(0, np.int64)
        if self._cols is None:
            self._cols = {k: np.zeros((self.capacity,) + np.asarray(v).shape[1:],
                                      np.asarray(v).dtype) for k, v in batch.items()}
        idx = (self._next + np.arange(n)) % self.capacity
        for k, v in batch.items():
            self._cols[k][idx] = v
        self._next = (self._next + n) % self.capacity
        self._size = min(self.capacity, self._size + n)
        return idx

    def _draw(self, n):
        return self._rng.integers(0, self._size, n)

    def sample(self, n, beta=None):
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer.")
        idx = self._draw(n)
        out = {k: v[idx] for k, v in self._cols.items()}
        out["indices"] = idx
        out["weights"] = np.ones(n, np.float32)
        return out

    def update_priorities(self, indices, priorities):
        pass

    def get_state(self):
        return {"cols": self._cols, "next": self._next, "size": self._size}

    def set_state(self, state):
        self._cols, self._next, self._size = state["cols"], state["next"], state["size"]


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay with importance-sampling weights."""

    def __init__(self, capacity=50_000, alpha=0.6, beta=0.4, epsilon=1e-6, seed=None, **kwargs):
        super().__init__(capacity, seed)
        self.alpha, self.beta, self.epsilon = alpha, beta, epsilon
        self._prio = np.zeros(self.capacity, np.float64)
        self._max_prio = 1.0

    def add(self, batch):
        idx = super().add(batch)
        self._prio[idx] = self._max_prio ** self.alpha
        return idx

    def sample(self, n, beta=None):
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer.")
        beta = self.beta if beta is None else beta
        p = self._prio[:self._size]
        probs = p / p.sum()
        idx = self._rng.choice(self._size, n, p=probs)
        weights = (self._size * probs[idx]) ** (-beta)
        weights /= (self._size * probs.min()) ** (-beta)  # max weight normalised to 1
        out = {k: v[idx] for k, v in self._cols.items()}
        out["indices"] = idx
        out["weights"] = weights.astype(np.float32)
        return out

    def update_priorities(self, indices, priorities):
        priorities = np.asarray(priorities, np.float64) + self.epsilon
        self._prio[indices] = priorities ** self.alpha
        self._max_prio = max(self._max_prio, float(priorities.max()))

    def get_state(self):
        state = super().get_state()
        state.update(prio=self._prio, max_prio=self._max_prio)
        return state

    def set_state(self, state):
        super().set_state(state)
        self._prio, self._max_prio = state["prio"], state["max_prio"]


def n_step_transitions(batch, n, gamma):
    """1-step rows (contiguous segments ending in terminated/truncated) -> n-step rows.

    Row t gets reward sum_{k<m} gamma^k r_{t+k}, new_obs of row t+m-1, its
    terminated flag, and ``discounts`` = gamma^m, where m <= n stops at a segment end.
    """
    rewards = np.asarray(batch["rewards"], np.float64)
    terms = np.asarray(batch["terminateds"], bool)
    ends = terms | np.asarray(batch["truncateds"], bool)
    size = len(rewards)
    out_r = np.zeros(size)
    last = np.arange(size)
    m = np.zeros(size, np.int64)
    active = np.ones(size, bool)
    for k in range(n):
        j = np.minimum(np.arange(size) + k, size - 1)
        step = active & (np.arange(size) + k < size)
        out_r[step] += (gamma ** k) * rewards[j[step]]
        last[step] = j[step]
        m[step] += 1
        active = step & ~ends[j]
    out = dict(batch)
    out["rewards"] = out_r.astype(np.float32)
    out["new_obs"] = np.asarray(batch["new_obs"])[last]
    out["terminateds"] = terms[last]
    out["discounts"] = (gamma ** m).astype(np.float32)
    return out


__all__ = ["PrioritizedReplayBuffer", "ReplayBuffer", "n_step_transitions"]
