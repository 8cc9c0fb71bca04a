"""A QSM temperature that adapts: alpha tuned online so that the policy's spread meets a target.

SAC tunes its entropy coefficient toward a target entropy. A diffusion policy has no tractable
entropy, but its spread does: two independent actions a, a' for the same state have
E[(a - a')^2] / 2 = Var(a) per dimension, so the mean of (a - a')^2 / 2 over states and action
dimensions is an unbiased estimate of the policy's mean per-dimension variance, whatever its
shape. The controller moves log alpha by the gradient of
    -log alpha * (log spread - log target_std)
(a larger alpha, a colder policy exp(alpha Q), when the policy is wider than the target), with
Adam as SAC does. For a Gaussian with SAC's target entropy of -1 nat per action dimension the
per-dimension std is exp(-1) / sqrt(2 pi e) = 0.089 (`SAC_EQUIVALENT_STD`). The same controller
tunes an entropy coefficient toward a target entropy (DIME, DACER): `step_error` with the
entropy's shortfall, target - entropy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SAC_EQUIVALENT_STD = math.exp(-1.0) / math.sqrt(2.0 * math.pi * math.e)
"""The std of a 1-D Gaussian whose differential entropy is -1 nat (SAC's target per dimension)."""


def paired_spread(first: Tensor, second: Tensor) -> Tensor:
    """Root of the mean per-dimension variance of a policy, from two independent samples per
    state: sqrt(mean((first - second)^2) / 2). first, second: (batch, act_dim)."""
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(
            f"paired_spread needs two (batch, act_dim) samples of one shape, got "
            f"{tuple(first.shape)} and {tuple(second.shape)}"
        )
    return ((first - second).square().mean() / 2).sqrt()


class AdaptiveTemperature(nn.Module):
    """log alpha as a parameter with its own Adam; `alpha` is what the QSM loss scales by, at most
    `max_alpha` when one is given. target_std None: no spread target, only `step_error`."""

    def __init__(
        self,
        initial_alpha: float,
        target_std: float | None,
        lr: float = 3e-4,
        max_alpha: float | None = None,
    ) -> None:
        super().__init__()
        if not (math.isfinite(initial_alpha) and initial_alpha > 0):
            raise ValueError(f"initial alpha must be a finite number > 0, got {initial_alpha}")
        if target_std is not None and not (math.isfinite(target_std) and target_std > 0):
            raise ValueError(f"target std must be a finite number > 0, got {target_std}")
        if max_alpha is not None and not (math.isfinite(max_alpha) and max_alpha >= initial_alpha):
            raise ValueError(
                f"max alpha must be a finite number >= the initial alpha {initial_alpha}, "
                f"got {max_alpha}"
            )
        self.target_std = target_std
        # A bound for targets the policy cannot reach, where alpha would otherwise grow without
        # end (a short Langevin chain's spread has a floor: docs, Theory).
        self.max_log_alpha = math.log(max_alpha) if max_alpha is not None else None
        self.log_alpha = nn.Parameter(torch.tensor(math.log(initial_alpha)))
        # fused, as the agent's optimisers: no host read of the step count (test_no_host_sync).
        self.optimizer = torch.optim.Adam([self.log_alpha], lr=lr, fused=True)

    @property
    def alpha(self) -> Tensor:
        """The current alpha, detached (a tensor: reading it would stall an accelerator)."""
        return self.log_alpha.detach().exp()

    def step(self, spread: Tensor) -> dict[str, Tensor]:
        """One Adam step of log alpha toward spread == target_std; returns metrics (tensors)."""
        if self.target_std is None:
            raise ValueError("this temperature has no target std: step it with step_error")
        metrics = self.step_error(spread.detach().log() - math.log(self.target_std))
        return {**metrics, "action_spread": spread.detach()}

    def step_error(self, error: Tensor) -> dict[str, Tensor]:
        """One Adam step of log alpha down the gradient of -log alpha * error: alpha grows while
        the error is positive. Returns {"alpha": the new alpha}."""
        loss = -self.log_alpha * error.detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.max_log_alpha is not None:
            with torch.no_grad():
                self.log_alpha.clamp_(max=self.max_log_alpha)
        return {"alpha": self.alpha}
