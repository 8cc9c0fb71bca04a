"""What the CrossQ-critic preset's update would cost with fewer target steps and a policy
delay, against SB3 SAC, side by side in one process (issue 13: which algorithm switches could
reach SAC's cost).

    python benchmarks/speed.py algorithms --clock cpu     # about 1 minute

The same setting as `speed.py update` (one torch thread, Hopper-v5 sizes, batch 256, interleaved
rounds, medians): the CrossQ-critic preset (`presets.qsm_crossq_critic`, "cq": the best preset
when this was measured; 3 Langevin steps for the critic's target actions, an actor step every
update) and the same agent with `target_sampler_steps` 1 (t1) and `actor_every` 2 or 3 (d2, d3:
CrossQ's policy delay is 3). Per-update time with a policy delay is the mean over updates, so it
averages updates with and without an actor step. These are costs only: what each switch does to
returns is on the experiment pages.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from diffpolicy.rl.agent.presets import qsm_crossq_critic
from timing.common import Clock, interleaved_medians, qsm_tasks, random_transitions, sac_tasks

SWITCHES = {
    "cq": {},
    "cq t1": {"target_sampler_steps": 1},
    "cq d2": {"actor_every": 2},
    "cq d3": {"actor_every": 3},
    "cq t1 d2": {"target_sampler_steps": 1, "actor_every": 2},
    "cq t1 d3": {"target_sampler_steps": 1, "actor_every": 3},
}


@dataclass
class Args:
    rounds: int = 5
    """Interleaved rounds; each figure is the median over rounds."""
    seconds: float = 1.5
    """Time spent on each agent per round."""
    clock: Clock = "wall"
    """wall: time.perf_counter; cpu: this thread's CPU time (as `speed.py update`'s --clock)."""


def main(args: Args) -> None:
    torch.set_num_threads(1)
    data = random_transitions()
    base = qsm_crossq_critic().agent
    updates = {"SB3 SAC": sac_tasks(data)["update"]}
    for name, changes in SWITCHES.items():
        updates[name] = qsm_tasks(dataclasses.replace(base, **changes), data)["update"]
    median = interleaved_medians(updates, args.rounds, args.seconds, args.clock)
    sac = median["SB3 SAC"]
    print(f"\n{args.clock} clock\n{'agent':<14}{'update ms':>10}{'/ SAC':>8}")
    for name, ms in median.items():
        print(f"{name:<14}{ms:>10.2f}{ms / sac:>8.2f}")
