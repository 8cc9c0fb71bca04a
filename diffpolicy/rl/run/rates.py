"""Averaging the steps-per-second figures a run logs once per window."""

from __future__ import annotations

import math
from collections.abc import Iterable


def whole_loop_rate(rates: Iterable[float]) -> float | None:
    """The rate over whole windows of equal length in steps, from each window's rate.

    Total steps over total time: with windows of n steps, sum(n) / sum(n / r) is the harmonic
    mean of the rates (their arithmetic mean would over-weight the fast windows). Rates that are
    not positive and finite are skipped; None if no rate is left.
    """
    kept = [float(r) for r in rates if r > 0 and math.isfinite(r)]
    return len(kept) / sum(1.0 / r for r in kept) if kept else None
