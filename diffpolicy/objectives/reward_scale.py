"""A running reward scale, so that an agent's units do not depend on the env's reward units.

The critic learns from r / s, with s a bias-corrected exponential moving average of the batch
mean of |r| over the replay batches it is trained on:

    m_k = (1 - rho) m_{k-1} + rho mean_batch |r|,  w_k = (1 - rho) w_{k-1} + rho,  s_k = m_k / w_k

(m_0 = w_0 = 0; s_1 is the first batch's mean |r|). s is equivariant, s(c r) = c s(r) for c > 0,
so rewards multiplied by any c give the critic the same targets (to float rounding) and Q, grad Q
and QSM's temperature keep their units. Rewards of about 1 per step keep their size: the MuJoCo
locomotion tasks' Q-values stay where their presets were tuned, while the [0, 1] rewards of
DeepMind Control, often near 0 early on, are scaled up.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

TINY = 1e-8
"""Floor of s (all-zero rewards so far): keeps r / s finite."""


class RunningRewardScale(nn.Module):
    """s above, as buffers (saved with the agent's state). No host read: `normalise` is tensor
    arithmetic only."""

    def __init__(self, rate: float = 1e-3) -> None:
        super().__init__()
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate must lie in (0, 1], got {rate}")
        self.rate = rate
        self.register_buffer("mean_abs", torch.zeros(()))
        self.register_buffer("weight", torch.zeros(()))

    @property
    def scale(self) -> Tensor:
        """s, the current scale (a 0-d tensor; 1 before any batch)."""
        average = self.mean_abs / self.weight.clamp_min(TINY)
        unseen = torch.ones_like(self.mean_abs)
        return torch.where(self.weight > 0, average, unseen).clamp_min(TINY)

    def update(self, rewards: Tensor) -> None:
        """One step of the average with this batch's rewards (batch,)."""
        with torch.no_grad():
            self.mean_abs.lerp_(rewards.abs().mean().to(self.mean_abs.dtype), self.rate)
            self.weight.lerp_(torch.ones_like(self.weight), self.rate)

    def normalise(self, rewards: Tensor) -> Tensor:
        """rewards / s, after stepping s with them, in the rewards' dtype (s is 0-d: it takes
        the rewards' dtype in the division)."""
        self.update(rewards)
        return rewards / self.scale
