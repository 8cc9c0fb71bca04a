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
    # the methods (current ones, and retired screens with the experiment page that ran them)
    python benchmarks/learning.py methods
    # one screen's curves beside SAC's, from its experiment page's methods, into plots/
    python benchmarks/learning.py plot --screen 2026-12-04-polyak-critics

`python benchmarks/learning.py COMMAND --help` lists a command's flags and their defaults.

Every run command gets `--env E --steps N --seed K --run-dir D --threads 1 --no-progress`, then
the method's flags (benchmarks/harness/methods.py), then `--extra` (diffpolicy recipes) or
`--sac-extra` (the SB3 baselines), each one shell-quoted string written with "=" (the parser takes
a value starting with "--" only that way): `--extra="--warmup-steps 200 --eval-every 200"`.

Layout (relative roots are taken from the repository root):

- run directories (checkpoints, logs): <runs-root>/<suite>/<env>/<method>/seed<k>/, default runs
  root runs/; the harness's log of each run is harness.log there, its claim <run-dir>.lock.
- results (small copies): <results-root>/<suite>/<env>/<method>/seed<k>/eval.csv and sps.csv,
  default results root benchmarks/results.
- aggregates: <results-root>/<suite>/summary.md, summary.csv, aggregate.csv, sps.csv (every
  method), <env>.png and all-envs.png (the presets, sac and crossq; `plot` draws others).

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

