"""EMA's default cap, its accepted range and its update counter, on top of tests/test_averaging.py
(soft_update and the warm-up recursion)."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from diffpolicy.nets import EMA, soft_update

torch.set_num_threads(1)


def exactly(message: str) -> str:
    """A pattern for pytest.raises(match=...) that matches the whole message and nothing else."""
    return f"^{re.escape(message)}$"


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def _floats(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def test_default_max_decay_is_0995():
    # (1 + k) / (10 + k) reaches 0.995 at k = 1790: from there the default cap holds.
    ema = EMA(_net(0))
    state = ema.state_dict()
    for k, expected in [(0, 0.1), (1789, 1790 / 1799), (1791, 0.995), (10**6, 0.995)]:
        state["num_updates"] = torch.tensor(k)
        ema.load_state_dict(state)
        assert ema.decay() == pytest.approx(expected, rel=1e-15)


def test_max_decay_zero_is_accepted_and_copies_the_online_weights():
    target, online = _net(0), _net(1)
    ema = EMA(target, max_decay=0.0)
    for step in range(3):
        assert ema.decay() == 0.0
        ema.update(online)
        for got, want in zip(_floats(ema.model), _floats(online), strict=True):
            assert torch.equal(got, want), step
        with torch.no_grad():
            for p in online.parameters():
                p.add_(1.0)


@pytest.mark.parametrize("max_decay", [1.0, -1e-9, 2.0, float("nan")])
def test_max_decay_outside_zero_one_raises_with_message(max_decay):
    with pytest.raises(ValueError, match=exactly(f"max_decay must lie in [0, 1), got {max_decay}")):
        EMA(_net(0), max_decay=max_decay)


def test_update_counter_is_an_exact_integer_past_float32s_range():
    # num_updates is int64: at 2^24 updates a float32 counter would stop moving, and a resumed
    # run would take its decay from a wrong count.
    ema = EMA(_net(0))
    assert ema.num_updates.dtype == torch.long
    state = ema.state_dict()
    state["num_updates"] = torch.tensor(2**24)
    ema.load_state_dict(state)
    ema.update(_net(1))
    assert int(ema.num_updates) == 2**24 + 1
    fresh = EMA(_net(2))
    fresh.load_state_dict(ema.state_dict())
    assert int(fresh.num_updates) == 2**24 + 1 and fresh._count == 2**24 + 1


def test_ema_update_is_soft_update_with_tau_one_minus_decay():
    # One update is the convex combination decay * average + (1 - decay) * online, exactly as
    # soft_update computes it with tau = 1 - decay.
    ema, online = EMA(_net(0), max_decay=0.9), _net(1)
    for _ in range(4):
        expected = EMA(_net(0), max_decay=0.9)
        expected.load_state_dict(ema.state_dict())
        soft_update(expected.model, online, 1.0 - ema.decay())
        ema.update(online)
        for got, want in zip(_floats(ema.model), _floats(expected.model), strict=True):
            assert torch.equal(got, want)
