"""Whole-loop env steps per second: the QSM loop against SB3 SAC, over a window after warm-up.

    python benchmarks/speed.py loop --env Hopper-v5 --warmup 1000 --window 2000
    python benchmarks/speed.py loop --qsm-diffusion-steps 5 10

Each method runs its real training loop once, one after the other in this process, with one
torch thread: the QSM reference preset through `diffpolicy.rl.train` (optionally at other numbers
of diffusion steps K), and SB3's default SAC through benchmarks/sac_baseline.py. Both take
--warmup uniform random steps (no updates), then --window steps of acting plus one update per
step; the rate is --window divided by the time the window took, from the loops' own sps logs
(windows of gcd(warmup, window) steps). Evaluation and checkpoints are switched off inside the
window, so it times acting, env stepping, replay and updates only. Run directories go to a
temporary folder (or --keep-dir).

Per the protocol, run it with the other core idle (or running the compared method): timings
taken while other runs load the machine are distorted. The load average is printed as a hint.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sac_baseline

from diffpolicy.rl import AgentConfig, TrainConfig, train
from diffpolicy.rl.run.rates import whole_loop_rate
from harness.cli import BadInput


@dataclass
class Args:
    env: str = "Hopper-v5"
    """Gymnasium id or DeepMind Control domain-task."""
    warmup: int = 1_000
    """Uniform random steps before the window (fill the replay buffer)."""
    window: int = 2_000
    """Timed steps, each with one update."""
    seed: int = 0
    threads: int = 1
    """torch threads of every loop."""
    qsm_diffusion_steps: tuple[int, ...] = (5,)
    """QSM diffusion steps K to time (5 is the reference preset)."""
    sac: bool = True
    """Also time SB3 SAC."""
    keep_dir: Path | None = None
    """Keep the run directories here instead of a temporary folder."""


def window_rate(metrics: Path, warmup: int) -> float:
    """Steps per second over the logged windows after `warmup`: equal windows in steps, so the
    total rate is the harmonic mean of the windows' rates."""
    with open(metrics, newline="") as f:
        rates = [float(r["sps"]) for r in csv.DictReader(f) if int(r["step"]) > warmup]
    rate = whole_loop_rate(rates)
    if rate is None:
        raise RuntimeError(f"no sps window after step {warmup} in {metrics}")
    return rate


def _budget(args: Args) -> dict:
    """What both loops share: the budget, warm-up, logging, and no evaluation or checkpoint."""
    steps = args.warmup + args.window
    return dict(
        env=args.env,
        steps=steps,
        seed=args.seed,
        threads=args.threads,
        eval_every=steps + 1,
        eval_episodes=1,
        checkpoint_every=steps + 1,
        log_every=math.gcd(args.warmup, args.window),
        progress=False,
    )


def time_qsm(args: Args, k: int, root: Path) -> float:
    cfg = TrainConfig(
        run_dir=root / f"qsm-K{k}",
        warmup_steps=args.warmup,
        agent=AgentConfig(diffusion_steps=k),
        **_budget(args),
    )
    return window_rate(train(cfg) / "metrics.csv", args.warmup)


def time_sac(args: Args, root: Path) -> float:
    cfg = sac_baseline.SACConfig(run_dir=root / "sac", learning_starts=args.warmup, **_budget(args))
    return window_rate(sac_baseline.train(cfg) / "metrics.csv", args.warmup)


def main(args: Args) -> None:
    if args.window < 1 or args.warmup < 0:
        raise BadInput("--window must be >= 1 and --warmup >= 0")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.env}: {args.window} steps after a {args.warmup}-step warm-up, "
        f"{args.threads} thread(s); load average at start {load:.2f} on {os.cpu_count()} cores"
    )
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="loop_speed_") as tmp:
        root = Path(args.keep_dir) if args.keep_dir else Path(tmp)
        for k in args.qsm_diffusion_steps:
            name = "qsm-reference" if k == 5 else f"qsm K={k}"
            rates[name] = time_qsm(args, k, root)
            print(f"  {name}: {rates[name]:.1f} steps/s")
        if args.sac:
            rates["sac"] = time_sac(args, root)
            print(f"  sac: {rates['sac']:.1f} steps/s")

    width = max(len(n) for n in rates)
    print()
    print(f"| {'method':{width}} | steps/s | ms/step | rate / SAC |")
    print(f"|{'-' * (width + 2)}|---------|---------|------------|")
    for name, rate in rates.items():
        ratio = f"{rate / rates['sac']:.2f}" if "sac" in rates else "-"
        print(f"| {name:{width}} | {rate:7.1f} | {1000 / rate:7.2f} | {ratio:>10} |")
