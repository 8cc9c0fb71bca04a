"""Learning-curve benchmarks: methods x environments x seeds, run side by side, then aggregated.

    # launch (or resume) every run on this machine, then aggregate
    python benchmarks/learning.py run --suite mujoco --envs Hopper-v5 Walker2d-v5 \\
        --methods qsm-reference sac --seeds 0 1 2 --steps 200000
    # the same on a Ray cluster (one task per run, one CPU each)
    python benchmarks/learning.py run ... --backend ray --address auto
    # only aggregate what is in benchmarks/results
    python benchmarks/learning.py aggregate
    # the README's per-seed table (default: qsm-best, qsm-reference, sac, crossq at 50k, 100k)
    python benchmarks/learning.py table

Every run command gets `--env E --steps N --seed K --run-dir D --threads 1 --no-progress`, then
the method's flags (benchmarks/harness/methods.py), then `--extra` (diffpolicy recipes) or
`--sac-extra` (the SB3 baselines), each one shell-quoted string written with "=" (the parser takes
a value starting with "--" only that way): `--extra="--warmup-steps 200 --eval-every 200"`.

Layout (relative roots are taken from the repository root):

- run directories (checkpoints, logs): <runs-root>/<suite>/<env>/<method>/seed<k>/, default runs
  root runs/; the harness's log of each run is harness.log there, its claim <run-dir>.lock.
- results (small copies): <results-root>/<suite>/<env>/<method>/seed<k>/eval.csv and sps.csv,
  default results root benchmarks/results.
- aggregates: <results-root>/<suite>/summary.md, summary.csv, aggregate.csv, sps.csv, <env>.png
  and all-envs.png.

What `run` does with each run directory, decided when the run is launched, under an exclusive file
lock on the directory held while its run lives (so two harnesses, or two machines sharing the
filesystem, never train the same seed at once): skip it if its eval.csv reaches the budget; leave
it alone if another process holds the lock; resume it (--resume) from its checkpoint; move a run
that never checkpointed aside to <dir>.stale-<time> and start again; otherwise start it. Each
run's results are collected as it ends. The local backend runs at most --jobs runs at once (each
with one torch thread: on a 2-core machine two single-thread runs give about 1.4x the throughput
of one two-thread run); the Ray backend runs one task per run wherever the cluster has a CPU (a GPU
too for a run whose --device is CUDA). Ctrl-C or SIGTERM asks every run to checkpoint and stop;
run the same command again to continue.

Aggregation (benchmarks/harness/tables.py): per env and method, the interquartile mean over seeds
with a 95% stratified-bootstrap interval and the probability of improvement over SAC, by rliable,
at fixed steps, at the last step every seed has reached and over the last 10k steps; across envs,
the same on returns normalised by SAC's mean at the same step; IQM curves with the interval as a
band. Mean and sample std stay in summary.csv. Never a run's best evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from harness import local_backend
from harness.aggregate import REPORT_STEPS, aggregate_suite
from harness.collect import write_results
from harness.launch import STOPPED_CODES, Outcome, describe
from harness.methods import METHODS, REPO
from harness.plan import Sweep, format_plan, plan
from harness.reach import reach_table
from harness.results import load_suite
from harness.seed_table import seed_table


@dataclass
class Run(Sweep):
    """Launch or resume every method x env x seed, then aggregate the suite."""

    backend: Literal["local", "ray"] = "local"
    """"local": child processes of this harness; "ray": one Ray task per run (pip install -e
    '.[ray]')."""
    jobs: int = 2
    """Runs at once (local backend)."""
    address: str | None = None
    """Ray cluster to join ("auto", "HOST:PORT"); default: start a local Ray instance."""
    report_steps: tuple[int, ...] = REPORT_STEPS
    """Fixed steps of the summary (each reported where every seed has reached it)."""
    dry_run: bool = False
    """Print the plan and the commands; launch nothing."""


@dataclass
class Aggregate:
    """Aggregate <results-root>/<suite>/ (all suites found unless --suites is given)."""

    results_root: Path = Path("benchmarks/results")
    """Holds <suite>/<env>/<method>/seed<k>/eval.csv (relative: from the repository root)."""
    suites: tuple[str, ...] = ()
    """Suites to aggregate (default: every folder in results_root)."""
    report_steps: tuple[int, ...] = REPORT_STEPS
    """Fixed steps of the summary (each reported where every seed has reached it)."""


@dataclass
class Table:
    """Print the per-seed table of the README's results: each env x method's seeds at each step,
    their mean and / SAC, and the mean over envs of / SAC."""

    methods: tuple[str, ...] = ("qsm-best", "qsm-reference", "sac", "crossq")
    """Rows, in this order, for every env where one of them has results."""
    steps: tuple[int, ...] = (50_000, 100_000)
    """Columns: evaluation return at these env steps."""
    results_root: Path = Path("benchmarks/results")
    """Holds <suite>/<env>/<method>/seed<k>/eval.csv (relative: from the repository root)."""
    suite: str = "mujoco"
    """The suite's folder under results_root."""


