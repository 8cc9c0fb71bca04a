"""Diffusion actor-critic with entropy regulator (DACER; Wang et al., NeurIPS 2024, arXiv
2405.15177): maximise Q through the whole denoising chain, with Gaussian noise whose scale a
temperature tunes toward a target entropy.

    L(theta) = -E_s min_i Q_i(s, clip(a_theta(s, x_T) + alpha * lambda * z, -1, 1)),
    alpha <- alpha - lr * d/d log alpha [ -log alpha * (H_target - H_gmm(pi)) ],

with a_theta the chain's output (x_T, z ~ N(0, I)) and H_gmm the Gaussian-mixture estimate of the
noisy policy's entropy (`mixture_entropy`), averaged over states. Defaults are those of the
authors' implementation (github.com/happy-yan/DACER-Diffusion-with-Online-RL,
relax/algorithm/dacer.py and relax/network/dacer.py): alpha starts at 3, lambda = 0.15,
H_target = -0.9 per action dimension, Adam with lr 0.03 on log alpha, the entropy estimated from
200 actions per state of the batch, every 10000th step.

Differences from that implementation: the entropy is re-estimated every `dacer_entropy_every`
actor steps (it counts updates, two per actor step); the mixture is fitted by 50 EM iterations
from sample-based starts instead of scikit-learn's k-means start and convergence test; the
critic is the agent's (the reference's is distributional, DSAC's).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from diffpolicy.nets.averaging import frozen
from diffpolicy.objectives.common import noisy_actions, policy_actions
from diffpolicy.objectives.mixture_entropy import estimate_entropy
from diffpolicy.samplers import Sampler


def dacer_loss(
    denoiser: nn.Module,
    critic: nn.Module,
    sampler: Sampler,
    obs: Tensor,
    act_dim: int,
    noise_std: float | Tensor,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """-mean Q (minimum over the critic's members) at the noisy chain actions, backpropagating
    through the whole sampler; the critic's parameters get no gradient."""
    _, chain = policy_actions(
        denoiser, sampler, obs, act_dim, differentiable=True, generator=generator
    )
    actions = noisy_actions(chain, noise_std, generator)
    with frozen(critic):
        q = critic.reduce(critic(obs, actions), "min")
    loss = -q.mean()
    return loss, {"dacer_loss": loss.detach(), "q_policy": q.mean().detach()}


def policy_entropy(
    denoiser: nn.Module,
    sampler: Sampler,
    obs: Tensor,
    act_dim: int,
    samples: int,
    noise_std: float | Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The Gaussian-mixture estimate of the noisy policy's entropy, averaged over the states of
    obs (batch, obs_dim), from `samples` actions per state: a scalar tensor."""
    with torch.no_grad():
        _, chain = policy_actions(denoiser, sampler, obs, act_dim, samples, generator=generator)
        actions = noisy_actions(chain, noise_std, generator)
        return estimate_entropy(rearrange(actions, "(b n) d -> b n d", n=samples)).mean()
