"""DACER against its formulas: the loss is -min_i Q_i at the chain's action plus alpha * lambda
noise, clipped; the gradient runs through the chain; the agent explores with alpha * lambda noise
and moves alpha toward the target entropy every `dacer_entropy_every` actor steps."""

from __future__ import annotations

import pytest
import torch
from known_critics import TwoCentres, min_q

from diffpolicy.nets import Denoiser
from diffpolicy.objectives.dacer import dacer_loss, policy_entropy
from diffpolicy.objectives.mixture_entropy import estimate_entropy
from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer
from diffpolicy.samplers import Clipping, DDPMSampler
from diffpolicy.schedules import make_schedule

torch.set_num_threads(1)
OBS, ACT, BATCH = 3, 2, 32
TINY = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 16}


def _setup(seed=0):
    torch.manual_seed(seed)
    denoiser = Denoiser(OBS, ACT, hidden=(16, 16), num_levels=5)
    sampler = DDPMSampler(make_schedule("vp", 5), variance="large", clipping=Clipping())
    obs = torch.randn(BATCH, OBS)
    return denoiser, sampler, obs


def _chain(denoiser, sampler, obs, seed):
    """The chain's output, drawn with the generator stream dacer_loss uses (x_T, then the chain's
    own noise, then the added noise)."""
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn((obs.shape[0], ACT), generator=g)
    return sampler.sample(denoiser, obs, x_T, generator=g), g


def test_loss_is_minus_min_q_at_the_noisy_clipped_action():
    denoiser, sampler, obs = _setup()
    std = 0.7
    loss, metrics = dacer_loss(
        denoiser, TwoCentres(), sampler, obs, ACT, std, torch.Generator().manual_seed(3)
    )
    chain, g = _chain(denoiser, sampler, obs, 3)
    actions = (chain + std * torch.randn(chain.shape, generator=g)).clamp(-1, 1)
    q = min_q(actions)
    assert loss.item() == pytest.approx(-q.mean().item(), rel=1e-5)
    assert set(metrics) == {"dacer_loss", "q_policy"}
    assert metrics["dacer_loss"].item() == loss.item()
    assert metrics["q_policy"].item() == pytest.approx(q.mean().item(), rel=1e-5)


def test_gradient_runs_through_the_chain_to_every_layer():
    denoiser, sampler, obs = _setup()
    loss, _ = dacer_loss(denoiser, TwoCentres(), sampler, obs, ACT, 0.1)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in denoiser.parameters())


def test_policy_entropy_is_the_mixture_estimate_of_the_noisy_actions():
    denoiser, sampler, obs = _setup()
    samples, std = 50, 0.2
    g = torch.Generator().manual_seed(4)
    got = policy_entropy(denoiser, sampler, obs[:4], ACT, samples, std, g)
    g = torch.Generator().manual_seed(4)
    obs_n = obs[:4].repeat_interleave(samples, dim=0)
    chain = sampler.sample(denoiser, obs_n, torch.randn((4 * samples, ACT), generator=g), g)
    actions = (chain + std * torch.randn(chain.shape, generator=g)).clamp(-1, 1)
    expected = estimate_entropy(actions.reshape(4, samples, ACT)).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def _buffer():
    buffer = ReplayBuffer(OBS, ACT, 64, "cpu")
    g = torch.Generator().manual_seed(0)
    for _ in range(64):
        obs, nxt = torch.randn(OBS, generator=g), torch.randn(OBS, generator=g)
        buffer.add(obs, torch.rand(ACT, generator=g) * 2 - 1, 1.0, nxt, False, False)
    return buffer


def test_exploration_noise_is_alpha_times_lambda():
    agent = Agent(OBS, ACT, AgentConfig(objective="dacer", dacer_alpha=2.0, **TINY))
    noisy = agent._explore(torch.zeros(200_000, ACT), torch.Generator().manual_seed(0))
    assert noisy.std().item() == pytest.approx(2.0 * 0.15, rel=0.01)


@pytest.mark.parametrize(("target", "direction"), [(5.0, 1), (-20.0, -1)])
def test_alpha_moves_toward_the_target_entropy_on_estimate_steps_only(target, direction):
    """A target above the estimate raises alpha (more noise), one below lowers it; between the
    estimates (every 2nd actor step here) alpha stays."""
    cfg = AgentConfig(
        objective="dacer",
        dacer_target_entropy=target,
        dacer_entropy_every=2,
        dacer_entropy_samples=20,
        **TINY,
    )
    agent = Agent(OBS, ACT, cfg)
    buffer = _buffer()
    alphas = [agent.temperature.alpha.item()]
    for k in range(3):
        metrics = agent.update(buffer.sample(16, torch.Generator().manual_seed(k)))
        alphas.append(agent.temperature.alpha.item())
        assert ("entropy_gmm" in metrics) == (k % 2 == 0)
    assert direction * (alphas[1] - alphas[0]) > 0
    assert alphas[2] == alphas[1]
    assert direction * (alphas[3] - alphas[2]) > 0
