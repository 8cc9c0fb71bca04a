"""The setting the speed measurements share: Hopper-v5 sizes (obs 11, act 3), batch 256, replay
buffers of 10k random transitions, and agents timed side by side in one process, in interleaved
rounds, so that load from other processes falls on all of them alike.

`--clock cpu` measures the calling thread's CPU time (time.thread_time) instead of wall time:
with one torch thread every op runs on that thread, so time the OS gives to other processes is
not counted, and figures taken on a busy machine come close to a quiet machine's wall figures
(cache and memory-bandwidth contention still count). Wall time is the default and what a user
waits for.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Literal, TypeVar

import numpy as np
import torch

import diffpolicy.rl
from harness.cli import BadInput
from harness.methods import REPO

OBS_DIM, ACT_DIM, BATCH, FILL = 11, 3, 256, 10_000
K = TypeVar("K")
Clock = Literal["wall", "cpu"]
CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def random_transitions(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.standard_normal((FILL, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (FILL, ACT_DIM)).astype(np.float32),
        "rewards": rng.standard_normal(FILL).astype(np.float32),
        "next_obs": rng.standard_normal((FILL, OBS_DIM)).astype(np.float32),
        "terminated": rng.random(FILL) < 0.01,
    }


def filled_buffer(data: dict[str, np.ndarray], device: str = "cpu", rl=None):
    """A replay buffer of `rl` (default `diffpolicy.rl`) holding the transitions, added one by
    one as the training loop adds them."""
    rl = rl or diffpolicy.rl
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
    return buffer


def qsm_tasks(cfg, data, rl=None, device: str = "cpu") -> dict[str, Callable[[], object]]:
    """Update and act of an agent built from `cfg` by `rl` (default `diffpolicy.rl`; another
    version of the package for `speed.py revisions`), on `device`."""
    rl = rl or diffpolicy.rl
    torch.manual_seed(0)
    agent = rl.Agent(OBS_DIM, ACT_DIM, cfg).to(device)
    buffer = filled_buffer(data, device, rl)
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


def wait_for_gpu() -> None:
    """Wait for the GPU's queued work (no-op on CPU), so a wall-clock reading counts it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def mean_ms(fn: Callable[[], object], seconds: float, clock: Clock = "wall") -> float:
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
    clock: Clock = "wall",
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


def git_output(rev: str, *command: str) -> bytes:
    """What `git COMMAND` prints in this repository, for a measurement of revision `rev`;
    BadInput naming `--base rev` if git fails (an unknown revision, no repository)."""
    done = subprocess.run(["git", "-C", str(REPO), *command], capture_output=True)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines() or ["git failed"]
        raise BadInput(f"--base {rev}: {reason[-1]}")
    return done.stdout
