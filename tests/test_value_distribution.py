"""The categorical (HL-Gauss) value critic against its definition: the projected target
distribution, the expected value, the cross-entropy and its gradient, and the TD losses that
fit it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from diffpolicy.nets import CriticEnsemble, HLGauss
from diffpolicy.objectives import crossq_td_loss, td_loss
from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer
from diffpolicy.rl.run.validation import ConfigError


def _binned_gaussian_by_quadrature(support: HLGauss, y: float) -> torch.Tensor:
    """Each bin's share of the Normal(y, sigma^2) mass inside the support, by the trapezoid rule
    on the density (an independent computation of the same integral)."""
    pieces = []
    for lo, hi in zip(support.edges[:-1].tolist(), support.edges[1:].tolist(), strict=True):
        x = torch.linspace(lo, hi, 2001, dtype=torch.float64)
        density = torch.exp(-0.5 * ((x - y) / support.sigma) ** 2)
        pieces.append(torch.trapezoid(density, x))
    mass = torch.stack(pieces)
    return mass / mass.sum()


@settings(max_examples=40, deadline=None)
@given(
    low=st.floats(-100, 10),
    width=st.floats(0.5, 200),
    bins=st.integers(2, 40),
    where=st.floats(0, 1),
)
def test_target_distribution_is_the_gaussian_mass_of_each_bin(low, width, bins, where):
    support = HLGauss(low, low + width, bins)
    y = low + where * width
    expected = _binned_gaussian_by_quadrature(support, y)
    got = support.probabilities(torch.tensor([y], dtype=torch.float64))[0]
    assert torch.allclose(got, expected, atol=1e-6)
    assert support.sigma == pytest.approx(0.75 * width / bins)


@settings(max_examples=40, deadline=None)
@given(bins=st.integers(20, 200), where=st.floats(0.2, 0.8))
def test_the_target_distribution_has_the_target_as_its_mean(bins, where):
    """Away from the edges the binned Gaussian's mean over bin centres is y up to a periodic
    error of order exp(-2 pi^2 (sigma / w)^2) w = 1.5e-5 w at sigma = 0.75 w."""
    support = HLGauss(-50.0, 50.0, bins)
    y = torch.tensor([-50.0 + 100.0 * where], dtype=torch.float64)
    if not (support.v_min + 6 * support.sigma < y.item() < support.v_max - 6 * support.sigma):
        return
    mean = (support.probabilities(y) * support.centres.double()).sum()
    assert mean.item() == pytest.approx(y.item(), abs=1e-4 * 100.0 / bins)


def test_targets_outside_the_support_are_clamped_to_its_edges():
    support = HLGauss(-1.0, 1.0, 8)
    above, edge = support.probabilities(torch.tensor([7.0, 1.0]))
    assert torch.allclose(above, edge)
    assert above.argmax().item() == 7


def test_expectation_of_known_probabilities():
    support = HLGauss(0.0, 4.0, 4)  # centres 0.5, 1.5, 2.5, 3.5
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]]) + 1e-30)
    assert torch.allclose(support.expectation(logits), torch.tensor([2.5, 0.5]))


def test_cross_entropy_and_its_gradient():
    """The loss is torch's cross-entropy with probability targets, and its gradient in the
    logits is softmax(z) - p(y)."""
    support = HLGauss(-10.0, 10.0, 21)
    logits = torch.randn(5, 21, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([-12.0, -3.3, 0.0, 4.1, 9.9], dtype=torch.float64)
    p = support.probabilities(target)
    loss = support.cross_entropy(logits, target)
    assert torch.allclose(loss, F.cross_entropy(logits, p, reduction="none"))
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    assert torch.allclose(grad, torch.softmax(logits, -1) - p)


def test_a_distributional_critic_reads_q_as_the_expectation_of_its_logits():
    support = HLGauss(-5.0, 5.0, 11)
    critic = CriticEnsemble(3, 2, members=3, hidden=(8,), value_distribution=support)
    obs, act = torch.randn(6, 3), torch.randn(6, 2)
    logits = critic.outputs(obs, act)
    assert logits.shape == (3, 6, 11)
    assert torch.allclose(critic(obs, act), support.expectation(logits))


def _transitions(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    obs, next_obs = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)
    actions, next_actions = torch.rand(7, 2, generator=g), torch.rand(7, 2, generator=g)
    rewards = torch.randn(7, generator=g) * 3
    terminated = torch.tensor([0, 0, 1, 0, 0, 1, 0], dtype=torch.float32)
    return obs, actions, rewards, next_obs, terminated, next_actions


def _by_hand(critic, logits, rewards, terminated, q_next, gamma):
    target = rewards + gamma * (1 - terminated) * q_next.min(dim=0).values
    p = critic.value_distribution.probabilities(target)
    return sum(F.cross_entropy(member, p) for member in logits)


def test_td_loss_fits_the_target_networks_value_by_cross_entropy():
    torch.manual_seed(0)
    critic = CriticEnsemble(3, 2, hidden=(16,), value_distribution=HLGauss(-20.0, 20.0, 31))
    target_critic = CriticEnsemble(3, 2, hidden=(16,), value_distribution=HLGauss(-20.0, 20.0, 31))
    obs, actions, rewards, next_obs, terminated, next_actions = _transitions()
    loss, metrics = td_loss(
        critic, target_critic, lambda s: next_actions, obs, actions, rewards, next_obs,
        terminated, gamma=0.9,
    )  # fmt: skip
    q_next = target_critic(next_obs, next_actions)
    expected = _by_hand(critic, critic.outputs(obs, actions), rewards, terminated, q_next, 0.9)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert metrics["q_mean"].item() == pytest.approx(critic(obs, actions).mean().item(), rel=1e-5)


def test_crossq_loss_fits_the_detached_next_half_by_cross_entropy():
    torch.manual_seed(0)
    critic = CriticEnsemble(
        3, 2, hidden=(16,), batch_renorm=True, value_distribution=HLGauss(-20.0, 20.0, 31)
    )
    obs, actions, rewards, next_obs, terminated, next_actions = _transitions()
    critic.train()
    loss, metrics = crossq_td_loss(
        critic, lambda s: next_actions, obs, actions, rewards, next_obs, terminated, gamma=0.9
    )
    # Before the renorm warm-up ends a training pass normalises by the batch's own statistics,
    # so the same joint pass again gives the loss's logits.
    logits = critic.outputs(torch.cat([obs, next_obs]), torch.cat([actions, next_actions]))
    q_next = critic.values(logits[:, 7:])
    expected = _by_hand(critic, logits[:, :7], rewards, terminated, q_next, 0.9)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    q = critic.value_distribution.expectation(logits[:, :7])
    assert metrics["q_mean"].item() == pytest.approx(q.mean().item(), rel=1e-5)


TINY = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 8}


@pytest.mark.parametrize(
    "options",
    [
        {"critic_layer_norm": True},
        {"critic_batch_renorm": True, "critic_target_network": False},
        {"critic_input_renorm": True, "critic_layer_norm": True},
    ],
)
def test_the_agent_trains_a_distributional_critic(options):
    cfg = AgentConfig(**TINY, **options, critic_value_bins=21, critic_reward_bound=2.0, gamma=0.9)
    agent = Agent(3, 2, cfg)
    support = agent.critic.value_distribution
    assert (support.v_min, support.v_max) == pytest.approx((-20.0, 20.0))
    buffer = ReplayBuffer(3, 2, 32)
    for i in range(32):
        buffer.add(torch.randn(3), torch.rand(2) * 2 - 1, 1.0, torch.randn(3), i % 5 == 0, False)
    before = [p.detach().clone() for p in agent.critic.parameters()]
    metrics = agent.update(buffer.sample(8, torch.Generator().manual_seed(0)))
    assert math.isfinite(metrics["critic_loss"].item())
    assert any(
        not torch.equal(a, b) for a, b in zip(before, agent.critic.parameters(), strict=True)
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"critic_value_bins": 1}, "agent.critic_value_bins = 1"),
        ({"critic_value_bins": -3}, "agent.critic_value_bins = -3"),
        ({"critic_value_bins": 51, "critic_reward_bound": 0.0}, "agent.critic_reward_bound"),
        ({"critic_reward_bound": 1.0}, "needs critic_value_bins"),
        ({"critic_value_bins": 51, "gamma": 1.0}, "needs gamma < 1"),
    ],
)
def test_bad_value_distribution_options_are_one_line(options, field):
    with pytest.raises(ConfigError, match=field) as err:
        AgentConfig(**options)
    assert "\n" not in str(err.value)


def test_every_operation_reads_the_last_axis_of_an_ensembles_logits():
    """(members, batch, bins) logits, as the critic ensemble gives them, in float64: each
    member's slice is the 2-D computation checked above."""
    support = HLGauss(-3.0, 3.0, 7)
    logits = torch.randn(2, 5, 7, dtype=torch.float64)
    target = torch.linspace(-4.0, 4.0, 5, dtype=torch.float64)
    values, losses = support.expectation(logits), support.cross_entropy(logits, target)
    assert values.dtype == torch.float64 and values.shape == losses.shape == (2, 5)
    for m in range(2):
        assert torch.allclose(values[m], support.expectation(logits[m]))
        assert torch.allclose(losses[m], support.cross_entropy(logits[m], target))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_the_target_distribution_is_in_the_targets_dtype(dtype):
    support = HLGauss(-1.0, 1.0, 8)
    p = support.probabilities(torch.tensor([-0.3, 0.5], dtype=dtype))
    assert p.dtype == dtype
    assert torch.allclose(p.double().sum(-1), torch.ones(2, dtype=torch.float64), atol=0.05)


