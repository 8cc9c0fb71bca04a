"""diffpolicy.rl.run.rates: the whole-loop rate of windowed steps/s figures."""

import math

import pytest

from diffpolicy.rl.run.rates import whole_loop_rate


def test_whole_loop_rate_is_total_steps_over_total_time():
    # 1000 steps at 100/s (10 s) and 1000 steps at 50/s (20 s): 2000 steps in 30 s.
    assert whole_loop_rate([100.0, 50.0]) == pytest.approx(2000 / 30)
    assert whole_loop_rate([40.0]) == 40.0


def test_whole_loop_rate_skips_unusable_windows():
    assert whole_loop_rate([0.0, -1.0, math.nan, math.inf, 60.0]) == 60.0
    assert whole_loop_rate([]) is None
    assert whole_loop_rate([0.0]) is None
