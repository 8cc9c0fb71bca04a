"""The adaptive QSM temperature against closed forms.

The spread estimator: for independent draws a, a' of N(m, s^2) per dimension, E[(a - a')^2] / 2 =
s^2, so `paired_spread` of two such batches is s (up to sampling error) whatever the means.
The controller: a policy exp(alpha Q) with Q(a) = -A/2 |a|^2 is N(0, 1 / (alpha A)), so the alpha
at which its std equals the target s* is 1 / (A s*^2); the controller must settle there, from
above and from below. Unadjusted Langevin with step h samples N(0, 1 / (P (1 - h P / 2))) for
precision P (the chain's closed form, tests/test_langevin_temperature.py): its fixed point is
P = (1 - sqrt(1 - 2 h / s*^2)) / h.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from diffpolicy.objectives import AdaptiveTemperature, paired_spread
from diffpolicy.objectives.temperature import SAC_EQUIVALENT_STD
from diffpolicy.rl import Agent, ReplayBuffer
from diffpolicy.rl.agent.agent import AgentConfig
from diffpolicy.rl.agent.components import OBJECTIVES, make_sampler
from diffpolicy.samplers import Clipping, LangevinSampler
from diffpolicy.schedules import make_schedule


@pytest.mark.parametrize("std", [0.05, 0.3, 2.0])
def test_paired_spread_estimates_the_standard_deviation(std):
    g = torch.Generator().manual_seed(0)
    means = torch.randn(20_000, 3, generator=g) * 5  # per-state means differ; they cancel
    first = means + std * torch.randn(20_000, 3, generator=g)
    second = means + std * torch.randn(20_000, 3, generator=g)
    assert paired_spread(first, second).item() == pytest.approx(std, rel=0.02)


def test_sac_equivalent_std_has_minus_one_nat_of_entropy():
    entropy = 0.5 * math.log(2 * math.pi * math.e * SAC_EQUIVALENT_STD**2)
    assert entropy == pytest.approx(-1.0, abs=1e-12)


def _settle(initial_alpha, target, draw, steps=3000, lr=0.02):
    temperature = AdaptiveTemperature(initial_alpha, target, lr=lr)
    for _ in range(steps):
        first, second = draw(temperature.alpha)
        temperature.step(paired_spread(first, second))
    return temperature.alpha.item()


@pytest.mark.parametrize("initial_alpha", [1.0, 400.0])
def test_controller_settles_where_the_boltzmann_policy_has_the_target_std(initial_alpha):
    curvature, target = 4.0, 0.1
    g = torch.Generator().manual_seed(1)

    def exact(alpha):  # two draws per state from N(0, 1 / (alpha A))
        std = (alpha * curvature).rsqrt()
        return std * torch.randn(2, 4096, 2, generator=g)

    alpha = _settle(initial_alpha, target, exact)
    assert alpha == pytest.approx(1.0 / (curvature * target**2), rel=0.03)


def test_controller_settles_at_the_langevin_chains_closed_form():
    curvature, target, h, steps = 2.0, 0.2, 0.01, 400
    g = torch.Generator().manual_seed(2)

    def langevin(alpha):  # the chain on exp(alpha Q), from a wide start, run to stationarity
        x = torch.randn(2, 2048, 1, generator=g)
        for _ in range(steps):
            x = x - h * alpha * curvature * x + math.sqrt(2 * h) * torch.randn(x.shape, generator=g)
        return x

    alpha = _settle(30.0, target, langevin, steps=600, lr=0.03)
    precision = (1 - math.sqrt(1 - 2 * h / target**2)) / h
    assert alpha == pytest.approx(precision / curvature, rel=0.04)
    # ... and not at the exact Boltzmann answer, which differs by the O(h) term.
    assert abs(alpha - 1 / (curvature * target**2)) > 0.1 * alpha


def _agent_and_batch(target_std, **overrides):
    cfg = AgentConfig(
        actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32, sampler="langevin",
        alpha_target_std=target_std, alpha_lr=0.05, alpha_spread_states=16, **overrides,
    )  # fmt: skip
    torch.manual_seed(0)
    agent = Agent(3, 2, cfg)
    buffer = ReplayBuffer(3, 2, 64)
    for i in range(64):
        obs = torch.randn(3)
        buffer.add(
            obs.numpy(), torch.rand(2) * 2 - 1, float(i % 3), torch.randn(3).numpy(), False, False
        )
    return agent, buffer


@pytest.mark.parametrize("target_std, direction", [(1e-3, 1), (10.0, -1)])
def test_agent_moves_alpha_toward_the_target_and_qsm_uses_it(target_std, direction):
    # A policy far wider than 1e-3 must get colder (alpha up); one narrower than 10 warmer.
    agent, buffer = _agent_and_batch(target_std)
    before = agent.temperature.alpha.item()
    assert before == pytest.approx(50.0)
    for _ in range(5):
        metrics = agent.update(buffer.sample(32))
    after = agent.temperature.alpha.item()
    assert direction * (after - before) > 0
    assert metrics["alpha"].item() == pytest.approx(after)
    assert 0 < metrics["action_spread"].item() < 2


def test_a_bound_holds_alpha_where_an_unreachable_target_would_run_it_away():
    """A policy whose spread stays at 0.5 whatever alpha (a chain above its floor) against a
    target of 0.01: unbounded, alpha grows on every step; bounded, it reaches the bound and
    stays exactly there."""
    wide = torch.tensor(0.5)
    free = AdaptiveTemperature(50.0, 0.01, lr=0.1)
    bounded = AdaptiveTemperature(50.0, 0.01, lr=0.1, max_alpha=80.0)
    seen = []
    for _ in range(200):
        free.step(wide)
        seen.append(bounded.step(wide)["alpha"].item())
    assert free.alpha.item() > 1e6
    assert max(seen) == pytest.approx(80.0, rel=1e-6) and seen[-1] == pytest.approx(80.0, rel=1e-6)
    assert seen[0] < 80.0  # it climbs to the bound, not starts there
    # The bound stores nothing: once the policy is narrower than the target, alpha comes down as
    # soon as Adam's momentum turns (a few steps), as it would have without the bound.
    for _ in range(20):
        bounded.step(torch.tensor(1e-4))
    assert bounded.alpha.item() < 80.0


@pytest.mark.parametrize("max_alpha", [10.0, math.inf, math.nan])
def test_a_bound_below_the_start_or_not_finite_is_refused(max_alpha):
    with pytest.raises(ValueError, match="max alpha"):
        AdaptiveTemperature(50.0, 0.1, max_alpha=max_alpha)


def test_a_bound_at_the_start_makes_a_controller_that_can_only_warm():
    only_warmer = AdaptiveTemperature(50.0, 0.1, lr=0.1, max_alpha=50.0)
    assert only_warmer.step(torch.tensor(0.5))["alpha"].item() == pytest.approx(50.0)
    assert only_warmer.step(torch.tensor(1e-3))["alpha"].item() < 50.0


def test_the_agent_passes_its_bound_to_the_controller():
    agent, buffer = _agent_and_batch(1e-3, alpha_max=50.5)
    for _ in range(5):
        metrics = agent.update(buffer.sample(32))
    assert metrics["alpha"].item() == pytest.approx(50.5, rel=1e-6)


def test_alpha_and_its_optimiser_survive_a_checkpoint():
    agent, buffer = _agent_and_batch(1e-3)
    for _ in range(3):
        agent.update(buffer.sample(32))
    # A copy, as a checkpoint file gives: optimisers load state tensors without copying them.
    state = copy.deepcopy(agent.training_state())
    fresh, _ = _agent_and_batch(1e-3)
    fresh.load_training_state(state)
    assert fresh.temperature.alpha.item() == agent.temperature.alpha.item()
    batch = buffer.sample(32)
    torch.manual_seed(5)
    agent.update(batch)
    torch.manual_seed(5)
    fresh.update(batch)
    assert fresh.temperature.alpha.item() == agent.temperature.alpha.item()


def test_adaptive_options_are_refused_with_another_objective():
    with pytest.raises(ValueError, match="alpha_target_std"):
        AgentConfig(objective="dql", alpha_target_std=0.1)


# --- alpha_control: the tuned alpha in the loss, or as the chains' temperature ----------------
# A perfect QSM denoiser for Q(a) = -A/2 a^2: with the eps target and "unit" score units the chain
# reads score = -eps, so eps = drift_alpha * A * a makes the score drift_alpha * grad Q. In "loss"
# control the denoiser learns the tuned alpha (drift_alpha = alpha, temperature 1); in "chain"
# control it keeps qsm.alpha (drift_alpha = alpha_0) and the chain runs at alpha_0 / alpha.
# Unadjusted Langevin x <- x (1 - u) + sqrt(2 h T) z, u = h drift_alpha A, has stationary variance
# 2 h T / (u (2 - u)):
# - loss control: 2 / (alpha A (2 - h alpha A)), at least 2 h (at u = 1), and unstable past u = 2,
#   where the box-clipped chain bounces between the bounds: a target std below sqrt(2 h) cannot be
#   met, and the controller, seeing a wide chain, raises alpha without end (the runaway the README
#   reports on Hopper);
# - chain control: 2 / (alpha A (2 - h alpha_0 A)), falling in alpha for every alpha: one fixed
#   point, alpha* = 2 / (A s*^2 (2 - h alpha_0 A)).
CURVATURE, STEP, ALPHA_0 = 2.0, 0.01, 30.0


def _perfect_chain(drift_alpha, temperature):
    def denoise(x, t, cond):
        return drift_alpha * CURVATURE * x

    sampler = LangevinSampler(
        make_schedule("vp", 5), "eps", step_size=STEP, num_steps=60, clipping=Clipping(),
        score_units="unit", temperature=temperature,
    )  # fmt: skip
    return sampler, denoise


def _settle_mode(control, target, steps, seed=3):
    g = torch.Generator().manual_seed(seed)
    temperature = AdaptiveTemperature(ALPHA_0, target, lr=0.03)
    for _ in range(steps):
        alpha = temperature.alpha
        if control == "loss":
            sampler, denoise = _perfect_chain(alpha, 1.0)
        else:
            sampler, denoise = _perfect_chain(ALPHA_0, ALPHA_0 / alpha)
        x = sampler.sample(denoise, None, torch.randn(2 * 2048, 1, generator=g), generator=g)
        first, second = x.chunk(2)
        temperature.step(paired_spread(first, second))
    return temperature.alpha.item()


def test_chain_control_settles_at_its_closed_form_below_the_loss_controls_floor():
    target = 0.1  # below sqrt(2 h) = 0.141, the narrowest a loss-controlled chain can be
    alpha = _settle_mode("chain", target, steps=400)
    closed_form = 2 / (CURVATURE * target**2 * (2 - STEP * ALPHA_0 * CURVATURE))
    assert alpha == pytest.approx(closed_form, rel=0.04)


def test_loss_control_runs_away_where_the_target_is_below_its_floor():
    alpha = _settle_mode("loss", 0.1, steps=250)
    unstable_from = 2 / (STEP * CURVATURE)  # u = 2: the chain bounces between the bounds
    assert alpha > 10 * unstable_from


def _chain_agent(control=None, alpha=200.0):
    """A tiny Langevin agent; control None: alpha fixed at qsm.alpha = 50. Otherwise alpha is
    tuned and set to `alpha` (200: chain temperature 50 / 200 = 1/4)."""
    tuned = {} if control is None else {"alpha_target_std": 0.1, "alpha_control": control}
    cfg = AgentConfig(
        actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32, sampler="langevin", **tuned
    )
    torch.manual_seed(0)
    agent = Agent(3, 2, cfg)
    if control is not None:
        with torch.no_grad():
            agent.temperature.log_alpha.fill_(math.log(alpha))
    return agent


def test_chain_control_runs_every_chain_at_qsm_alpha_over_alpha():
    agent = _chain_agent("chain")
    assert agent.chain_temperature.item() == pytest.approx(0.25)
    obs = torch.randn(8, 3)
    cold = make_sampler(agent.cfg, temperature=0.25)
    reference = agent.policy(obs, torch.Generator().manual_seed(4), sampler=cold)
    acted = agent.act(obs, explore=False, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(acted, reference)
    # ... and at temperature 1 the same draw differs: the check can fail.
    warm = agent.policy(obs, torch.Generator().manual_seed(4), sampler=make_sampler(agent.cfg))
    assert not torch.allclose(acted, warm)
    # the target chain too (its exploration noise drawn from the global generator)
    torch.manual_seed(6)
    target = agent.target_actions(obs)
    torch.manual_seed(6)
    expected = agent._explore(agent.policy(obs, sampler=cold))
    torch.testing.assert_close(target, expected)


@pytest.mark.parametrize("control, scale", [("chain", 50.0), ("loss", 200.0)])
def test_the_qsm_target_scales_by_the_tuned_alpha_only_under_loss_control(control, scale):
    agent = _chain_agent(control)
    fixed = _chain_agent()  # the same weights, alpha fixed
    batch = _agent_and_batch(None)[1].sample(32)
    qsm = dataclasses.replace(fixed.cfg.qsm, alpha=scale)
    expected_cfg = dataclasses.replace(fixed.cfg, qsm=qsm)
    torch.manual_seed(8)
    loss, _ = OBJECTIVES["qsm"].loss(agent, batch)
    fixed.cfg = expected_cfg
    torch.manual_seed(8)
    expected, _ = OBJECTIVES["qsm"].loss(fixed, batch)
    torch.testing.assert_close(loss, expected)
