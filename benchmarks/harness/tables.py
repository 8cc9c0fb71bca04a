"""The numbers of a suite's summary: per env x method, across envs, and whole-loop speed.

Per env x method, at each fixed step every seed has reached, at the last step every seed has
reached ("last") and over the TAIL_WINDOW steps that end there ("tail", each seed's mean first):
mean and sample std over seeds, IQM with its 95% interval, and P(method > SAC) on that env.
Across envs, at each fixed step: returns divided by SAC's mean return on the same env at the same
step (so SAC's mean is 1 on every env), their IQM over runs and envs with its interval,
P(method > SAC) averaged over envs, and the mean over envs of (the method's mean return / SAC's),
every seed of each counted (the goal figure of README's results). An env counts at a step only if
the method and SAC both have every seed there and SAC's mean is positive (a ratio to a mean near
or below zero says nothing); for the IQM and P(> SAC) every env then contributes the same number
of runs, its lowest seeds, since the bootstrap needs a runs x envs table. Statistics:
harness/stats.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness import stats
from harness.results import Group

BASELINE = "sac"
"""The method others are normalised by and compared with."""
NAN3 = (math.nan, math.nan, math.nan)
ENV_FIELDS = (
    *("env", "method", "point", "step", "seeds", "return_mean", "return_std"),
    *("return_iqm", "iqm_low", "iqm_high", "p_over_sac", "p_low", "p_high"),
)
SUITE_FIELDS = (
    *("method", "step", "envs", "runs_per_env", "normalised_iqm", "iqm_low", "iqm_high"),
    *("p_over_sac", "p_low", "p_high", "mean_ratio_of_means"),
)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; NaN for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def _points(group: Group, report_steps: Sequence[int]) -> list[tuple[str, int]]:
    common = group.common_steps
    if not common:
        return []
    fixed = [("fixed", s) for s in report_steps if s in common]
    return fixed + [("last", common[-1]), ("tail", common[-1])]


def _values(group: Group, point: str, step: int) -> np.ndarray:
    return group.tail_values(step) if point == "tail" else group.values(step)


def _scores(group: Group, points: Sequence[tuple[str, int]]) -> np.ndarray:
    """(runs, 1, points): one task, the env."""
    return np.stack([_values(group, p, s) for p, s in points], axis=-1)[:, None, :]


def env_rows(groups: Sequence[Group], report_steps: Sequence[int]) -> list[dict]:
    """Rows of summary.csv."""
    baseline = {g.env: g for g in groups if g.method == BASELINE}
    rows = []
    for g in groups:
        points = _points(g, report_steps)
        if not points:
            continue
        scores = _scores(g, points)
        iqm = stats.iqm(scores)
        base = baseline.get(g.env)
        better = {}
        if base is not None and g is not base:
            both = [i for i, (_, s) in enumerate(points) if s in base.common_steps]
            if both:
                theirs = _scores(base, [points[i] for i in both])
                est = stats.improvement(scores[..., both], theirs)
                better = {i: est.at(k) for k, i in enumerate(both)}
        for i, (point, step) in enumerate(points):
            mean, std = mean_std(scores[:, 0, i])
            value, low, high = iqm.at(i)
            p, p_low, p_high = better.get(i, NAN3)
            values = (g.env, g.method, point, step, len(g.curves), mean, std, value, low, high)
            rows.append(dict(zip(ENV_FIELDS, (*values, p, p_low, p_high), strict=True)))
    return rows


def suite_rows(groups: Sequence[Group], report_steps: Sequence[int]) -> list[dict]:
    """Rows of aggregate.csv: each method at each fixed step, across the envs that count."""
    baseline = {g.env: g for g in groups if g.method == BASELINE}
    rows = []
    for method in sorted({g.method for g in groups}):
        mine = {g.env: g for g in groups if g.method == method}
        for step in report_steps:
            envs = usable_envs(mine, baseline, [step])
            if not envs:
                continue
            runs = min(len(mine[e].curves) for e in envs)
            x = np.stack([mine[e].values(step, runs) for e in envs], axis=1)[..., None]
            sac_means = np.array([baseline[e].values(step).mean() for e in envs])
            iqm = stats.iqm(x / sac_means[None, :, None])
            ratio = np.mean(np.array([mine[e].values(step).mean() for e in envs]) / sac_means)
            p = NAN3
            if method != BASELINE:
                base_runs = min(len(baseline[e].curves) for e in envs)
                y = np.stack([baseline[e].values(step, base_runs) for e in envs], axis=1)
                p = stats.improvement(x, y[..., None]).at(0)
            values = (method, step, " ".join(envs), runs, *iqm.at(0), *p, float(ratio))
            rows.append(dict(zip(SUITE_FIELDS, values, strict=True)))
    return rows


def usable_envs(
    mine: dict[str, Group], baseline: dict[str, Group], steps: Sequence[int]
) -> list[str]:
    """Envs where the method and SAC have every seed at every step and SAC's mean is positive."""
    return [
        env
        for env, g in sorted(mine.items())
        if env in baseline
        and all(
            s in g.common_steps
            and s in baseline[env].common_steps
            and baseline[env].values(s).mean() > 0
            for s in steps
        )
    ]


def env_ratios(groups: Sequence[Group], method: str, step: int) -> dict[str, float]:
    """The method's mean return / SAC's mean return at `step`, per env that counts there."""
    mine = {g.env: g for g in groups if g.method == method}
    baseline = {g.env: g for g in groups if g.method == BASELINE}
    return {
        env: float(mine[env].values(step).mean() / baseline[env].values(step).mean())
        for env in usable_envs(mine, baseline, [step])
    }


def sps_rows(groups: Sequence[Group]) -> list[dict]:
    """Rows of sps.csv: each run's whole-loop steps/s."""
    return [
        {"env": g.env, "method": g.method, "seed": seed, "sps": rate}
        for g in groups
        for seed, rate in sorted(g.sps.items())
    ]
