"""Forward and backward of the critic ensemble alone, plain against batch-renormalised.

    python benchmarks/speed.py critic                    # plain, batch renorm
    python benchmarks/speed.py critic --base 4a96ca4     # + batch renorm as at that revision
    python benchmarks/speed.py critic --compile          # + batch renorm under torch.compile

Hopper-v5 sizes (obs 11, act 3), two 256-wide members, 512 rows (CrossQ's joint batch of current
and next state-actions), training mode, one torch thread. Timed by this thread's CPU time in
interleaved rounds (median over rounds), so load from other processes counts little.
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import diffpolicy.nets.critic as critic_module
from diffpolicy.nets.critic import CriticEnsemble
from timing.common import git_output

RENORM = "diffpolicy/nets/batch_renorm.py"


@dataclass
class Args:
    base: str | None = None
    """Also time the batch renorm layer of this git revision."""
    compile: bool = False
    """Also time the batch-renormalised critic under torch.compile (about 30 s to compile)."""
    rounds: int = 7
    calls: int = 20
    """Forward and backward passes per agent and round."""


def _renorm_at(rev: str, into: Path):
    """`EnsembleBatchRenorm` as the file stood at `rev`."""
    path = into / "batch_renorm_base.py"
    path.write_bytes(git_output(rev, "show", f"{rev}:{RENORM}"))
    spec = importlib.util.spec_from_file_location("batch_renorm_base", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EnsembleBatchRenorm


def _critic(batch_renorm: bool) -> CriticEnsemble:
    torch.manual_seed(0)
    return CriticEnsemble(11, 3, 2, (256, 256), batch_renorm=batch_renorm).train()


def main(args: Args) -> None:
    torch.set_num_threads(1)
    critics = {"plain": _critic(False), "batch renorm": _critic(True)}
    if args.compile:
        critics["batch renorm, compiled"] = torch.compile(_critic(True))
    if args.base is not None:
        with tempfile.TemporaryDirectory() as tmp:
            current = critic_module.EnsembleBatchRenorm
            critic_module.EnsembleBatchRenorm = _renorm_at(args.base, Path(tmp))
            try:
                critics[f"batch renorm at {args.base}"] = _critic(True)
            finally:
                critic_module.EnsembleBatchRenorm = current
    obs, act = torch.randn(512, 11), torch.randn(512, 3)

    def step(critic) -> None:
        critic(obs, act).pow(2).mean().backward()

    for critic in critics.values():  # warm-up (and compilation)
        step(critic)
        step(critic)
    times: dict[str, list[float]] = {name: [] for name in critics}
    for _ in range(args.rounds):
        for name, critic in critics.items():
            start = time.thread_time()
            for _ in range(args.calls):
                step(critic)
            times[name].append((time.thread_time() - start) / args.calls * 1e3)
    plain = statistics.median(times["plain"])
    print(f"{'critic (512 rows, forward + backward)':<40}{'CPU ms':>8}{'/ plain':>9}")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"{name:<40}{ms:>8.2f}{ms / plain:>9.2f}")