def test_targets_below_the_support_are_clamped_to_its_lower_edge():
    support = HLGauss(-1.0, 1.0, 8)
    below, edge = support.probabilities(torch.tensor([-7.0, -1.0]))
    assert torch.allclose(below, edge)
    assert below.argmax().item() == 0


def test_the_support_is_derived_state_only():
    """edges and centres follow from (v_min, v_max, bins): nothing goes into a state dict."""
    support = HLGauss(-1.0, 1.0, 4)
    assert support.state_dict() == {}
    assert support.centres.tolist() == [-0.75, -0.25, 0.25, 0.75]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, math.inf, 5), "need finite v_min < v_max, got [0.0, inf]"),
        ((-math.inf, 0.0, 5), "need finite v_min < v_max, got [-inf, 0.0]"),
        ((1.0, 1.0, 5), "need finite v_min < v_max, got [1.0, 1.0]"),
        ((2.0, 1.0, 5), "need finite v_min < v_max, got [2.0, 1.0]"),
        ((0.0, 1.0, 1), "need at least 2 bins, got 1"),
    ],
)
def test_a_bad_support_is_refused_with_its_values(args, message):
    with pytest.raises(ValueError) as err:
        HLGauss(*args)
    assert str(err.value) == message


def test_two_bins_are_enough():
    assert HLGauss(0.0, 1.0, 2).centres.tolist() == [0.25, 0.75]
