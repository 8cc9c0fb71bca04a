"""QVPO's loss against hand computations: the advantage weights on a hand-made batch, the chosen
action and the weighting of the denoising loss with a stub sampler and critic whose values are
known, and the entropy regulariser's uniform actions by their known moments."""

from __future__ import annotations

import pytest
import torch
from known_critics import TwoCentres, min_q
from torch import nn

from diffpolicy.objectives.qvpo import UNIFORM_PER_STATE, advantage_weights, qvpo_loss
from diffpolicy.samplers import DDPMSampler
from diffpolicy.schedules import make_schedule

torch.set_num_threads(1)
F64 = torch.float64
B, N, D = 4, 3, 2


def test_advantage_weights_on_a_hand_made_batch():
    q = torch.tensor([[1.0, 3.0, 2.0], [0.0, -1.0, -2.0], [5.0, 5.0, 2.0]])
    index, weight = advantage_weights(q)
    assert index.tolist() == [1, 0, 0]
    assert weight.tolist() == pytest.approx([3.0 - 2.0, 0.0 + 1.0, 5.0 - 4.0])


class StubSampler:
    """Returns fixed draws whatever it is given: draw j of state b is DRAWS[b, j]."""

    prediction = "x0"
    schedule = make_schedule("vp", 5, dtype=F64)

    def __init__(self, draws: torch.Tensor) -> None:
        self.draws = draws.reshape(-1, draws.shape[-1])  # a state's draws adjacent

    def sample(self, denoiser, obs, x_T, generator=None, differentiable=False):
        assert x_T.shape == self.draws.shape and obs.shape[0] == x_T.shape[0]
        return self.draws


class Constant(nn.Module):
    """A denoiser predicting the clean action c everywhere ("x0" parameterisation)."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c, dtype=F64))

    def forward(self, a_t, t, obs):
        return self.c.expand_as(a_t)


def _gen():
    return torch.Generator().manual_seed(5)


def _draws():
    g = torch.Generator().manual_seed(0)
    return torch.rand(B, N, D, generator=g, dtype=F64) * 2 - 1


def _by_hand(draws):
    """The chosen draw and its weight, from the formula: argmax and max - mean of min_i Q_i."""
    q = min_q(draws)
    best = q.argmax(dim=1)
    return draws[torch.arange(draws.shape[0]), best], q.max(dim=1).values - q.mean(dim=1)


def test_loss_weights_the_chosen_draws_by_their_advantage():
    """omega = 0: a zero "x0" prediction misses the clean action a by a, so the loss is
    sum_b w_b mean_d(a*_b^2) over all B (1 + U) rows (the uniform rows weigh 0)."""
    draws = _draws()
    obs = torch.zeros(B, 1, dtype=F64)
    loss, metrics = qvpo_loss(Constant(0.0), TwoCentres(), StubSampler(draws), obs, D, N, 0.0)
    chosen, weight = _by_hand(draws)
    expected = (weight * chosen.square().mean(-1)).sum() / (B * (1 + UNIFORM_PER_STATE))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
    assert set(metrics) == {"qvpo_loss", "qvpo_weight", "q_policy"}
    assert metrics["qvpo_loss"].item() == loss.item()
    assert metrics["qvpo_weight"].item() == pytest.approx(weight.mean().item())
    assert metrics["q_policy"].item() == pytest.approx(min_q(draws).mean().item())


def test_entropy_term_pulls_towards_uniform_actions():
    """The loss is linear in omega, with slope sum_b w_b sum_u mean_d((c - u)^2) / rows; for
    u ~ U[-1, 1] the squared miss of c = 1/2 averages 1/4 + 1/3, which a U[0, 1] draw (1/12),
    a U[1, 3] draw (9/4 + 1/3) or a zero weight would not give."""
    draws = _draws().repeat(64, 1, 1)  # many states, for the uniform draws' average
    obs = torch.zeros(draws.shape[0], 1, dtype=F64)
    losses = [
        qvpo_loss(Constant(0.5), TwoCentres(), StubSampler(draws), obs, D, N, omega, _gen())[0]
        for omega in (0.0, 0.5)
    ]
    _, weight = _by_hand(draws)
    rows = draws.shape[0] * (1 + UNIFORM_PER_STATE)
    per_unit = weight.sum() * UNIFORM_PER_STATE * (1 / 4 + 1 / 3) / rows
    slope = (losses[1] - losses[0]) / 0.5
    assert slope.item() == pytest.approx(per_unit.item(), rel=0.05)


def test_gradient_reaches_the_denoiser_only():
    draws = _draws()
    denoiser, critic = Constant(0.3), TwoCentres()
    obs = torch.zeros(B, 1, dtype=F64)
    loss, _ = qvpo_loss(denoiser, critic, StubSampler(draws), obs, D, N)
    loss.backward()
    assert denoiser.c.grad is not None and denoiser.c.grad.abs() > 0


class Halving(nn.Module):
    """An "eps" denoiser 0.5 a_t: its loss depends on the noised actions, uniform rows included."""

    def forward(self, a_t, t, obs):
        return 0.5 * a_t


def _loss(*args, global_seed: int = 0):
    """QVPO's loss on a DDPM chain of Halving, with the generator _gen()."""
    torch.manual_seed(global_seed)
    sampler = DDPMSampler(make_schedule("vp", 5, dtype=F64), prediction="eps")
    obs = torch.zeros(B, 1, dtype=F64)
    return qvpo_loss(Halving(), TwoCentres(), sampler, obs, D, *args, generator=_gen())[0].item()


def test_defaults_are_the_references():
    """N = 64 draws per state, omega = 0.02 and U = 10 (github.com/wadx2019/qvpo, main.py)."""
    assert _loss() == _loss(64, 0.02)
    assert UNIFORM_PER_STATE == 10


def test_every_draw_comes_from_the_generator():
    """The same generator seed gives the same loss whatever the global RNG's state: the
    candidates' chains, the uniform actions and the denoising noise all use it."""
    assert _loss(N, 0.5, global_seed=0) == _loss(N, 0.5, global_seed=1)
