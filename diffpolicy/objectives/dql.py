"""Diffusion-QL (Wang et al., ICLR 2023): behaviour cloning plus Q maximisation through the
sampling chain."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffpolicy.nets.averaging import frozen
from diffpolicy.objectives.bc import bc_loss
from diffpolicy.objectives.common import policy_actions
from diffpolicy.samplers import Sampler


def dql_loss(
    denoiser: nn.Module,
    critic: nn.Module,
    sampler: Sampler,
    obs: Tensor,
    actions: Tensor,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """BC loss + eta * (-mean Q(s, a_pi)) / mean |Q|, backpropagating through the whole sampler.

    a_pi is drawn from N(0, I) through the differentiable chain. The |Q| normaliser is detached,
    as in the paper, so eta is scale-free. The critic's parameters get no gradient.
    """
    bc, metrics = bc_loss(denoiser, sampler.schedule, obs, actions, sampler.prediction, generator)
    _, a_pi = policy_actions(
        denoiser, sampler, obs, actions.shape[-1], differentiable=True, generator=generator
    )
    with frozen(critic):
        q = critic(obs, a_pi)  # (members, batch)
    q = q.mean(dim=0) if q.ndim == 2 else q
    q_loss = -q.mean() / q.abs().mean().detach().clamp(min=1e-6)
    loss = bc + eta * q_loss
    metrics.update({"dql_q_loss": q_loss.detach(), "q_policy": q.mean().detach()})
    return loss, metrics
