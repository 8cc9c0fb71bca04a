"""A preallocated replay buffer that keeps termination and time-limit truncation apart."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Batch(NamedTuple):
    """A minibatch of transitions; float tensors except `terminated`, which is bool."""

    obs: Tensor  # (batch, obs_dim)
    actions: Tensor  # (batch, act_dim), in [-1, 1]
    rewards: Tensor  # (batch,)
    next_obs: Tensor  # (batch, obs_dim)
    terminated: Tensor  # (batch,) true terminal: no bootstrap
    truncated: Tensor  # (batch,) time limit: bootstrap from next_obs as usual


class ReplayBuffer:
    """Ring buffer of `capacity` transitions, allocated once on `device`.

    `state_dict()` holds only tensors and ints, so it round-trips through
    `torch.load(..., weights_only=True)`.
    """

    def __init__(self, obs_dim: int, act_dim: int, capacity: int, device: str = "cpu") -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        f32 = {"dtype": torch.float32, "device": self.device}
        self.obs = torch.zeros(capacity, obs_dim, **f32)
        self.actions = torch.zeros(capacity, act_dim, **f32)
        self.rewards = torch.zeros(capacity, **f32)
        self.next_obs = torch.zeros(capacity, obs_dim, **f32)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.position = 0  # next slot to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        """Store one transition (arrays or tensors of shape (obs_dim,) and (act_dim,))."""
        i = self.position
        self.obs[i] = torch.as_tensor(obs, dtype=torch.float32)
        self.actions[i] = torch.as_tensor(action, dtype=torch.float32)
        self.rewards[i] = float(reward)
        self.next_obs[i] = torch.as_tensor(next_obs, dtype=torch.float32)
        self.terminated[i] = bool(terminated)
        self.truncated[i] = bool(truncated)
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Uniform sample with replacement; the generator must live on the CPU."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(self.size, (batch_size,), generator=generator).to(self.device)
        return Batch(
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.terminated[idx],
            self.truncated[idx],
        )

    _FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")

    def state_dict(self) -> dict:
        """The filled part only, so a checkpoint grows with the data, not the capacity."""
        state = {name: getattr(self, name)[: self.size].cpu() for name in self._FIELDS}
        state.update(position=self.position, size=self.size, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict`. With the same capacity the ring's layout is kept exactly (so
        sampling resumes identically); with another capacity the newest transitions are kept,
        oldest first."""
        size, position = state["size"], state["position"]
        order = torch.arange(size)
        if state["capacity"] != self.capacity:
            if size == state["capacity"]:  # the saved ring had wrapped: unroll it, oldest first
                order = torch.roll(order, -position)
            order = order[-self.capacity :]
            size, position = order.numel(), order.numel() % self.capacity
        for name in self._FIELDS:
            getattr(self, name)[:size] = state[name][order].to(self.device)
        self.size, self.position = size, position
