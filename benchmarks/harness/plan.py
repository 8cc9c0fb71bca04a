"""Planning a sweep: one job per env x method x seed, and what to do with each run directory."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from harness.claim import is_claimed
from harness.cli import BadInput, check_at_least, check_listed
from harness.collect import read_eval
from harness.methods import METHODS, REPO, build_command

Suite = Literal["mujoco", "dmc"]
CHECKPOINT_FILES = ("checkpoint.pt", "sac_checkpoint.json")
"""A run directory holding one of these can be resumed (QSM loop, SB3 baselines)."""
Decision = Literal["skip", "busy", "resume", "restart", "fresh"]
LAUNCH = ("resume", "restart", "fresh")
"""Decisions that start a process."""


@dataclass
class Sweep:
    """Which runs: every method x env x seed, and where their files go."""

    suite: Suite = "mujoco"
    """"mujoco" (gymnasium ids, recipes/qsm_mujoco.py) or "dmc" (domain-task, qsm_dmc.py)."""
    envs: tuple[str, ...] = ("Hopper-v5",)
    """Environments of the suite."""
    methods: tuple[str, ...] = ("qsm-reference", "sac")
    """Names in harness/methods.py (`python benchmarks/learning.py methods` lists them)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of every env x method (the protocol asks for at least 3)."""
    steps: int = 100_000
    """Env-step budget of every run (a multiple of the evaluation interval)."""
    threads: int = 1
    """torch threads per run."""
    runs_root: Path = Path("runs")
    """Run directories (checkpoints): <runs-root>/<suite>/<env>/<method>/seed<k>.
    A relative path is taken from the repository root, as every path here."""
    results_root: Path = Path("benchmarks/results")
    """Copies of eval.csv (and sps.csv) and the aggregates: <results-root>/<suite>/..."""
    extra: str = ""
    """Flags appended to every diffpolicy recipe command (one quoted string: --extra="...")."""
    sac_extra: str = ""
    """Flags appended to every SB3 baseline command (one quoted string: --sac-extra="...")."""


class Job(NamedTuple):
    """One run of a sweep; picklable, so a Ray task can take it."""

    env: str
    method: str
    seed: int
    steps: int
    run_dir: Path
    result_dir: Path
    cmd: tuple[str, ...]
    """The argv of a new run; a resume appends --resume."""
    cwd: Path
    """Where the command runs: the repository root on the harness's machine (a Ray worker
    imports this package from elsewhere, so it cannot find the root itself)."""

    def argv(self, resume: bool) -> list[str]:
        return [*self.cmd, "--resume"] if resume else list(self.cmd)

    @property
    def gpus(self) -> int:
        """1 if the run's --device is a CUDA device (Ray then reserves a GPU for it), else 0."""
        args = self.cmd
        devices = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--device"]
        return int(bool(devices) and devices[-1].startswith("cuda"))

    @property
    def name(self) -> str:
        return f"{self.env} {self.method} seed{self.seed}"


def has_checkpoint(run_dir: Path) -> bool:
    return any((Path(run_dir) / name).is_file() for name in CHECKPOINT_FILES)


def decide(run_dir: Path, steps: int, busy: bool = False) -> Decision:
    """Skip a run whose eval.csv reaches the budget; leave a claimed one alone; resume one with a
    checkpoint; move aside and restart one that started but never checkpointed; else start it."""
    run_dir = Path(run_dir)
    curve = read_eval(run_dir / "eval.csv")
    if curve and max(curve) >= steps:
        return "skip"
    if busy:
        return "busy"
    if has_checkpoint(run_dir):
        return "resume"
    if (run_dir / "config.json").exists():
        return "restart"
    return "fresh"


