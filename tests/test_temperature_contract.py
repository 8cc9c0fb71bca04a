"""The adaptive temperature's contract, sharpened by mutation testing (docs/mutation.md): its
argument checks, its metrics, and its Adam steps of log alpha against Kingma and Ba's algorithm
written out by hand (tests/test_adaptive_temperature.py checks where the controller settles)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from diffpolicy.objectives.temperature import AdaptiveTemperature, paired_spread


def test_paired_spread_refuses_anything_but_two_equal_2d_samples():
    a = torch.zeros(4, 2)
    for first, second in ((a, torch.zeros(4, 3)), (a[:, 0], a[:, 0]), (a[None], a[None])):
        shapes = f"got {tuple(first.shape)} and {tuple(second.shape)}"
        with pytest.raises(
            ValueError, match="two \\(batch, act_dim\\) samples of one shape, " + re.escape(shapes)
        ):
            paired_spread(first, second)


def test_paired_spread_of_two_fixed_samples():
    """(a - a')^2 = 4 everywhere gives a variance of 4 / 2 = 2: a spread of sqrt(2)."""
    first = torch.ones(3, 2, dtype=torch.float64)
    assert paired_spread(first, -first).item() == pytest.approx(math.sqrt(2.0), rel=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_alpha": 0.0}, "initial alpha must be a finite number > 0, got 0.0"),
        ({"initial_alpha": math.inf}, "initial alpha must be a finite number > 0, got inf"),
        ({"target_std": 0.0}, "target std must be a finite number > 0, got 0.0"),
        ({"target_std": math.inf}, "target std must be a finite number > 0, got inf"),
    ],
)
def test_adaptive_temperature_refuses_bad_settings(kwargs, message):
    settings = {"initial_alpha": 50.0, "target_std": 0.1, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        AdaptiveTemperature(**settings)


def adam_by_hand(grads, lr, betas=(0.9, 0.999), eps=1e-8):
    """Kingma and Ba (2015), Algorithm 1: the parameter's total change after each gradient."""
    m = v = change = 0.0
    changes = []
    for k, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** k), v / (1 - betas[1] ** k)
        change -= lr * m_hat / (math.sqrt(v_hat) + eps)
        changes.append(change)
    return changes


def test_log_alpha_takes_adam_steps_on_the_log_spread_error():
    """The controller's loss is -log alpha * (log spread - log target), so its gradient in
    log alpha is -(log spread - log target): Adam (default lr 3e-4) on that, step by step.
    Spreads above the target raise alpha (a colder policy); the metrics report both."""
    target = 0.1
    control = AdaptiveTemperature(initial_alpha=2.0, target_std=target)
    spreads = [0.4, 0.15, 0.05]
    expected = adam_by_hand([-math.log(s / target) for s in spreads], lr=3e-4)
    start = control.log_alpha.item()  # log 2, rounded to the float32 parameter
    # log alpha is float32: each step rounds it by half an ulp of ~0.7.
    ulp = torch.finfo(torch.float32).eps
    for spread, change in zip(spreads, expected, strict=True):
        metrics = control.step(torch.tensor(spread, dtype=torch.float64))
        assert set(metrics) == {"alpha", "action_spread"}
        assert control.log_alpha.item() - start == pytest.approx(change, abs=3 * ulp)
        assert metrics["alpha"].item() == pytest.approx(math.exp(control.log_alpha.item()))
        assert metrics["action_spread"].item() == pytest.approx(spread)
    assert expected[0] > 0  # the first spread was above the target: alpha went up


def test_alpha_is_exp_of_log_alpha_and_carries_no_gradient():
    """alpha scales losses (QSM's target, DIME's entropy term): it must not pass their gradient
    on to log alpha, which only its own controller steps."""
    control = AdaptiveTemperature(initial_alpha=2.0, target_std=0.1)
    alpha = control.alpha
    assert alpha.item() == pytest.approx(math.exp(control.log_alpha.item()))
    assert not alpha.requires_grad and alpha.grad_fn is None


def test_a_temperature_without_target_std_refuses_step_with_message():
    control = AdaptiveTemperature(initial_alpha=2.0, target_std=None)
    with pytest.raises(ValueError) as err:
        control.step(torch.tensor(0.3))
    assert str(err.value) == "this temperature has no target std: step it with step_error"
