"""Update and acting cost of QSM presets against SB3 SAC, side by side in one process.

    python benchmarks/speed.py update            # about 2 minutes
    python benchmarks/speed.py update --rounds 5 --seconds 3
    python benchmarks/speed.py update --clock cpu --crossq   # + sb3-contrib CrossQ (slow)
    python benchmarks/speed.py update --clock cpu --critic-width 1024   # + crossq-critic, wider
    python benchmarks/speed.py update --clock cpu --methods qsm-ln-no-target   # + harness methods
    python benchmarks/speed.py update --clock cpu --objectives dql dipo   # + other actor objectives
    python benchmarks/speed.py update --device cuda   # every agent on the GPU (wall clock)
    python benchmarks/speed.py update --clock cpu --bfloat16   # + the best preset in bfloat16

One torch thread (`--threads N` for more), Hopper-v5 sizes (obs 11, act 3), batch 256, replay
buffers of 10k random transitions. For each agent: ms per update (drawing the minibatch included)
and ms per action at batch 1 (numpy observation in, numpy action out, exploration noise included,
as the training loop acts). The agents are timed in interleaved rounds (SAC, reference, best, SAC,
...) so that load from other processes falls on all of them alike; each figure is the median over
rounds of the mean over one round. Ends with `update ratio best/SAC: X` (ratio of the two medians).
`--clock cpu` counts this thread's CPU time only (timing/common.py). For each diffusion agent it
also counts the denoiser's calls in one update (the mean over 6 updates after the first) and in one
action, and the rows those calls evaluate per update, in batches (256 rows).

Agents: SB3 SAC with its defaults (256x256 networks), the QSM reference preset
(`presets.qsm_reference`, 512x512, DDPM K = 5), the Langevin preset with the reference's critic
(`presets.qsm_langevin_t3`), the best preset (`presets.qsm_best`: the same with LayerNorm critics,
CrossQ's Adam and reward normalisation), the same actor on CrossQ's critic
(`presets.qsm_crossq_critic`, the best preset until issue 14's 100k confirmation) and the fast
preset (`presets.qsm_fast`: the CrossQ-critic preset with 1 target step and policy delay 3).
`--methods` adds QSM methods of the learning harness (benchmarks/harness/methods.py), each built
from its flags as its runs are; `--objectives` the best preset with another actor objective
(`--agent.objective NAME`), acting with DDPM where the objective backpropagates through the chain
(as the harness methods dime-best and dacer-best do); "dipo" is registered from
examples/custom_objective.py.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from diffpolicy.rl.agent.agent import AgentConfig
from diffpolicy.rl.agent.components import OBJECTIVES
from diffpolicy.rl.agent.presets import (
    MUJOCO_PRESETS,
    qsm_best,
    qsm_crossq_critic,
    qsm_fast,
    qsm_langevin_t3,
    qsm_reference,
)
from diffpolicy.rl.run.cli import parse_with_preset
from diffpolicy.rl.run.validation import ConfigError, check_device
from harness.cli import BadInput
from timing.common import Clock, interleaved_medians, qsm_tasks, random_transitions, sac_tasks
from timing.denoiser_calls import denoiser_calls


@dataclass
class Args:
    rounds: int = 7
    """Interleaved rounds; each figure is the median over rounds."""
    seconds: float = 2.0
    """Time spent on each agent and task per round."""
    clock: Clock = "wall"
    """wall: time.perf_counter; cpu: this thread's CPU time (time.thread_time)."""
    crossq: bool = False
    """Also time sb3-contrib's CrossQ (1024-wide critics: about 9x SAC's update)."""
    critic_width: int = 0
    """Also time the CrossQ-critic preset with critics this wide (0: skip)."""
    bfloat16: bool = False
    """Also time the best preset with precision "bfloat16" (mixed precision: fast on a GPU or a
    CPU with AVX512-BF16 or AMX; emulated, and far slower, on other CPUs)."""
    methods: tuple[str, ...] = ()
    """Also time these QSM methods of the learning harness (its screen variants)."""
    objectives: tuple[str, ...] = ()
    """Also time the best preset with each of these actor objectives ("dipo": the example's)."""
    threads: int = 1
    """torch threads (intra-op). More than one needs --clock wall: the cpu clock counts only the
    calling thread's time."""
    device: str = "cpu"
    """torch device of every agent, SAC's too ("cuda": on the GPU; needs --clock wall). Each
    timing waits for the device's queued work before it reads the clock."""


def harness_method_configs(names: tuple[str, ...]) -> dict[str, AgentConfig]:
    """The AgentConfig each named QSM method of the learning harness runs with (its flags on the
    recipe's default preset, as `build_command` passes them). BadInput names a bad name."""
    from harness.methods import METHODS

    qsm = [m for m, spec in METHODS.items() if spec.family == "diffpolicy"]
    for name in names:
        if name not in qsm:
            raise BadInput(f"--methods {name}: not a QSM method; valid: {', '.join(qsm)}")
    return {
        name: parse_with_preset(
            MUJOCO_PRESETS, "best", "Hopper-v5", args=list(METHODS[name].flags)
        )[0].agent
        for name in names
    }


