"""How close one QSM update comes to this machine's matmul throughput (one thread).

    python benchmarks/update_flops.py [--diffusion-steps 5 10] [--repeats 30]

Counts the floating-point work of one `Agent.update` (Hopper-v5 sizes, batch 256, the reference
preset's 512x512 networks), times the update (median of repeats), and compares the achieved rate
with a plain matmul of the dominant shape (256 x 512 @ 512 x 512). Run it on an idle machine.

The count: torch's FlopCounterMode measures one forward of the denoiser (D) and of the critic
ensemble (C) at batch 256 (it cannot trace the QSM loss's autograd.grad itself). A backward costs
about twice its forward (gradients for inputs and for weights), or once when only input gradients
are needed. One update is then K D + C (target actions and target values, no grad), 3 C (critic
step), 2 C (grad_a Q: forward plus an input-only backward) and 3 D (denoiser step):
(K + 3) D + 6 C.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import tyro
from torch.utils.flop_counter import FlopCounterMode

from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer


@dataclass
class Args:
    diffusion_steps: tuple[int, ...] = (5, 10)
    """QSM diffusion steps K to measure."""
    repeats: int = 30
    """Timed repetitions (the median is reported)."""


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(args: Args) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    a, b = torch.randn(256, 512), torch.randn(512, 512)
    peak = 2 * 256 * 512 * 512 / _median_seconds(lambda: a @ b, 200)
    print(f"matmul 256x512 @ 512x512: {peak / 1e9:.1f} GFLOP/s (one thread)")
    buffer = ReplayBuffer(11, 3, 10_000)
    for _ in range(1000):
        buffer.add(torch.randn(11), torch.rand(3) * 2 - 1, 0.0, torch.randn(11), False, False)
    print("| K | GFLOP per update | ms per update | GFLOP/s | share of matmul rate |")
    print("|---|---|---|---|---|")
    for k in args.diffusion_steps:
        agent = Agent(11, 3, AgentConfig(diffusion_steps=k))
        batch = buffer.sample(256)
        t = torch.zeros(256, dtype=torch.long)
        with torch.no_grad(), FlopCounterMode(display=False) as denoiser_count:
            agent.policy.denoiser(batch.actions, t, batch.obs)
        with torch.no_grad(), FlopCounterMode(display=False) as critic_count:
            agent.critic(batch.obs, batch.actions)
        d, c = denoiser_count.get_total_flops(), critic_count.get_total_flops()
        flops = (k + 3) * d + 6 * c
        seconds = _median_seconds(lambda ag=agent: ag.update(buffer.sample(256)), args.repeats)
        rate = flops / seconds
        print(
            f"| {k} | {flops / 1e9:.3f} | {seconds * 1e3:.1f} | {rate / 1e9:.1f} | "
            f"{rate / peak:.0%} |"
        )


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
