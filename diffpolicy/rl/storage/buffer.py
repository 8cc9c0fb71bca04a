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

    `added` counts every transition ever stored; the newest one sits in slot `position - 1`.
    `state_dict()` holds only tensors and ints, so it round-trips through
    `torch.load(..., weights_only=True)`; checkpoints of a training run store the ring's rows
    incrementally instead (`diffpolicy.rl.storage.chunks`).
    """

    FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")

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
        self.added = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        """Store one transition (arrays or tensors of shape (obs_dim,) and (act_dim,))."""
        i = self.position
        self.obs[i] = self._row("obs", obs)
        self.actions[i] = self._row("actions", action)
        self.rewards[i] = float(reward)
        self.next_obs[i] = self._row("next_obs", next_obs)
        self.terminated[i] = bool(terminated)
        self.truncated[i] = bool(truncated)
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def _row(self, name: str, value) -> Tensor:
        row = torch.as_tensor(value, dtype=torch.float32)
        expected = getattr(self, name).shape[1:]
        if row.shape != expected:
            raise ValueError(
                f"ReplayBuffer.add: {name} has shape {tuple(row.shape)}, expected {tuple(expected)}"
            )
        return row

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Uniform sample with replacement. The indices are drawn on the buffer's device (torch's
        global generator for that device), or on `generator`'s device when one is given. Drawing
        them on a GPU buffer's own device keeps the update free of a host-to-device copy, which
        would wait for the GPU."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        if batch_size < 1:
            raise ValueError(f"ReplayBuffer.sample: batch_size must be >= 1, got {batch_size}")
        device = self.device if generator is None else generator.device
        idx = torch.randint(self.size, (batch_size,), generator=generator, device=device)
        idx = idx.to(self.device)
        return Batch(*(getattr(self, name)[idx] for name in self.FIELDS))

    def storage(self) -> dict[str, Tensor]:
        """The ring's tensors by field name (capacity rows each; not copies)."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def state_dict(self) -> dict:
        """The filled part only, so a saved state grows with the data, not the capacity (a copy:
        saving a view would save the whole storage behind it)."""
        state = {name: getattr(self, name)[: self.size].cpu().clone() for name in self.FIELDS}
        state.update(position=self.position, size=self.size, capacity=self.capacity)
        state["added"] = self.added
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict`. With the same capacity the ring's layout is kept exactly (so
        sampling resumes identically); with another capacity the newest transitions are kept,
        oldest first."""
        order, size, position = ring_order(
            state["size"], state["position"], state["capacity"], self.capacity
        )
        for name in self.FIELDS:
            getattr(self, name)[:size] = state[name][order].to(self.device)
        self.size, self.position = size, position
        self.added = state.get("added", state["size"])  # states saved before issue 16 lack it


def ring_order(size: int, position: int, saved_capacity: int, capacity: int) -> tuple:
    """How to place a saved ring's `size` filled slots into a ring of `capacity`: returns
    (indices into the saved slots, new size, new position). The same capacity keeps the layout;
    another keeps the newest transitions, oldest first."""
    order = torch.arange(size)
    if saved_capacity == capacity:
        return order, size, position
    if size == saved_capacity:  # the saved ring had wrapped: unroll it, oldest first
        order = torch.roll(order, -position)
    order = order[-capacity:]
    return order, order.numel(), order.numel() % capacity
