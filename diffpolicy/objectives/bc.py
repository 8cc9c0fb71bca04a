"""Behaviour cloning: the denoising loss on dataset actions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffpolicy.objectives.common import noised_actions
from diffpolicy.schedules import NoiseSchedule, Prediction, check_prediction


def bc_loss(
    denoiser: nn.Module,
    schedule: NoiseSchedule,
    obs: Tensor | None,
    actions: Tensor,
    prediction: Prediction = "eps",
    generator: torch.Generator | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean squared error of the denoiser's prediction at noised actions against the truth.

    The target is the true noise ("eps"), the clean action ("x0"), v, or the conditional score
    -eps / sqrt(1 - abar) ("score"). obs: (batch, obs_dim) or None; actions: (batch, act_dim);
    weights: (batch,) per-action weights of the squared errors (QVPO), or None for 1.
    """
    check_prediction(prediction)
    a_t, t, eps = noised_actions(schedule, actions, generator)
    target = schedule.convert(eps, a_t, t, "eps", prediction, validate=False)
    errors = (denoiser(a_t, t, obs) - target).pow(2)
    if weights is not None:
        errors = errors * weights.unsqueeze(-1)
    loss = errors.mean()
    return loss, {"bc_loss": loss.detach()}