def objective_configs(names: tuple[str, ...]) -> dict[str, AgentConfig]:
    """The best preset with `--agent.objective NAME`, on DDPM where NAME backpropagates through
    the chain (the Langevin chain cannot). BadInput names an unknown objective."""
    if "dipo" in names:  # registers "dipo"
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
        import custom_objective  # noqa: F401
    configs = {}
    for name in names:
        if name not in OBJECTIVES:
            valid = ", ".join(dict.fromkeys([*OBJECTIVES, "dipo"]))
            raise BadInput(f"--objectives {name}: unknown; valid: {valid}")
        flags = ["--agent.objective", name]
        if OBJECTIVES[name].differentiates_sampler:
            flags += ["--agent.sampler", "ddpm", "--agent.langevin-score", "trained"]
        cfg = parse_with_preset(MUJOCO_PRESETS, "best", "Hopper-v5", args=flags)[0].agent
        configs[f"best, objective {name}"] = cfg
    return configs


def main(args: Args) -> None:
    methods = {**harness_method_configs(args.methods), **objective_configs(args.objectives)}
    if args.threads < 1 or (args.threads > 1 and args.clock == "cpu"):
        raise BadInput(f"--threads {args.threads}: needs >= 1, and --clock wall when above 1")
    if args.device != "cpu" and args.clock == "cpu":
        raise BadInput(
            f"--device {args.device}: needs --clock wall (the cpu clock misses GPU time)"
        )
    try:
        device = check_device(args.device)
    except ConfigError as err:
        raise BadInput(str(err)) from None
    torch.set_num_threads(args.threads)
    data = random_transitions()
    dev = str(device)
    agents = {
        "SB3 SAC": sac_tasks(data, device=dev),
        "QSM reference": qsm_tasks(qsm_reference().agent, data, device=dev),
        "QSM langevin-t3": qsm_tasks(qsm_langevin_t3().agent, data, device=dev),
        "QSM best": qsm_tasks(qsm_best().agent, data, device=dev),
        "QSM crossq-critic": qsm_tasks(qsm_crossq_critic().agent, data, device=dev),
        "QSM fast": qsm_tasks(qsm_fast().agent, data, device=dev),
    }
    if args.critic_width:
        base = qsm_crossq_critic().agent
        wide = dataclasses.replace(
            base, critic_hidden=(args.critic_width,) * len(base.critic_hidden)
        )
        agents[f"QSM crossq-critic w{args.critic_width}"] = qsm_tasks(wide, data, device=dev)
    if args.bfloat16:
        half = dataclasses.replace(qsm_best().agent, precision="bfloat16")
        agents["QSM best bfloat16"] = qsm_tasks(half, data, device=dev)
    for name, cfg in methods.items():
        agents[name] = qsm_tasks(cfg, data, device=dev)
    if args.crossq:
        agents["sb3c CrossQ"] = sac_tasks(data, "crossq", device=dev)
    sb3 = ("SB3 SAC", "sb3c CrossQ")
    calls = {a: denoiser_calls(tasks) for a, tasks in agents.items() if a not in sb3}
    every_task = {(a, k): fn for a, tasks in agents.items() for k, fn in tasks.items()}
    median = interleaved_medians(every_task, args.rounds, args.seconds, args.clock, progress=True)
    sac_update, sac_act = median["SB3 SAC", "update"], median["SB3 SAC", "act"]
    print(f"\n{args.clock} clock, {dev}")
    header = f"{'agent':<32}{'update ms':>11}{'/ SAC':>8}{'act ms':>10}{'/ SAC':>8}"
    print(header + f"{'calls/update':>14}{'batches/update':>16}{'calls/act':>11}")
    for a in agents:
        u, act = median[a, "update"], median[a, "act"]
        line = f"{a:<32}{u:>11.2f}{u / sac_update:>8.2f}{act:>10.3f}{act / sac_act:>8.2f}"
        if a in calls:
            per_update, batches, per_act = calls[a]
            line += f"{per_update:>14.3g}{batches:>16.1f}{per_act:>11}"
        print(line)
    print(f"\nupdate ratio best/SAC: {median['QSM best', 'update'] / sac_update:.2f}")
    print(f"act ratio best/SAC: {median['QSM best', 'act'] / sac_act:.2f}")
    t3 = median["QSM langevin-t3", "update"]
    print(f"update ratio langevin-t3/SAC: {t3 / sac_update:.2f}")
    print(f"update ratio fast/SAC: {median['QSM fast', 'update'] / sac_update:.2f}")
    xq = median["QSM crossq-critic", "update"]
    print(f"update ratio crossq-critic/SAC: {xq / sac_update:.2f}")
    if args.bfloat16:
        half = median["QSM best bfloat16", "update"]
        print(f"update ratio best-bfloat16/SAC: {half / sac_update:.2f}")
