"""Update and acting cost of QSM presets against SB3 SAC, side by side in one process.

    python benchmarks/update_speed.py            # about 2 minutes
    python benchmarks/update_speed.py --rounds 5 --seconds 3
    python benchmarks/update_speed.py --clock cpu --crossq   # + sb3-contrib CrossQ (slow)
    python benchmarks/update_speed.py --clock cpu --critic-width 1024   # + crossq-critic, wider
    python benchmarks/update_speed.py --clock cpu --methods qsm-ln-no-target   # + harness methods
    python benchmarks/update_speed.py --device cuda   # every agent on the GPU (wall clock)
    python benchmarks/update_speed.py --clock cpu --bfloat16   # + the best preset in bfloat16

One torch thread (`--threads N` for more), Hopper-v5 sizes (obs 11, act 3), batch 256, replay
buffers of 10k random transitions. For each agent: ms per update (drawing the minibatch included)
and ms per action at batch 1 (numpy observation in, numpy action out, exploration noise included,
as the training loop acts). The agents are timed in interleaved rounds (SAC, reference, best, SAC,
...) so that load from other processes falls on all of them alike; each figure is the median over
rounds of the mean over one round. Ends with `update ratio best/SAC: X` (ratio of the two medians).

`--clock cpu` measures the calling thread's CPU time (time.thread_time) instead of wall time:
with one torch thread every op runs on that thread, so time the OS gives to other processes is
not counted, and figures taken on a busy machine come close to a quiet machine's wall figures
(cache and memory-bandwidth contention still count). Wall time is the default and what a user
waits for.

Agents: SB3 SAC with its defaults (256x256 networks), the QSM reference preset
(`presets.qsm_reference`, 512x512, DDPM K = 5), the Langevin preset with the reference's critic
(`presets.qsm_langevin_t3`), the best preset (`presets.qsm_best`: the same with LayerNorm
critics and CrossQ's Adam), the same actor on CrossQ's critic (`presets.qsm_crossq_critic`, the
best preset until issue 14's 100k confirmation) and the fast preset (`presets.qsm_fast`: the
CrossQ-critic preset with 1 target step and policy delay 3). `--methods` adds QSM methods of the
learning harness (benchmarks/harness/methods.py), each built from its flags as its runs are.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch
import tyro

import diffpolicy.rl
from diffpolicy.rl.agent import AgentConfig
from diffpolicy.rl.cli import parse_with_preset
from diffpolicy.rl.presets import (
    MUJOCO_PRESETS,
    qsm_best,
    qsm_crossq_critic,
    qsm_fast,
    qsm_langevin_t3,
    qsm_reference,
)
from diffpolicy.rl.validation import ConfigError, check_device

OBS_DIM, ACT_DIM, BATCH, FILL = 11, 3, 256, 10_000
K = TypeVar("K")


@dataclass
class Args:
    rounds: int = 7
    """Interleaved rounds; each figure is the median over rounds."""
    seconds: float = 2.0
    """Time spent on each agent and task per round."""
    clock: Literal["wall", "cpu"] = "wall"
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
    threads: int = 1
    """torch threads (intra-op). More than one needs --clock wall: the cpu clock counts only the
    calling thread's time."""
    device: str = "cpu"
    """torch device of every agent, SAC's too ("cuda": on the GPU; needs --clock wall). Each
    timing waits for the device's queued work before it reads the clock."""


