"""Parameter averaging: the Polyak update of target networks and an EMA of a model."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * online, parameters and float buffers alike.

    tau = 1 copies online into target; tau = 0 leaves target unchanged.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    targets, onlines = list(_floats(target)), list(_floats(online))
    if len(targets) != len(onlines):
        raise ValueError(f"target has {len(targets)} float tensors, online {len(onlines)}")
    if targets:
        # One fused call for every tensor instead of a Python loop of small lerps.
        with torch.no_grad():
            torch._foreach_lerp_(targets, onlines, tau)


def _floats(module: nn.Module) -> Iterator[torch.Tensor]:
    yield from module.parameters()
    yield from (b for b in module.buffers() if b.is_floating_point())


class EMA(nn.Module):
    """An exponential moving average of a model's weights, with warm-up.

    decay_k = min(max_decay, (1 + k) / (10 + k)) at update k, so early averages are not dominated
    by the random initialisation. `model` is the averaged copy: act with it, train the online one.
    """

    def __init__(self, online: nn.Module, max_decay: float = 0.995) -> None:
        super().__init__()
        if not 0.0 <= max_decay < 1.0:
            raise ValueError(f"max_decay must lie in [0, 1), got {max_decay}")
        self.model = copy.deepcopy(online).requires_grad_(False)
        self.max_decay = max_decay
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        # A host copy of num_updates, so an update never reads the buffer back (a device sync);
        # refreshed from the buffer when a state dict is loaded.
        self._count = 0
        self.register_load_state_dict_post_hook(EMA._sync_count)

    @staticmethod
    def _sync_count(module: EMA, incompatible_keys) -> None:
        module._count = int(module.num_updates)

    def decay(self) -> float:
        k = self._count
        return min(self.max_decay, (1 + k) / (10 + k))

    def update(self, online: nn.Module) -> None:
        soft_update(self.model, online, 1.0 - self.decay())
        self.num_updates += 1
        self._count += 1


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Temporarily stop gradients from reaching `module`'s parameters (inputs still get them)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


@contextmanager
def training(module: nn.Module) -> Iterator[nn.Module]:
    """Temporarily put `module` in training mode (batch statistics), restoring its mode after."""
    was_training = module.training
    module.train(True)
    try:
        yield module
    finally:
        module.train(was_training)
