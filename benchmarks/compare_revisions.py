"""Update and acting time of this checkout against an earlier git revision, in ONE process.

    python benchmarks/compare_revisions.py --base f1d4dca
    python benchmarks/compare_revisions.py --base HEAD~3 --rounds 9 --only best

A shared, noisy machine makes timings taken minutes apart incomparable; here the base revision's
`diffpolicy` is exported (`git archive`) into a temporary directory under another package name
and both are timed in interleaved rounds in one process, one torch thread, Hopper-v5 sizes,
batch 256 (as `update_speed.py`). Each agent is built from the same config fields in both
versions (`CONFIGS`; a field the base version lacks must be at its default there).
"""

from __future__ import annotations

import importlib
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent))
from update_speed import mean_ms, qsm_tasks, random_transitions  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WIDE = {"actor_hidden": (256, 256), "critic_hidden": (256, 256)}
CONFIGS = {
    "reference (512, DDPM K=5)": {},
    "Langevin variant (256, 10 steps)": {**WIDE, "sampler": "langevin"},
    # presets.qsm_crossq_critic's fields (the best preset until issue 14's 100k confirmation),
    # spelled out so that a base revision without presets builds it.
    "CrossQ-critic preset": {
        **WIDE,
        "sampler": "langevin",
        "target_sampler_steps": 3,
        "critic_batch_renorm": True,
        "critic_target_network": False,
        "critic_betas": (0.5, 0.999),
        "critic_lr": 1e-3,
    },
}
NEW_ONLY = {  # fields the base revision may lack, with the values that keep its behaviour
    "Langevin variant (256, 10 steps)": {"langevin_score": "schedule"},
    "CrossQ-critic preset": {"langevin_score": "schedule"},
}


@dataclass
class Args:
    base: str = "f1d4dca"
    """The git revision to compare against."""
    rounds: int = 7
    seconds: float = 1.5
    clock: Literal["wall", "cpu"] = "wall"
    """wall, or this thread's CPU time (update_speed.py's --clock)."""
    only: str = ""
    """Time only the agents whose name contains this text (e.g. "CrossQ")."""


def import_revision(rev: str, into: Path):
    """`diffpolicy` at `rev`, importable as package `diffpolicy_base`."""
    archive = into / "base.tar"
    with open(archive, "wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "diffpolicy"], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    package = into / "diffpolicy"
    for path in package.rglob("*.py"):
        text = re.sub(r"\bdiffpolicy\b", "diffpolicy_base", path.read_text())
        path.write_text(text)
    package.rename(into / "diffpolicy_base")
    sys.path.insert(0, str(into))
    return importlib.import_module("diffpolicy_base.rl")


def tasks(rl, fields: dict, data: dict) -> dict:
    return qsm_tasks(rl.AgentConfig(**fields), data, rl)


def main() -> None:
    args = tyro.cli(Args, description=__doc__)
    torch.set_num_threads(1)
    import diffpolicy.rl as new

    configs = {name: f for name, f in CONFIGS.items() if args.only in name}
    if not configs:
        raise SystemExit(f"error: --only {args.only!r} matches none of: {', '.join(CONFIGS)}")
    data = random_transitions()
    with tempfile.TemporaryDirectory() as tmp:
        base = import_revision(args.base, Path(tmp))
        timed = {}
        for name, fields in configs.items():
            timed[name, args.base] = tasks(base, fields, data)
            timed[name, "this"] = tasks(new, {**fields, **NEW_ONLY.get(name, {})}, data)
        for fns in timed.values():
            for fn in fns.values():
                mean_ms(fn, 0.2)
        times = {(key, k): [] for key, fns in timed.items() for k in fns}
        for _ in range(args.rounds):
            for key, fns in timed.items():
                for k, fn in fns.items():
                    times[key, k].append(mean_ms(fn, args.seconds, args.clock))
    med = {key: statistics.median(v) for key, v in times.items()}
    print(f"{'agent':<36}{'revision':>10}{'update ms':>11}{'act ms':>9}")
    for name in configs:
        for rev in (args.base, "this"):
            u, a = med[(name, rev), "update"], med[(name, rev), "act"]
            print(f"{name:<36}{rev:>10}{u:>11.2f}{a:>9.3f}")
        ratio = med[(name, "this"), "update"] / med[(name, args.base), "update"]
        act = med[(name, "this"), "act"] / med[(name, args.base), "act"]
        print(f"{'':<36}{'this/base':>10}{ratio:>11.2f}{act:>9.2f}")


if __name__ == "__main__":
    main()
