"""The per-seed table of the README's results: every seed's evaluation return at chosen steps.

The summary's cells are IQMs with intervals; with three seeds a reader also wants the seeds
themselves, and a method with fewer seeds (one CrossQ run) beside those with three. Here each
env x method row lists, at each step, every seed that reached it, their mean and that mean
divided by SAC's mean on the same env at the same step. A last row per method averages those
ratios over the envs where the method has every seed at the step and SAC's mean is positive
(the rule of aggregate.csv's "mean / SAC's", so the two agree), and a last row the minimum of
those ratios over the envs, given where every env of the table counts (the rule the default
preset is chosen by).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.report import markdown_table, step_label
from harness.results import Group
from harness.tables import BASELINE, env_ratios


def _seed_cells(group: Group | None, step: int, sac_mean: float | None) -> list[str]:
    """Seeds (in seed order), their mean and the mean / SAC's mean; blanks where none reached."""
    if group is None:
        return ["not run", "", ""]
    reached = [group.curves[s][step] for s in group.seeds if step in group.curves[s]]
    if not reached:
        return ["not reached", "", ""]
    mean = float(np.mean(reached))
    missing = len(group.seeds) - len(reached)
    seeds = ", ".join(f"{r:.0f}" for r in reached) + (f" ({missing} short)" if missing else "")
    ratio = f"{mean / sac_mean:.2f}" if sac_mean and sac_mean > 0 else ""
    return [seeds, f"{mean:.0f}", ratio]


def seed_table(groups: Sequence[Group], methods: Sequence[str], steps: Sequence[int]) -> str:
    """A Markdown table: env x method rows, per step the seeds, their mean and / SAC; then the
    mean over envs of / SAC per method. A method without results on an env reads "not run"."""
    by_key = {(g.env, g.method): g for g in groups}
    baseline = {g.env: g for g in groups if g.method == BASELINE}
    envs = sorted({g.env for g in groups if g.method in methods})
    header = ["env", "method"]
    for step in steps:
        header += [f"seeds at {step_label(step)}", "mean", "/ SAC"]
    body = []
    for env in envs:
        for method in methods:
            cells = [env, method]
            for step in steps:
                base = baseline.get(env)
                sac_mean = (
                    float(base.values(step).mean())
                    if base is not None and step in base.common_steps
                    else None
                )
                cells += _seed_cells(by_key.get((env, method)), step, sac_mean)
            body.append(cells)
    ratios = {(m, step): env_ratios(groups, m, step) for m in methods for step in steps}
    for method in methods:
        ran = any(g.method == method for g in groups)
        cells = ["mean of / SAC", method]
        for step in steps:
            counted = ratios[method, step]
            ratio = f"**{np.mean(list(counted.values())):.2f}**" if counted else ""
            where = "no env has every seed" if ran else "not run"
            cells += [f"over {', '.join(counted)}" if counted else where, "", ratio]
        body.append(cells)
    for method in methods:  # the rule the default preset is chosen by
        cells = ["min of / SAC", method]
        for step in steps:
            counted = ratios[method, step]
            low = f"**{min(counted.values()):.2f}**" if sorted(counted) == envs else ""
            cells += [f"over {', '.join(counted)}" if counted else "", "", low]
        body.append(cells)
    return "\n".join(markdown_table(header, body))
