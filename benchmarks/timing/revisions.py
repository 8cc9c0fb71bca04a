"""Update and acting time of this checkout against an earlier git revision, in ONE process.

    python benchmarks/speed.py revisions --base f1d4dca
    python benchmarks/speed.py revisions --base HEAD~3 --rounds 9 --only best

A shared, noisy machine makes timings taken minutes apart incomparable; here the base revision's
`diffpolicy` is exported (`git archive`) into a temporary directory under another package name
and both are timed in interleaved rounds in one process, one torch thread, Hopper-v5 sizes,
batch 256 (as `speed.py update`). Each agent is built from the same config fields in both
versions (`CONFIGS`; a field the base version lacks must be at its default there).
"""

from __future__ import annotations

import importlib
import io
import re
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.cli import BadInput
from timing.common import Clock, git_output, interleaved_medians, qsm_tasks, random_transitions

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
    clock: Clock = "wall"
    """wall, or this thread's CPU time (as `speed.py update`'s --clock)."""
    only: str = ""
    """Time only the agents whose name contains this text (e.g. "CrossQ")."""


def import_revision(rev: str, into: Path):
    """`diffpolicy` at `rev`, importable as package `diffpolicy_base`."""
    archive = git_output(rev, "archive", rev, "diffpolicy")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / "diffpolicy"
    for path in package.rglob("*.py"):
        text = re.sub(r"\bdiffpolicy\b", "diffpolicy_base", path.read_text())
        path.write_text(text)
    package.rename(into / "diffpolicy_base")
    sys.path.insert(0, str(into))
    return importlib.import_module("diffpolicy_base.rl")


def main(args: Args) -> None:
    torch.set_num_threads(1)
    import diffpolicy.rl as new

    configs = {name: f for name, f in CONFIGS.items() if args.only in name}
    if not configs:
        raise BadInput(f"--only {args.only!r} matches none of: {', '.join(CONFIGS)}")
    data = random_transitions()
    with tempfile.TemporaryDirectory() as tmp:
        base = import_revision(args.base, Path(tmp))
        timed = {}
        for name, fields in configs.items():
            for rev, rl, more in ((args.base, base, {}), ("this", new, NEW_ONLY.get(name, {}))):
                tasks = qsm_tasks(rl.AgentConfig(**{**fields, **more}), data, rl)
                timed.update({((name, rev), k): fn for k, fn in tasks.items()})
        med = interleaved_medians(timed, args.rounds, args.seconds, args.clock)
    print(f"{'agent':<36}{'revision':>10}{'update ms':>11}{'act ms':>9}")
    for name in configs:
        for rev in (args.base, "this"):
            u, a = med[(name, rev), "update"], med[(name, rev), "act"]
            print(f"{name:<36}{rev:>10}{u:>11.2f}{a:>9.3f}")
        ratio = med[(name, "this"), "update"] / med[(name, args.base), "update"]
        act = med[(name, "this"), "act"] / med[(name, args.base), "act"]
        print(f"{'':<36}{'this/base':>10}{ratio:>11.2f}{act:>9.2f}")
