"""summary.md: the suite's tables in Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from harness.results import TAIL_WINDOW, Group
from harness.tables import BASELINE, env_ratios, mean_std

INTRO = (
    "Evaluation return: the mean over a run's evaluation episodes (10 by default, each on its "
    "own seeded env, without exploration noise; QSM's diffusion sample stays stochastic and its "
    "online weights act, the SB3 baselines act with their mean action), at fixed env steps "
    "every seed has reached and at the last step every "
    "seed has reached, never a run's best. Cells: interquartile mean (IQM) over seeds "
    "[95% stratified-bootstrap interval], by rliable; with fewer than 4 seeds the IQM is the "
    "mean. P(> SAC): the probability that a run of the method scores above a run of SAC on the "
    "same env at the same step [95% interval]. Across envs, returns are divided by SAC's mean "
    "return on that env at that step. An interval of zero width (one seed, or every resample "
    "alike) is not printed. Mean and sample std over seeds are in summary.csv."
)


def step_label(step: int) -> str:
    return f"{step // 1000}k" if step % 1000 == 0 else str(step)


def _cell(value: float, low: float, high: float, digits: int) -> str:
    if math.isnan(value):
        return ""
    if math.isclose(low, high):  # one seed: no interval
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body] + [""]


def suite_table(suite_rows: list[dict]) -> list[str]:
    """The across-env rows as Markdown: per method, the envs, seeds per env, then per step the
    IQM of return / SAC's [95% interval], P(> SAC) [95% interval] and the mean of / SAC's."""
    steps = sorted({r["step"] for r in suite_rows})
    header = ["method", "envs", "seeds per env"]
    header += [f"IQM at {step_label(s)}" for s in steps] + [
        f"P(> SAC) at {step_label(s)}" for s in steps
    ]
    header += [f"mean / SAC's at {step_label(s)}" for s in steps]
    body = []
    for method in sorted({r["method"] for r in suite_rows}):
        mine = {r["step"]: r for r in suite_rows if r["method"] == method}
        first = next(iter(mine.values()))
        cells = [method, first["envs"], str(first["runs_per_env"])]
        for key in ("normalised_iqm", "p_over_sac"):
            low, high = ("iqm_low", "iqm_high") if key == "normalised_iqm" else ("p_low", "p_high")
            cells += [
                _cell(mine[s][key], mine[s][low], mine[s][high], 2) if s in mine else ""
                for s in steps
            ]
        cells += [f"{mine[s]['mean_ratio_of_means']:.2f}" if s in mine else "" for s in steps]
        body.append(cells)
    return markdown_table(header, body)


SUITE_INTRO = (
    "Return divided by SAC's mean return on the same env at the same step; IQM over all "
    "runs of all envs listed [95% interval]. An env counts where the method and SAC have "
    "every seed at that step (the envs column lists those at the first step shown). "
    "mean / SAC's: each env's mean return over every seed divided by SAC's, averaged over "
    "the envs that count."
)


def _suite_section(suite_rows: list[dict]) -> list[str]:
    if not suite_rows:
        return []
    heading = ["## All environments, normalised by SAC", "", SUITE_INTRO, ""]
    return heading + suite_table(suite_rows)


def _env_section(env: str, groups: list[Group], rows: list[dict]) -> list[str]:
    fixed = sorted({r["step"] for r in rows if r["point"] == "fixed"})
    compared = any(g.method == BASELINE for g in groups)
    header = ["method", "seeds", *map(step_label, fixed), "last common step"]
    header += [f"mean of the last {TAIL_WINDOW // 1000}k"] + ["P(> SAC) at the last"] * compared
    body = []
    for g in groups:
        mine = {(r["point"], r["step"]): r for r in rows if r["method"] == g.method}
        by_point = {p: r for (p, _), r in mine.items()}
        cells = [g.method, str(len(g.curves))]
        for s in fixed:
            r = mine.get(("fixed", s))
            cells.append(_cell(r["return_iqm"], r["iqm_low"], r["iqm_high"], 1) if r else "")
        for point in ("last", "tail"):
            r = by_point[point]
            cells.append(f"{_cell(r['return_iqm'], r['iqm_low'], r['iqm_high'], 1)} @ {r['step']}")
        if compared:
            r = by_point["last"]
            better = _cell(r["p_over_sac"], r["p_low"], r["p_high"], 2)
            cells.append(better and f"{better} @ {r['step']}")
        body.append(cells)
    return [f"## {env}", ""] + markdown_table(header, body)


def _speed_section(groups: Sequence[Group]) -> list[str]:
    speed = [g for g in groups if g.sps]
    if not speed:
        return []
    intro = (
        "Env steps per second over the logged windows after warm-up (evaluation included), "
        "one torch thread per run unless launched with --threads, runs sharing the machine as "
        "launched by the harness; mean ± std over seeds, and the ratio to SAC's mean on the same "
        "env. The ratio is side by side only where the runs shared one machine at one time: "
        "results gathered over several sessions mix machines and loads. "
        "`python benchmarks/speed.py update` times the agents side by side in one process."
    )
    body = []
    for g in speed:
        mean, std = mean_std(list(g.sps.values()))
        sac = [h for h in speed if h.env == g.env and h.method == BASELINE]
        ratio = f"{mean / mean_std(list(sac[0].sps.values()))[0]:.2f}" if sac else ""
        spread = "" if math.isnan(std) else f" ± {std:.1f}"
        body.append([g.env, g.method, str(len(g.sps)), f"{mean:.1f}{spread}", ratio])
    header = ["env", "method", "runs", "steps/s", "/ SAC"]
    return ["## Whole-loop speed", "", intro, ""] + markdown_table(header, body)


def rule_table(groups: Sequence[Group], step: int) -> list[str]:
    """Per method, each env's mean return / SAC's at `step` and their minimum: the figure the
    default preset is chosen by (the highest minimum over the envs, every env counted). The
    minimum is left blank where an env of the suite does not count for the method."""
    envs = sorted({g.env for g in groups if g.method == BASELINE})
    body = []
    for method in sorted({g.method for g in groups} - {BASELINE}):
        ratios = env_ratios(groups, method, step)
        if not ratios:
            continue
        cells = [method] + [f"{ratios[e]:.2f}" if e in ratios else "" for e in envs]
        every_env = all(e in ratios for e in envs)
        body.append(cells + [f"**{min(ratios.values()):.2f}**" if every_env else ""])
    return markdown_table(["method", *envs, "minimum"], body)


def _rule_section(groups: Sequence[Group], steps: Sequence[int]) -> list[str]:
    intro = (
        "Each env's mean return over every seed divided by SAC's, and the minimum over the envs "
        "(given where every env counts): the default preset is the one whose minimum at 100k is "
        "highest."
    )
    lines = ["## The minimum over envs of mean / SAC's", "", intro, ""]
    for step in steps:
        lines += [f"At {step_label(step)}:", ""] + rule_table(groups, step)
    return lines


def write_markdown(
    path: Path, suite: str, groups: list[Group], env_rows: list[dict], suite_rows: list[dict]
) -> None:
    lines = [f"# Learning benchmarks: {suite}", "", INTRO, ""]
    lines += _suite_section(suite_rows)
    lines += _rule_section(groups, sorted({r["step"] for r in suite_rows}))
    for env in sorted({g.env for g in groups}):
        mine = [g for g in groups if g.env == env and g.common_steps]
        lines += _env_section(env, mine, [r for r in env_rows if r["env"] == env])
    lines += _speed_section(groups)
    Path(path).write_text("\n".join(lines))