def check_methods(methods: Sequence[str]) -> None:
    """BadInput unless every name is a method of harness/methods.py."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        s = "s" if len(unknown) > 1 else ""
        raise BadInput(
            f"--methods {' '.join(unknown)}: unknown method{s} "
            "(python benchmarks/learning.py methods lists them)"
        )


def _in_suite(suite: str, env: str) -> bool:
    """Whether env belongs to the suite whose registry names it, gymnasium's or DeepMind
    Control's task list; gymnasium's wins, as in `diffpolicy.rl.make_env`."""
    import gymnasium

    if suite == "mujoco":
        return env in gymnasium.registry
    try:
        from diffpolicy.rl.envs.dmc import DMC_TASKS
    except ImportError as err:
        raise BadInput(f"--suite dmc: needs dm_control (pip install -e '.[dmc]'): {err}") from None
    return env in DMC_TASKS and env not in gymnasium.registry


def check_env(suite: str, env: str) -> None:
    """BadInput unless env belongs to the suite."""
    if _in_suite(suite, env):
        return
    other = "dmc" if suite == "mujoco" else "mujoco"
    try:
        elsewhere = _in_suite(other, env)
    except BadInput:  # dm_control is not installed
        elsewhere = False
    if elsewhere:
        raise BadInput(f"--envs {env}: an env of suite {other}, not {suite} (--suite {other})")
    kind = "a gymnasium id" if suite == "mujoco" else "a DeepMind Control domain-task"
    raise BadInput(f"--envs {env}: not an env of suite {suite} ({kind})")


def check_root(flag: str, root: Path) -> None:
    """BadInput unless the folder exists or can be created: its nearest existing ancestor (or
    itself) must be a folder that this process can write in."""
    existing = next(p for p in (root, *root.parents) if (REPO / p).exists())
    if not (REPO / existing).is_dir():
        raise BadInput(f"{flag} {root}: {existing} is not a folder")
    if existing != root and not os.access(REPO / existing, os.W_OK | os.X_OK):
        raise BadInput(f"{flag} {root}: cannot create folders in {existing}")


def _split(flag: str, text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as err:
        raise BadInput(f"{flag} {text!r}: not a shell-quoted list of flags ({err})") from None


def check_sweep(sweep: Sweep) -> None:
    """Every check that needs no run: BadInput names the first flag that is wrong."""
    for flag in ("envs", "methods", "seeds"):
        check_listed(f"--{flag}", getattr(sweep, flag))
    check_methods(sweep.methods)
    for env in sweep.envs:
        check_env(sweep.suite, env)
    check_at_least("--seeds", sweep.seeds, 0)
    check_at_least("--steps", [sweep.steps], 1)
    check_at_least("--threads", [sweep.threads], 1)
    check_root("--runs-root", sweep.runs_root)
    check_root("--results-root", sweep.results_root)


def plan(sweep: Sweep) -> list[tuple[Job, Decision]]:
    """One job per env x method x seed with its decision now (`launch` decides again)."""
    check_sweep(sweep)
    extra, sac_extra = _split("--extra", sweep.extra), _split("--sac-extra", sweep.sac_extra)
    planned = []
    for env in sweep.envs:
        for method in sweep.methods:
            for seed in sweep.seeds:
                tail = Path(sweep.suite) / env / method / f"seed{seed}"
                run_dir = (REPO / sweep.runs_root / tail).resolve()
                result_dir = REPO / sweep.results_root / tail
                cmd = build_command(
                    method,
                    sweep.suite,
                    env,
                    seed,
                    sweep.steps,
                    run_dir,
                    extra,
                    sac_extra,
                    sweep.threads,
                )
                job = Job(env, method, seed, sweep.steps, run_dir, result_dir, tuple(cmd), REPO)
                planned.append((job, decide(run_dir, sweep.steps, is_claimed(run_dir))))
    return planned


def format_plan(planned: Sequence[tuple[Job, Decision]], commands: bool = False) -> str:
    lines = []
    for job, decision in planned:
        lines.append(f"{decision:8s} {job.name}  {job.run_dir}")
        if commands and decision in LAUNCH:
            lines.append("    " + shlex.join(job.argv(decision == "resume")))
    return "\n".join(lines)