Bad input (an unknown method, env or suite, a bad seed or budget, a runs root that cannot be
created, nothing to aggregate, ...) ends with one line, `error: ...`, and exit status 2
(docs/bad_input.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness import local_backend
from harness.aggregate import REPORT_STEPS, aggregate_suite, plot_groups
from harness.cli import BadInput, Command, check_at_least, check_listed, run_commands
from harness.collect import write_results
from harness.launch import STOPPED_CODES, Outcome, describe
from harness.methods import METHODS, PLOTTED, REPO, method_table, page_name, screen_methods
from harness.plan import Sweep, check_methods, format_plan, plan
from harness.reach import reach_table
from harness.report import SUITE_INTRO, suite_table
from harness.results import Group, load_suite
from harness.seed_table import seed_table
from harness.tables import BASELINE, suite_rows

RESULTS = Path("benchmarks/results")


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

    results_root: Path = RESULTS
    """Holds <suite>/<env>/<method>/seed<k>/eval.csv (relative: from the repository root)."""
    suites: tuple[str, ...] = ()
    """Suites to aggregate (default: every folder in results_root that holds results)."""
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
    results_root: Path = RESULTS
    """Holds <suite>/<env>/<method>/seed<k>/eval.csv (relative: from the repository root)."""
    suite: str = "mujoco"
    """The suite's folder under results_root."""


@dataclass
class Plot:
    """Draw chosen methods' curves (IQM over seeds, 95% interval): <env>.png per env and
    all-envs.png (return / SAC's). By default the presets, sac and crossq, as `aggregate` draws
    them; --screen draws one experiment page's methods beside SAC."""

    screen: str | None = None
    """An experiment page, by its name under docs/experiments/ (e.g. 2026-12-04-polyak-critics):
    its methods, and sac. `python benchmarks/learning.py methods` lists the pages."""
    methods: tuple[str, ...] = ()
    """Methods to draw (with --screen: besides the page's)."""
    envs: tuple[str, ...] = ()
    """Only these envs (default: every env with results of the methods)."""
    results_root: Path = RESULTS
    """Holds <suite>/<env>/<method>/seed<k>/eval.csv (relative: from the repository root)."""
    suite: str = "mujoco"
    """The suite's folder under results_root."""
    out: Path | None = None
    """The plots' folder (relative: from the repository root). Default: plots/<suite>/<name>,
    the name being the screen's, "presets" or "methods"."""


@dataclass
class Methods:
    """List the methods: the current ones, and the retired screens with the experiment page that
    ran each (all of them run with `run --methods NAME`)."""


def _store(outcome: Outcome) -> None:
    write_results(outcome.job.result_dir, outcome.files)
    print(describe(outcome), flush=True)


def _suite_results(results_root: Path, suite: str) -> tuple[Path, list[Group]]:
    """A suite's results folder and its groups; BadInput if it holds no results."""
    suite_dir = REPO / results_root / suite
    groups = load_suite(suite_dir) if suite_dir.is_dir() else []
    if not groups:
        raise BadInput(f"no results in {results_root / suite}")
    return suite_dir, groups


def run(cfg: Run) -> None:
    check_at_least("--jobs", [cfg.jobs], 1)
    check_at_least("--report-steps", cfg.report_steps, 1)
    if cfg.address is not None and cfg.backend != "ray":
        raise BadInput(f"--address {cfg.address}: only with --backend ray")
    planned = plan(cfg)
    if cfg.backend == "ray":
        try:
            from harness import ray_backend
        except ImportError as err:
            raise BadInput(f"--backend ray: needs ray (pip install -e '.[ray]'): {err}") from None
    print(format_plan(planned, commands=cfg.dry_run), flush=True)
    if cfg.dry_run:
        return
    jobs = [job for job, _ in planned]
    try:
        if cfg.backend == "ray":
            outcomes = ray_backend.execute(jobs, cfg.address, _store)
        else:
            outcomes = local_backend.execute(jobs, cfg.jobs, _store)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        suite_dir = REPO / cfg.results_root / cfg.suite
        if suite_dir.is_dir() and load_suite(suite_dir):
            aggregate_suite(suite_dir, cfg.report_steps)
            print(f"aggregated into {suite_dir}")
    failed = [o.job.run_dir for o in outcomes if o.returncode not in (None, 0, *STOPPED_CODES)]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: " + ", ".join(map(str, failed)))
    stopped = [o.job.run_dir for o in outcomes if o.returncode in STOPPED_CODES]
    if stopped:
        raise SystemExit(f"{len(stopped)} run(s) stopped with a checkpoint; run again to continue")


def aggregate(cfg: Aggregate) -> None:
    check_at_least("--report-steps", cfg.report_steps, 1)
    root = REPO / cfg.results_root
    if not root.is_dir():
        raise BadInput(f"no results in {cfg.results_root}")
    if cfg.suites:
        check_listed("--suites", cfg.suites)
        suites = [_suite_results(cfg.results_root, suite)[0] for suite in cfg.suites]
    else:  # every folder with results (others, such as the bandit's plots, are left alone)
        suites = [p for p in sorted(root.iterdir()) if p.is_dir() and load_suite(p)]
        if not suites:
            raise BadInput(f"no results in {cfg.results_root}")
    for suite_dir in suites:
        rows = aggregate_suite(suite_dir, cfg.report_steps)
        print(f"{suite_dir}: {len(rows)} summary rows")


def table(cfg: Table) -> None:
    check_listed("--methods", cfg.methods)
    check_methods(cfg.methods)
    check_listed("--steps", cfg.steps)
    check_at_least("--steps", cfg.steps, 1)
    _, groups = _suite_results(cfg.results_root, cfg.suite)
    print(seed_table(groups, cfg.methods, cfg.steps))
    shown = [g for g in groups if g.method in cfg.methods or g.method == BASELINE]
    across = [r for r in suite_rows(shown, cfg.steps) if r["method"] in cfg.methods]
    if across:
        print(f"Across the envs. {SUITE_INTRO}\n")
        print("\n".join(suite_table(across)))
    print(f"Time to reach SAC's mean return at {max(cfg.steps)} steps:\n")
    print(reach_table(groups, cfg.methods, max(cfg.steps)))


def _plotted(cfg: Plot) -> tuple[str, list[str]]:
    """The plot folder's name and the methods to draw."""
    check_methods(cfg.methods)
    if cfg.screen is None:
        return ("methods", list(cfg.methods)) if cfg.methods else ("presets", list(PLOTTED))
    page = screen_methods(cfg.screen)
    if not page:
        pages = sorted({page_name(spec.page) for spec in METHODS.values() if spec.page})
        raise BadInput(
            f"--screen {cfg.screen}: no method names that page; pages: {', '.join(pages)}"
        )
    return page_name(cfg.screen), [*page, *cfg.methods, "sac"]


def plot(cfg: Plot) -> None:
    name, methods = _plotted(cfg)
    _, groups = _suite_results(cfg.results_root, cfg.suite)
    chosen = [g for g in groups if g.method in methods and g.env in (cfg.envs or [g.env])]
    if not chosen:
        where = f"suite {cfg.suite}" + (f" on {', '.join(cfg.envs)}" if cfg.envs else "")
        raise BadInput(f"no results of {', '.join(methods)} in {where}")
    folder = REPO / (cfg.out or Path("plots") / cfg.suite / name)
    folder.mkdir(parents=True, exist_ok=True)
    for path in plot_groups(folder, chosen):
        print(path)


def main(args: Sequence[str] | None = None) -> None:
    commands = {
        "run": Command(Run, run),
        "aggregate": Command(Aggregate, aggregate),
        "table": Command(Table, table),
        "plot": Command(Plot, plot),
        "methods": Command(Methods, lambda _: print(method_table())),
    }
    run_commands(commands, __doc__, args)


if __name__ == "__main__":
    main()
