"""Where one training update's time goes, by phase and by operator.

    python benchmarks/speed.py profile                      # the best preset
    python benchmarks/speed.py profile --preset reference   # the 512-wide reference

One torch thread, Hopper-v5 sizes (obs 11, act 3), batch 256, a replay buffer of 10k random
transitions; `--updates` updates under torch.profiler after a warm-up. Phases are the
`record_function` ranges of `Agent.update` (target actions, critic step, actor step with its
grad-Q, target/EMA averaging); operators are aggregated by self CPU time, with the activation
functions and the optimisers singled out. Figures are ms per update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.profiler import ProfilerActivity, profile

from diffpolicy.rl import Agent
from diffpolicy.rl.agent.presets import MUJOCO_PRESETS as PRESETS
from timing.common import ACT_DIM, BATCH, OBS_DIM, filled_buffer, random_transitions

ACTIVATION_OPS = ("mish", "sigmoid", "silu", "relu", "rsub", "MishFunction")
MATMULS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm")


@dataclass
class Args:
    preset: Literal[
        "best",
        "crossq-critic",
        "fast",
        "langevin-t3",
        "polyak-ln",
        "polyak-ln-rewnorm",
        "reference",
    ] = "best"
    updates: int = 30
    """Updates profiled (after 10 warm-up updates)."""
    top: int = 12
    """Operators listed."""


def main(args: Args) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    agent = Agent(OBS_DIM, ACT_DIM, PRESETS[args.preset]().agent)
    buffer = filled_buffer(random_transitions())
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
    mm = sum(e.self_cpu_time_total for e in ops if e.key in MATMULS)
    for name, us in (("matmuls", mm), ("activations", act), ("optimisers", optim)):
        print(f"{name:<28}{us / 1e3 / n:>8.2f}{us / 1e3 / n / total:>8.0%}")
    print(f"\n{'operator (self CPU)':<36}{'ms':>8}{'calls':>8}{'share':>8}")
    for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        ms = e.self_cpu_time_total / 1e3 / n
        print(f"{e.key:<36}{ms:>8.2f}{e.count // n:>8}{ms / total:>8.0%}")