def random_transitions(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.standard_normal((FILL, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (FILL, ACT_DIM)).astype(np.float32),
        "rewards": rng.standard_normal(FILL).astype(np.float32),
        "next_obs": rng.standard_normal((FILL, OBS_DIM)).astype(np.float32),
        "terminated": rng.random(FILL) < 0.01,
    }


def qsm_tasks(cfg, data, rl=None, device: str = "cpu") -> dict[str, Callable[[], object]]:
    """Update and act of an agent built from `cfg` by `rl` (default `diffpolicy.rl`; another
    version of the package for `compare_revisions.py`), on `device`."""
    rl = rl or diffpolicy.rl
    torch.manual_seed(0)
    agent = rl.Agent(OBS_DIM, ACT_DIM, cfg).to(device)
    buffer = rl.ReplayBuffer(OBS_DIM, ACT_DIM, FILL, device)
    for i in range(FILL):
        buffer.add(
            data["obs"][i],
            torch.from_numpy(data["actions"][i]),
            float(data["rewards"][i]),
            data["next_obs"][i],
            bool(data["terminated"][i]),
            False,
        )
    obs = data["obs"][0]

    def act():
        obs_t = torch.as_tensor(obs, device=device).unsqueeze(0)
        return agent.act(obs_t, explore=True)[0].cpu().numpy()

    return {"update": lambda: agent.update(buffer.sample(BATCH)), "act": act}


def sac_tasks(data, algo: str = "sac", device: str = "cpu") -> dict[str, Callable[[], object]]:
    """SB3 SAC, or (algo "crossq") sb3-contrib's CrossQ, each with its own defaults."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import Logger

    if algo == "crossq":
        from sb3_contrib import CrossQ as SAC  # the same calls below

    class Spaces(gym.Env):  # SAC needs an env only for its spaces here
        observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)

    model = SAC("MlpPolicy", Spaces(), buffer_size=FILL, seed=0, device=device)
    model.set_logger(Logger(folder=None, output_formats=[]))
    for i in range(FILL):
        s = slice(i, i + 1)
        model.replay_buffer.add(
            data["obs"][s],
            data["next_obs"][s],
            data["actions"][s],
            data["rewards"][s],
            data["terminated"][s],
            [{}],
        )
    obs = data["obs"][0]
    return {
        "update": lambda: model.train(gradient_steps=1, batch_size=BATCH),
        "act": lambda: model.predict(obs, deterministic=False)[0],
    }


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def wait_for_gpu() -> None:
    """Wait for the GPU's queued work (no-op on CPU), so a wall-clock reading counts it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def mean_ms(fn: Callable[[], object], seconds: float, clock: str = "wall") -> float:
    """Mean ms per call, by `clock` ("wall" or "cpu"), over at least `seconds` of wall time (and
    at least 3 calls)."""
    read = CLOCKS[clock]
    wait_for_gpu()
    calls, start, begin = 0, time.perf_counter(), read()
    while calls < 3 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    wait_for_gpu()
    return (read() - begin) / calls * 1e3


def interleaved_medians(
    tasks: dict[K, Callable[[], object]],
    rounds: int,
    seconds: float,
    clock: str = "wall",
    progress: bool = False,
) -> dict[K, float]:
    """Median over `rounds` of each task's mean ms per call, after a short warm-up of each; every
    round times every task once, in order, so that load from other processes falls on all alike."""
    for fn in tasks.values():  # warm up: first calls allocate and fill caches
        mean_ms(fn, 0.2)
    times: dict[K, list[float]] = {key: [] for key in tasks}
    for r in range(rounds):
        for key, fn in tasks.items():
            times[key].append(mean_ms(fn, seconds, clock))
        if progress:
            print(f"round {r + 1}/{rounds} done", flush=True)
    return {key: statistics.median(values) for key, values in times.items()}


def harness_method_configs(names: tuple[str, ...]) -> dict[str, AgentConfig]:
    """The AgentConfig each named QSM method of the learning harness runs with (its flags on the
    recipe's default preset, as `build_command` passes them). SystemExit names a bad name."""
    from harness.methods import METHODS

    qsm = [m for m, spec in METHODS.items() if spec.family == "diffpolicy"]
    for name in names:
        if name not in qsm:
            raise SystemExit(f"--methods: {name!r} is not a QSM method; valid: {', '.join(qsm)}")
    return {
        name: parse_with_preset(
            MUJOCO_PRESETS, "best", "Hopper-v5", args=list(METHODS[name].flags)
        )[0].agent
        for name in names
    }


def main() -> None:
    args = tyro.cli(Args, description=__doc__)
    methods = harness_method_configs(args.methods)
    if args.threads < 1 or (args.threads > 1 and args.clock == "cpu"):
        raise SystemExit(f"--threads {args.threads}: needs >= 1, and --clock wall when above 1")
    if args.device != "cpu" and args.clock == "cpu":
        raise SystemExit(
            f"--device {args.device}: needs --clock wall (the cpu clock misses GPU time)"
        )
    try:
        device = check_device(args.device)
    except ConfigError as err:
        raise SystemExit(str(err)) from None
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
    every_task = {(a, k): fn for a, tasks in agents.items() for k, fn in tasks.items()}
    median = interleaved_medians(every_task, args.rounds, args.seconds, args.clock, progress=True)
    sac_update, sac_act = median["SB3 SAC", "update"], median["SB3 SAC", "act"]
    print(f"\n{args.clock} clock, {dev}")
    print(f"{'agent':<32}{'update ms':>11}{'/ SAC':>8}{'act ms':>10}{'/ SAC':>8}")
    for a in agents:
        u, act = median[a, "update"], median[a, "act"]
        print(f"{a:<32}{u:>11.2f}{u / sac_update:>8.2f}{act:>10.3f}{act / sac_act:>8.2f}")
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


if __name__ == "__main__":
    main()
