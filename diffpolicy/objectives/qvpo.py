"""Q-weighted variational policy optimisation (QVPO; Ding et al., NeurIPS 2024, arXiv 2405.16173).

The denoising loss on the policy's own best action per state, weighted by its advantage, plus the
same loss towards uniform actions (the paper's entropy regulariser), in one formula:

    L = mean over the rows [chosen ; uniform] of  w * || eps_theta(a_t, t, s) - eps ||^2 / d
      chosen:  a* = argmax_j Q(s, a_j) of N draws a_j ~ pi(. | s);  w = Q(s, a*) - V(s)
      uniform: U actions u ~ U[-1, 1]^d per state;                  w = omega (Q(s, a*) - V(s))

with V(s) = mean_j Q(s, a_j), Q the minimum over the critic's members: the reference's default
weight transformation "qadv", the advantage clipped at 0 (which the best draw never goes below,
so no clip is needed). The squared error is in the denoiser's parameterisation (`bc_loss`); the
mean runs over the chosen and uniform rows together, as in the reference implementation
(github.com/wadx2019/qvpo, agent/qvpo.py and agent/q_transform.py). Defaults are the
reference's: N = 64, U = 10, omega = 0.02.

Differences from the reference: the agent acts with its sampler (the reference acts with the best
of 4 draws by Q; `eval_best_of` does that at evaluation only); one gradient step per update on the
agent's optimiser, without the reference's gradient-norm clipping.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from diffpolicy.objectives.bc import bc_loss
from diffpolicy.objectives.common import policy_actions
from diffpolicy.samplers import Sampler

UNIFORM_PER_STATE = 10
"""Uniform actions per state in the entropy regulariser (the reference's)."""


def advantage_weights(q: Tensor) -> tuple[Tensor, Tensor]:
    """q: (batch, n) values of n draws per state -> (index of the best draw (batch,), its
    weight Q(s, a*) - mean_j Q(s, a_j) (batch,))."""
    best, index = q.max(dim=1)
    return index, best - q.mean(dim=1)


def qvpo_loss(
    denoiser: nn.Module,
    critic: nn.Module,
    sampler: Sampler,
    obs: Tensor,
    act_dim: int,
    samples: int = 64,
    entropy_weight: float = 0.02,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The QVPO actor loss on a batch of states obs (batch, obs_dim); the critic gets no
    gradient, nor does the sampling of the candidates."""
    batch = obs.shape[0]
    with torch.no_grad():
        obs_n, draws = policy_actions(denoiser, sampler, obs, act_dim, samples, generator=generator)
        q = rearrange(critic.reduce(critic(obs_n, draws), "min"), "(b n) -> b n", n=samples)
        index, weight = advantage_weights(q)
        chosen = rearrange(draws, "(b n) d -> b n d", n=samples)[torch.arange(batch), index]
        uniform = torch.rand(
            (batch * UNIFORM_PER_STATE, act_dim), generator=generator, device=obs.device
        )
        uniform = uniform.to(obs.dtype) * 2 - 1
    obs_u = obs.repeat_interleave(UNIFORM_PER_STATE, dim=0)
    weight_u = entropy_weight * weight.repeat_interleave(UNIFORM_PER_STATE)
    loss, _ = bc_loss(
        denoiser,
        sampler.schedule,
        torch.cat([obs, obs_u]),
        torch.cat([chosen, uniform]),
        sampler.prediction,
        generator,
        weights=torch.cat([weight, weight_u]),
    )
    metrics = {
        "qvpo_loss": loss.detach(),
        "qvpo_weight": weight.mean(),
        "q_policy": q.mean(),
    }
    return loss, metrics
