"""Q-score matching (Psenka et al., ICML 2024): regress the policy's score onto alpha * grad_a Q.

Only one denoiser call is differentiated; no gradient reaches the critic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from diffpolicy.nets.averaging import frozen
from diffpolicy.objectives.common import noised_actions
from diffpolicy.schedules import NoiseSchedule, Prediction, check_prediction


@dataclass(frozen=True)
class QSMConfig:
    """Switches of the QSM loss. The defaults are the QSM reference implementation's."""

    alpha: float = 50.0
    """Inverse temperature M_q: the score target is alpha * grad_a Q."""
    target: Literal["eps", "score"] = "eps"
    """"eps" (reference): -eps_theta is regressed onto alpha * grad_a Q at every noise level, so the
    implied score is alpha * grad_a Q / sqrt(1 - abar_t). "score": the score itself is regressed
    onto alpha * grad_a Q at every level (eps target -sqrt(1 - abar_t) * alpha * grad_a Q)."""
    critic_reduction: Literal["mean", "min"] = "mean"
    """How the ensemble's members combine before the gradient (reference: mean of the two)."""
    grad_normalization: Literal["none", "batch_mean"] = "none"
    """"batch_mean" divides grad_a Q by its mean L2 norm over the batch (scale-free alpha)."""
    clip_actions_for_grad: bool = False
    """Evaluate grad_a Q at the noised actions clipped to [-1, 1], where the critic was trained."""

    def __post_init__(self) -> None:
        import math

        alpha = self.alpha
        if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"qsm.alpha = {alpha!r}: must be a finite number > 0")
        for name, value, valid in (
            ("target", self.target, ("eps", "score")),
            ("critic_reduction", self.critic_reduction, ("mean", "min")),
            ("grad_normalization", self.grad_normalization, ("none", "batch_mean")),
        ):
            if value not in valid:
                raise ValueError(f"qsm.{name} = {value!r}: must be one of: {', '.join(valid)}")
        if not isinstance(self.clip_actions_for_grad, bool):
            raise ValueError(
                f"qsm.clip_actions_for_grad = {self.clip_actions_for_grad!r}: must be true or false"
            )


def action_gradient(
    critic: nn.Module, obs: Tensor, actions: Tensor, reduction: str = "mean"
) -> tuple[Tensor, Tensor]:
    """grad_a of the reduced Q at `actions`, detached; the critic's parameters get no gradient.

    Returns (grad (batch, act_dim), reduced Q (batch,)).
    """
    a = actions.detach().requires_grad_(True)
    with torch.enable_grad(), frozen(critic):
        q = critic(obs, a)
        if q.ndim == 2:  # (members, batch)
            q = critic.reduce(q, reduction)
        (grad,) = torch.autograd.grad(q.sum(), a)
    return grad.detach(), q.detach()


def qsm_loss(
    denoiser: nn.Module,
    critic: nn.Module,
    schedule: NoiseSchedule,
    obs: Tensor | None,
    actions: Tensor,
    config: QSMConfig = QSMConfig(),
    prediction: Prediction = "eps",
    generator: torch.Generator | None = None,
    alpha: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The QSM actor loss on a batch of (replay) actions.

    actions: (batch, act_dim) in [-1, 1] are forward-noised to a_t at t ~ U{0..T-1}; the target
    score is alpha * grad_a Q(obs, a_t), expressed in the denoiser's parameterisation. alpha:
    config.alpha unless given (a scalar tensor from `AdaptiveTemperature`, say).
    """
    if actions.ndim != 2:
        raise ValueError(
            f"qsm_loss: actions must be (batch, act_dim), got shape {tuple(actions.shape)}"
        )
    if actions.shape[0] == 0:  # the mean over no samples is NaN
        raise ValueError(f"qsm_loss: the batch is empty (actions {tuple(actions.shape)})")
    if obs is not None and (obs.ndim != 2 or obs.shape[0] != actions.shape[0]):
        raise ValueError(
            f"qsm_loss: obs {tuple(obs.shape)} and actions {tuple(actions.shape)} must be "
            "(batch, obs_dim) and (batch, act_dim) with the same batch"
        )
    check_prediction(prediction)
    a_t, t, _ = noised_actions(schedule, actions, generator)
    a_q = a_t.clamp(-1.0, 1.0) if config.clip_actions_for_grad else a_t
    grad, q = action_gradient(critic, obs, a_q, config.critic_reduction)
    grad_norm = grad.norm(dim=-1).mean()
    if config.grad_normalization == "batch_mean":
        grad = grad / (grad_norm + 1e-6)
    score = (config.alpha if alpha is None else alpha) * grad
    if config.target == "eps":
        score = score / (1.0 - schedule.alpha_bar(t, a_t, validate=False)).sqrt()
    target = schedule.convert(score, a_t, t, "score", prediction, validate=False)
    loss = (denoiser(a_t, t, obs) - target).pow(2).mean()
    metrics = {  # tensors: the logger reads them when it writes, not every update
        "qsm_loss": loss.detach(),
        "grad_q_norm": grad_norm,
        "q_at_noised": q.mean(),
        "noised_out_of_bounds": (a_t.abs() > 1.0).float().mean(),
    }
    return loss, metrics
