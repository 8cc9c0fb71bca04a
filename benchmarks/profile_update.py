"""Where one training update's time goes, by phase and by operator.

    python benchmarks/profile_update.py                      # the best preset
    python benchmarks/profile_update.py --preset reference   # the 512-wide reference

One torch thread, Hopper-v5 sizes (obs 11, act 3), batch 256, a replay buffer of 10k random
transitions; `--updates` updates under torch.profiler after a warm-up. Phases are the
`record_function` ranges of `Agent.update` (target actions, critic step, actor step with its
grad-Q, target/EMA averaging); operators are aggregated by self CPU time, with the activation
functions and the optimisers singled out. Figures are ms per update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import tyro
from torch.profiler import ProfilerActivity, profile

from diffpolicy.rl import Agent, ReplayBuffer
from diffpolicy.rl.presets import MUJOCO_PRESETS as PRESETS

OBS_DIM, ACT_DIM, BATCH, FILL = 11, 3, 256, 10_000
ACTIVATION_OPS = ("mish", "sigmoid", "silu", "relu", "rsub", "MishFunction")


@dataclass
class Args:
    preset: Literal["best", "crossq-critic", "fast", "langevin-t3", "polyak-ln", "reference"] = (
        "best"
    )
    updates: int = 30
    """Updates profiled (after 10 warm-up updates)."""
    top: int = 12
    """Operators listed."""


def filled_buffer(seed: int = 0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    buffer = ReplayBuffer(OBS_DIM, ACT_DIM, FILL)
    for _ in range(FILL):
        buffer.add(
            rng.standard_normal(OBS_DIM).astype(np.float32),
            torch.from_numpy(rng.uniform(-1, 1, ACT_DIM).astype(np.float32)),
            float(rng.standard_normal()),
            rng.standard_normal(OBS_DIM).astype(np.float32),
            bool(rng.random() < 0.01),
            False,
        )
    return buffer


def main() -> None:
    args = tyro.cli(Args, description=__doc__)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    agent = Agent(OBS_DIM, ACT_DIM, PRESETS[args.preset]().agent)
    buffer = filled_buffer()
    for _ in range(10):
        agent.update(buffer.sample(BATCH))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.updates):
            agent.update(buffer.sample(BATCH))
    events = prof.key_averages()
    n = args.updates
    total = sum(e.self_cpu_time_total for e in events) / 1e3 / n
    print(f"preset {args.preset}: {total:.2f} ms per update (profiled, self CPU time)\n")
    print(f"{'phase':<28}{'ms':>8}{'share':>8}")
    for e in sorted(events, key=lambda e: e.key):
        if e.key.startswith("update/"):
            ms = e.cpu_time_total / 1e3 / n
            print(f"{e.key:<28}{ms:>8.2f}{ms / total:>8.0%}")
    ops = [e for e in events if not e.key.startswith("update/")]
    act = sum(e.self_cpu_time_total for e in ops if any(k in e.key for k in ACTIVATION_OPS))
    optim = sum(e.self_cpu_time_total for e in ops if "adam" in e.key.lower())
    mm = sum(
        e.self_cpu_time_total
        for e in ops
        if e.key in ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm")
    )
    for name, us in (("matmuls", mm), ("activations", act), ("optimisers", optim)):
        print(f"{name:<28}{us / 1e3 / n:>8.2f}{us / 1e3 / n / total:>8.0%}")
    print(f"\n{'operator (self CPU)':<36}{'ms':>8}{'calls':>8}{'share':>8}")
    for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        ms = e.self_cpu_time_total / 1e3 / n
        print(f"{e.key:<36}{ms:>8.2f}{e.count // n:>8}{ms / total:>8.0%}")


if __name__ == "__main__":
    main()
