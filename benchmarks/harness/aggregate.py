"""Aggregating a suite's results folder into its summary files and plots: the tables hold every
method, the plots the presets and the baselines unless others are asked for."""

from __future__ import annotations

import csv
from collections.abc import Collection, Sequence
from pathlib import Path

from harness.methods import PLOTTED
from harness.plots import plot_env, plot_normalised
from harness.report import write_markdown
from harness.results import Group, load_suite
from harness.tables import ENV_FIELDS, SUITE_FIELDS, env_rows, sps_rows, suite_rows

REPORT_STEPS = (50_000, 100_000, 200_000, 300_000, 500_000, 1_000_000)
NORMALISED_PLOT = "all-envs.png"
"""The across-env curve, beside the <env>.png plots."""


def _write_csv(path: Path, rows: list[dict], fields: Sequence[str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


def plot_groups(folder: Path, groups: Sequence[Group], prefix: str = "") -> list[Path]:
    """<prefix><env>.png per env and <prefix>all-envs.png in folder, from these groups; returns
    the files written (the across-env plot only where some method has steps to draw)."""
    written = []
    for env in sorted({g.env for g in groups}):
        path = folder / f"{prefix}{env}.png"
        plot_env(path, env, [g for g in groups if g.env == env])
        written.append(path)
    if plot_normalised(folder / f"{prefix}{NORMALISED_PLOT}", groups):
        written.append(folder / f"{prefix}{NORMALISED_PLOT}")
    return written


def aggregate_suite(
    suite_dir: Path,
    report_steps: Sequence[int] = REPORT_STEPS,
    plotted: Collection[str] = PLOTTED,
) -> list[dict]:
    """Write summary.csv (per env x method), aggregate.csv (across envs), sps.csv, summary.md,
    <env>.png and all-envs.png in suite_dir; returns summary.csv's rows. The tables hold every
    method, the plots the `plotted` ones (a plot with none of them is removed)."""
    suite_dir = Path(suite_dir)
    groups = load_suite(suite_dir)
    rows, across = env_rows(groups, report_steps), suite_rows(groups, report_steps)
    _write_csv(suite_dir / "summary.csv", rows, ENV_FIELDS)
    _write_csv(suite_dir / "aggregate.csv", across, SUITE_FIELDS)
    _write_csv(suite_dir / "sps.csv", sps_rows(groups), ["env", "method", "seed", "sps"])
    write_markdown(suite_dir / "summary.md", suite_dir.name, groups, rows, across)
    drawn = plot_groups(suite_dir, [g for g in groups if g.method in plotted])
    for env in {g.env for g in groups}:
        if suite_dir / f"{env}.png" not in drawn:
            (suite_dir / f"{env}.png").unlink(missing_ok=True)
    if suite_dir / NORMALISED_PLOT not in drawn:
        (suite_dir / NORMALISED_PLOT).unlink(missing_ok=True)
    return rows
