"""DIME's entropy bound against independent computations: per sample, against the Gaussian
kernels written out from the DDPM formulas with torch.distributions; in expectation, and its
gradient, on a one-dimensional one-step chain where both have closed forms; and the agent's
wiring (the chain it acts with, the temperature's direction)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from known_critics import TwoCentres, min_q
from torch import nn
from torch.distributions import Normal

from diffpolicy.nets import Denoiser
from diffpolicy.objectives.dime import chain_with_entropy_bound, dime_loss, gaussian_log_density
from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer
from diffpolicy.rl.agent.components import make_sampler
from diffpolicy.samplers import Clipping, DDPMSampler
from diffpolicy.schedules import NoiseSchedule, make_schedule

torch.set_num_threads(1)
F64 = torch.float64
FREE = Clipping(each_step=False, final=True)


class Linear(nn.Module):
    """A denoiser c * x_t + b * t (any parameterisation): known, and with a gradient in c."""

    def __init__(self, c: float, b: float = 0.0) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c, dtype=F64))
        self.b = b

    def forward(self, x, t, obs):
        return self.c * x + self.b * t.to(x.dtype).unsqueeze(-1)


def _by_hand(schedule: NoiseSchedule, eps_net, x_T, noises):
    """The chain and its bound from the DDPM formulas, for an "eps" denoiser over all levels."""
    abar = schedule.alpha_bars.to(F64)
    x, bound = x_T, -Normal(0.0, 1.0).log_prob(x_T).sum(-1)
    for t in reversed(range(schedule.num_steps)):
        a_t, a_prev = abar[t], abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=F64)
        beta = 1 - a_t / a_prev
        eps = eps_net(x, torch.full((x.shape[0],), t), None)
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * x) / (1 - a_t)
        x_prev = mean + beta.sqrt() * noises[schedule.num_steps - 1 - t]
        backward = Normal(mean, beta.sqrt()).log_prob(x_prev).sum(-1)
        forward = Normal((1 - beta).sqrt() * x_prev, beta.sqrt()).log_prob(x).sum(-1)
        bound = bound + forward - backward
        x = x_prev
    return x, bound


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 4), c=st.floats(-1.0, 1.0))
def test_bound_per_sample_is_the_kernels_log_ratio(seed, steps, c):
    schedule = make_schedule("vp", steps, dtype=F64)
    sampler = DDPMSampler(schedule, variance="large", clipping=FREE)
    net = Linear(c, 0.1)
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(5, 3, generator=g, dtype=F64)
    g_noise = torch.Generator().manual_seed(seed + 1)  # the chain's stream: one draw per step
    noises = [torch.randn(5, 3, generator=g_noise, dtype=F64) for _ in range(steps)]
    a0, bound = chain_with_entropy_bound(
        net, sampler, None, x_T, torch.Generator().manual_seed(seed + 1)
    )
    a0_hand, bound_hand = _by_hand(schedule, net, x_T, noises)
    torch.testing.assert_close(a0, a0_hand, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bound, bound_hand, rtol=1e-12, atol=1e-10)


BETA = 0.3
"""The one level of the one-step chain below."""


def _one_step(c: float, n: int, seed: int):
    """1-D chain with one level beta: an "x0" denoiser c * x_1 makes the reverse kernel
    N(c x_1, beta) (the posterior mean's x_t coefficient is 0 at the last step)."""
    sampler = DDPMSampler(
        NoiseSchedule(torch.tensor([BETA], dtype=F64)), "x0", variance="large", clipping=FREE
    )
    net = Linear(c)
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(n, 1, generator=g, dtype=F64)
    return net, chain_with_entropy_bound(net, sampler, None, x_T, g)


def _expected_bound(c: float) -> float:
    """E[l] = E[-log N(x1; 0, 1)] + E[log N(x1; r a0, beta)] - E[log N(a0; c x1, beta)], r =
    sqrt(1 - beta), a0 = c x1 + sqrt(beta) z: 1/2 log 2 pi + 1 - E[(x1 - r a0)^2] / (2 beta)
    with E[(x1 - r a0)^2] = (1 - r c)^2 + r^2 beta."""
    r = math.sqrt(1 - BETA)
    return 0.5 * math.log(2 * math.pi) + 1 - ((1 - r * c) ** 2 + r**2 * BETA) / (2 * BETA)


@pytest.mark.parametrize("c", [0.0, 0.8, 1.6])
def test_expected_bound_on_a_one_step_chain(c):
    _, (a0, bound) = _one_step(c, 400_000, 0)
    standard_error = bound.std().item() / math.sqrt(bound.numel())
    assert abs(bound.mean().item() - _expected_bound(c)) < 4 * standard_error
    # A lower bound on the entropy of a0 ~ N(0, c^2 + beta).
    assert _expected_bound(c) <= 0.5 * math.log(2 * math.pi * math.e * (c**2 + BETA))
    assert a0.var().item() == pytest.approx(c**2 + BETA, rel=0.01)


@pytest.mark.parametrize("c", [0.0, 0.8, 1.6])
def test_gradient_of_the_bound_on_a_one_step_chain(c):
    """d E[l] / dc = r (1 - r c) / beta, through the reparameterised chain."""
    net, (_, bound) = _one_step(c, 400_000, 1)
    bound.mean().backward()
    r = math.sqrt(1 - BETA)
    assert net.c.grad.item() == pytest.approx(r * (1 - r * c) / BETA, abs=0.02)


def test_loss_is_minus_alpha_bound_minus_min_q_at_the_clipped_action():
    schedule = make_schedule("vp", 3, dtype=F64)
    sampler = DDPMSampler(schedule, variance="large", clipping=FREE)
    net, obs, alpha = Linear(0.5, 0.2), torch.zeros(64, 4, dtype=F64), 0.3
    loss, metrics = dime_loss(net, TwoCentres(), sampler, obs, 2, alpha, _gen())
    g = _gen()
    x_T = torch.randn((64, 2), generator=g, dtype=F64)
    a0, bound = chain_with_entropy_bound(net, sampler, obs, x_T, g)
    a = a0.clamp(-1, 1)
    q = min_q(a)
    assert loss.item() == pytest.approx((-alpha * bound - q).mean().item(), rel=1e-9)
    assert set(metrics) == {"dime_loss", "entropy_bound", "q_policy"}
    assert metrics["dime_loss"].item() == loss.item()
    assert metrics["entropy_bound"].item() == pytest.approx(bound.mean().item(), rel=1e-9)
    assert metrics["q_policy"].item() == pytest.approx(q.mean().item(), rel=1e-9)


def _gen():
    return torch.Generator().manual_seed(9)


def test_the_bound_refuses_a_chain_clipped_at_every_step():
    sampler = DDPMSampler(make_schedule("vp", 3), variance="large", clipping=Clipping())
    with pytest.raises(ValueError) as err:
        chain_with_entropy_bound(Linear(0.5), sampler, None, torch.zeros(2, 2))
    assert str(err.value) == "the entropy bound needs a chain without each_step clipping"


@pytest.mark.parametrize("std", [0.3, "tensor"])
def test_gaussian_log_density_is_torch_distributions_summed_over_the_last_axis(std):
    """log N(x; mean, std^2 I) against torch.distributions.Normal, with a Python float std (as
    the chain's start uses) or a tensor of stds (as its kernels), on (2, 5, 3) samples."""
    g = torch.Generator().manual_seed(0)
    x, mean = (
        torch.randn(2, 5, 3, generator=g, dtype=F64),
        torch.randn(5, 3, generator=g, dtype=F64),
    )
    if std == "tensor":
        std = torch.rand(5, 3, generator=g, dtype=F64) + 0.1
    expected = Normal(mean, std).log_prob(x).sum(-1)
    torch.testing.assert_close(gaussian_log_density(x, mean, std), expected, rtol=1e-13, atol=0)


def test_agent_acts_with_the_trained_chain():
    """DIME's acting sampler is the chain of its loss: noise on the last step, states unclipped,
    the final sample clipped; no exploration noise on top."""
    cfg = AgentConfig(objective="dime", actor_hidden=(16, 16), critic_hidden=(16, 16))
    sampler = make_sampler(cfg)
    assert sampler.final_noise and sampler.clipping == FREE
    agent = Agent(3, 2, cfg)
    actions = torch.rand(1000, 2) * 2 - 1
    assert torch.equal(agent._explore(actions), actions)


def test_acting_sampler_draws_the_chain_of_the_loss():
    """Same x_T and noise stream: the acting sample is the loss's final state, clipped."""
    cfg = AgentConfig(objective="dime", actor_hidden=(16, 16), critic_hidden=(16, 16))
    torch.manual_seed(0)
    denoiser = Denoiser(3, 2, hidden=(16, 16), num_levels=cfg.diffusion_steps)
    obs, x_T = torch.randn(256, 3), torch.randn(256, 2) * 3
    sampler = make_sampler(cfg)
    acted = sampler.sample(denoiser, obs, x_T, torch.Generator().manual_seed(7))
    chain, _ = chain_with_entropy_bound(
        denoiser, sampler, obs, x_T, torch.Generator().manual_seed(7)
    )
    assert (chain.abs() > 1).any()  # the states are free; only the action is clipped
    assert torch.allclose(acted, chain.clamp(-1, 1), atol=1e-6)


@pytest.mark.parametrize(("target", "direction"), [(50.0, 1), (-50.0, -1)])
def test_alpha_moves_toward_the_target_entropy(target, direction):
    cfg = AgentConfig(
        objective="dime",
        dime_target_entropy=target,
        actor_hidden=(16, 16),
        critic_hidden=(16, 16),
        batch_size=16,
    )
    agent = Agent(3, 2, cfg)
    buffer = ReplayBuffer(3, 2, 32, "cpu")
    for _ in range(32):
        buffer.add(torch.randn(3), torch.rand(2) * 2 - 1, 1.0, torch.randn(3), False, False)
    before = agent.temperature.alpha.item()
    agent.update(buffer.sample(16))
    assert direction * (agent.temperature.alpha.item() - before) > 0


def test_fixed_alpha_without_a_target():
    cfg = AgentConfig(objective="dime", dime_target_entropy=None, dime_alpha=0.2)
    assert Agent(3, 2, cfg).temperature is None
