"""Tests for parameter averaging: soft_update (Polyak), EMA with warm-up, `frozen` and
`training`."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from diffpolicy.nets import EMA, frozen, soft_update, training

torch.set_num_threads(1)


def _net(seed: int, dtype=torch.float64) -> nn.Module:
    """Linear + BatchNorm (float running stats and an integer counter buffer)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(dtype)
    with torch.no_grad():  # make every float parameter and buffer distinct between seeds
        for p in net.parameters():
            p.normal_()
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].num_batches_tracked.fill_(seed + 3)
    return net


def _float_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}


def test_float_state_covers_parameters_and_buffers():
    names = set(_float_state(_net(0)))
    assert {"1.running_mean", "1.running_var", "0.weight", "2.bias"} <= names


def test_soft_update_tau0_leaves_target():
    target, online = _net(0), _net(1)
    before = copy.deepcopy(target.state_dict())
    soft_update(target, online, 0.0)
    for k, v in target.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_soft_update_tau1_copies():
    target, online = _net(0), _net(1)
    soft_update(target, online, 1.0)
    online_state = _float_state(online)
    for k, v in _float_state(target).items():
        assert torch.equal(v, online_state[k]), k


def test_soft_update_tau_quarter_every_param_and_float_buffer():
    target, online = _net(0), _net(1)
    t0, o0 = _float_state(target), _float_state(online)
    counter = target[1].num_batches_tracked.clone()
    soft_update(target, online, 0.25)
    after = _float_state(target)
    assert set(after) == set(t0)
    for k in t0:
        torch.testing.assert_close(after[k], 0.75 * t0[k] + 0.25 * o0[k], rtol=1e-12, atol=1e-12)
        assert not torch.equal(after[k], t0[k]), k  # really moved
    # The integer counter is not averaged.
    assert torch.equal(target[1].num_batches_tracked, counter)
    # The online network is untouched.
    for k, v in _float_state(online).items():
        assert torch.equal(v, o0[k])


@pytest.mark.parametrize("tau", [-0.01, 1.01, float("nan"), 2.0])
def test_soft_update_tau_out_of_range_raises(tau):
    target, online = _net(0), _net(1)
    before = _float_state(target)
    with pytest.raises(ValueError, match="tau"):
        soft_update(target, online, tau)
    for k, v in _float_state(target).items():
        assert torch.equal(v, before[k])


def test_soft_update_mismatched_modules_raise():
    with pytest.raises(ValueError) as err:
        soft_update(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), 0.5)
    assert str(err.value) == "target has 2 float tensors, online 4"


# --- EMA -----------------------------------------------------------------------------------------
def test_ema_warmup_decay_formula():
    ema = EMA(_net(0), max_decay=0.9)
    online = _net(1)
    expected = [min(0.9, (1 + k) / (10 + k)) for k in range(100)]
    got = []
    for _ in range(100):
        got.append(ema.decay())
        ema.update(online)
    assert got == pytest.approx(expected, rel=0, abs=0)
    assert got[0] == pytest.approx(0.1)
    assert got[1] == pytest.approx(2 / 11)
    assert got[-1] == 0.9  # capped: (1+k)/(10+k) reaches 0.9 at k = 80
    assert int(ema.num_updates) == 100


@pytest.mark.parametrize("max_decay", [1.0, -0.1, 1.5])
def test_ema_rejects_bad_max_decay(max_decay):
    with pytest.raises(ValueError, match="max_decay"):
        EMA(_net(0), max_decay=max_decay)


def test_ema_weights_follow_closed_form_recursion():
    online = _net(0)
    ema = EMA(online, max_decay=0.5)
    avg = _float_state(online)  # m_0 = the initial online weights
    # The averaged copy does not need gradients, and is a copy, not an alias.
    assert all(not p.requires_grad for p in ema.model.parameters())
    assert ema.model[0].weight.data_ptr() != online[0].weight.data_ptr()
    for k in range(10):  # (1 + k) / (10 + k) < 0.5 for k < 8, then the cap 0.5 holds
        with torch.no_grad():  # new online weights each step
            for p in online.parameters():
                p.add_(torch.randn_like(p))
            online[1].running_mean.add_(1.0)
        d = min(0.5, (1 + k) / (10 + k))
        o = _float_state(online)
        avg = {n: d * avg[n] + (1 - d) * o[n] for n in avg}
        ema.update(online)
    got = _float_state(ema.model)
    for n in avg:
        torch.testing.assert_close(got[n], avg[n], rtol=1e-12, atol=1e-12)
    assert int(ema.num_updates) == 10


def test_ema_state_dict_round_trip(tmp_path):
    online = _net(0)
    ema = EMA(online, max_decay=0.99)
    for _ in range(7):
        with torch.no_grad():
            for p in online.parameters():
                p.add_(0.1 * torch.randn_like(p))
        ema.update(online)
    path = tmp_path / "ema.pt"
    torch.save(ema.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert int(state["num_updates"]) == 7

    fresh = EMA(_net(5), max_decay=0.99)
    assert int(fresh.num_updates) == 0
    fresh.load_state_dict(state)
    assert int(fresh.num_updates) == 7
    assert fresh.decay() == ema.decay() == pytest.approx(8 / 17)
    for (k, a), b in zip(ema.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # Both continue identically.
    ema.update(online)
    fresh.update(online)
    for a, b in zip(ema.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# --- frozen --------------------------------------------------------------------------------------
def _mixed_flags() -> nn.Module:
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    net[0].bias.requires_grad_(False)
    return net


def _flags(net: nn.Module) -> list[bool]:
    return [p.requires_grad for p in net.parameters()]


def test_frozen_stops_param_grads_and_restores_flags():
    net = _mixed_flags()
    before = _flags(net)
    assert before == [True, False, True, True]
    x = torch.randn(4, 2, requires_grad=True)
    with frozen(net) as m:
        assert m is net
        assert _flags(net) == [False] * 4
        net(x).sum().backward()
    assert x.grad is not None and torch.count_nonzero(x.grad) > 0  # inputs still get gradients
    assert all(p.grad is None for p in net.parameters())
    assert _flags(net) == before


def test_frozen_restores_flags_after_exception():
    net = _mixed_flags()
    before = _flags(net)
    with pytest.raises(RuntimeError, match="boom"):
        with frozen(net):
            assert _flags(net) == [False] * 4
            raise RuntimeError("boom")
    assert _flags(net) == before


# --- training ------------------------------------------------------------------------------------
@pytest.mark.parametrize("was_training", [False, True])
def test_training_switches_every_submodule_on_and_restores_the_mode(was_training):
    net = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5)).train(was_training)
    with training(net) as m:
        assert m is net
        assert net.training and net[1].training
    assert net.training == net[1].training == was_training


def test_training_restores_the_mode_after_exception():
    net = nn.Sequential(nn.Linear(2, 3)).eval()
    with pytest.raises(RuntimeError, match="boom"):
        with training(net):
            raise RuntimeError("boom")
    assert not net.training and not net[0].training
