"""Sample-efficiency curves: IQM over runs against env steps, with the 95% interval as a band."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness import stats
from harness.results import Group
from harness.tables import BASELINE, usable_envs


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(10, 4.5))


# matplotlib's colour cycle repeats after 10 lines: later lines change style instead.
_LINESTYLES = ("-", "--", ":", "-.")


def _curve(ax, steps: Sequence[int], scores: np.ndarray, label: str) -> None:
    est = stats.iqm(scores)
    if label.split(" ")[0] == BASELINE:  # the baseline in black, whatever came before it
        style = {"color": "black"}
    else:
        drawn = sum(line.get_color() != "black" for line in ax.lines)
        style = {"linestyle": _LINESTYLES[drawn // 10 % len(_LINESTYLES)]}
    (line,) = ax.plot(steps, est.point, label=label, **style)
    ax.fill_between(steps, est.low, est.high, color=line.get_color(), alpha=0.2)


def _save(plt, fig, ax, path: Path, title: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    # Beside the axes, not on them: with a dozen methods an inside legend hides the curves.
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_env(path: Path, env: str, groups: Sequence[Group]) -> None:
    """One env: each method's IQM over seeds at the steps all its seeds have."""
    plt, fig, ax = _figure()
    for g in groups:
        steps = g.common_steps
        if steps:
            scores = np.stack([g.values(s) for s in steps], axis=-1)[:, None, :]
            _curve(ax, steps, scores, f"{g.method} ({len(g.curves)} seeds)")
    title = f"{env}: evaluation return, IQM over seeds, 95% CI"
    _save(plt, fig, ax, path, title, "evaluation return")


def plot_normalised(path: Path, groups: Sequence[Group]) -> bool:
    """Across envs: each method's IQM of return / SAC's mean return (same env, same step), at
    the steps where every env that counts (harness/tables.py) has them. False if no method has
    such steps (nothing is written)."""
    baseline = {g.env: g for g in groups if g.method == BASELINE}
    plt, fig, ax = _figure()
    drawn = False
    for method in sorted({g.method for g in groups}):
        mine = {g.env: g for g in groups if g.method == method}
        envs = [e for e in sorted(mine) if e in baseline]
        steps = sorted(
            set.intersection(
                *[set(mine[e].common_steps) & set(baseline[e].common_steps) for e in envs]
            )
            if envs
            else set()
        )
        steps = [s for s in steps if usable_envs(mine, baseline, [s]) == envs]
        if not steps:
            continue
        runs = min(len(mine[e].curves) for e in envs)
        scores = np.stack(
            [
                np.stack([mine[e].values(s, runs) / baseline[e].values(s).mean() for e in envs], 1)
                for s in steps
            ],
            axis=-1,
        )
        _curve(ax, steps, scores, f"{method} ({len(envs)} envs x {runs} seeds)")
        drawn = True
    if drawn:
        title = "All envs: return / SAC's mean return (same env, same step), IQM, 95% CI"
        _save(plt, fig, ax, path, title, "return / SAC's mean return")
    plt.close(fig)
    return drawn
