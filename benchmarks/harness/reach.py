"""Time to reach SAC's score: per env and method, when each seed first evaluates at or above SB3
SAC's mean return at a given step (by default 100k), in env steps and in wall-clock minutes.

Minutes are the step divided by the run's whole-loop steps/s (its sps.csv: training, acting and
evaluation, as the run went), so they are this machine's time under the load the run had (two
single-thread runs side by side here). A seed that never gets there reads "not reached".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.report import markdown_table, step_label
from harness.results import Group
from harness.tables import BASELINE


def first_step_at(curve: dict[int, float], threshold: float) -> int | None:
    """The first evaluated step whose return is >= threshold (None if none is)."""
    return next((step for step in sorted(curve) if curve[step] >= threshold), None)


def _cells(group: Group, threshold: float) -> list[str]:
    steps = {seed: first_step_at(group.curves[seed], threshold) for seed in group.seeds}
    reached = {seed: step for seed, step in steps.items() if step is not None}
    per_seed = ", ".join(step_label(s) if s else "not reached" for s in steps.values())
    minutes = [step / group.sps[seed] / 60 for seed, step in reached.items() if seed in group.sps]
    mean_minutes = f"{np.mean(minutes):.0f}" if len(minutes) == len(steps) else ""
    return [per_seed, f"{len(reached)}/{len(steps)}", mean_minutes]


def reach_table(groups: Sequence[Group], methods: Sequence[str], at_step: int = 100_000) -> str:
    """A Markdown table: env x method, SAC's mean at `at_step` (the threshold), each seed's first
    step at or above it, how many seeds got there, and their mean wall-clock minutes (given only
    when every seed got there and has an sps.csv)."""
    by_key = {(g.env, g.method): g for g in groups}
    header = ["env", "method", f"SAC's mean at {step_label(at_step)}", "first step per seed"]
    header += ["seeds", "mean minutes"]
    body = []
    for env in sorted({g.env for g in groups if g.method in methods}):
        base = by_key.get((env, BASELINE))
        if base is None or at_step not in base.common_steps:
            continue
        threshold = float(base.values(at_step).mean())
        for method in methods:
            group = by_key.get((env, method))
            cells = _cells(group, threshold) if group else ["not run", "", ""]
            body.append([env, method, f"{threshold:.0f}", *cells])
    return "\n".join(markdown_table(header, body))