def _store(outcome: Outcome) -> None:
    write_results(outcome.job.result_dir, outcome.files)
    print(describe(outcome), flush=True)


def run(cfg: Run) -> None:
    planned = plan(cfg)
    print(format_plan(planned, commands=cfg.dry_run), flush=True)
    if cfg.dry_run:
        return
    jobs = [job for job, _ in planned]
    try:
        if cfg.backend == "ray":
            from harness import ray_backend

            outcomes = ray_backend.execute(jobs, cfg.address, _store)
        else:
            outcomes = local_backend.execute(jobs, cfg.jobs, _store)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        suite_dir = REPO / cfg.results_root / cfg.suite
        if suite_dir.is_dir():
            aggregate_suite(suite_dir, cfg.report_steps)
            print(f"aggregated into {suite_dir}")
    failed = [o.job.run_dir for o in outcomes if o.returncode not in (None, 0, *STOPPED_CODES)]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: " + ", ".join(map(str, failed)))
    stopped = [o.job.run_dir for o in outcomes if o.returncode in STOPPED_CODES]
    if stopped:
        raise SystemExit(f"{len(stopped)} run(s) stopped with a checkpoint; run again to continue")


def aggregate(cfg: Aggregate) -> None:
    root = REPO / cfg.results_root
    if not root.is_dir():
        raise SystemExit(f"no results in {root}")
    suites = cfg.suites or tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    for suite in suites:
        if not (root / suite).is_dir():
            print(f"{root / suite}: no such folder, skipped")
            continue
        rows = aggregate_suite(root / suite, cfg.report_steps)
        print(f"{root / suite}: {len(rows)} summary rows")


def table(cfg: Table) -> None:
    if not cfg.methods or not cfg.steps or min(cfg.steps) < 1:
        raise SystemExit(f"table needs a method and steps >= 1, got {cfg.methods} at {cfg.steps}")
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    suite_dir = REPO / cfg.results_root / cfg.suite
    if not suite_dir.is_dir():
        raise SystemExit(f"no results in {suite_dir}")
    groups = load_suite(suite_dir)
    print(seed_table(groups, cfg.methods, cfg.steps))
    print(f"Time to reach SAC's mean return at {max(cfg.steps)} steps:\n")
    print(reach_table(groups, cfg.methods, max(cfg.steps)))


def main() -> None:
    cfg = tyro.cli(
        Annotated[Run, tyro.conf.subcommand("run")]
        | Annotated[Aggregate, tyro.conf.subcommand("aggregate")]
        | Annotated[Table, tyro.conf.subcommand("table")],
        description=__doc__,
    )
    if isinstance(cfg, Run):
        run(cfg)
    elif isinstance(cfg, Aggregate):
        aggregate(cfg)
    else:
        table(cfg)


if __name__ == "__main__":
    main()
