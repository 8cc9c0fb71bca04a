"""How close one QSM update comes to this machine's matmul throughput (one thread).

    python benchmarks/speed.py flops [--presets reference best] [--repeats 30]

Counts the floating-point work of one `Agent.update` (Hopper-v5 sizes, batch 256) for each
preset, times the update (median of repeats), and compares the achieved rate with a plain matmul
of the widest layer's shape (256 x W @ W x W). Run it on an idle machine.

The count: torch's FlopCounterMode cannot trace the QSM loss's `autograd.grad`, so the update is
counted in its parts, each traced as the update runs it: the critic's target actions (the sampler
chain, no grad), the critic step (TD loss with those actions, forward and backward), grad_a Q (a
critic forward and a backward to the actions only, the critic frozen) and the denoiser's
regression step (forward and backward). Optimiser and Polyak arithmetic (elementwise, a few
MFLOP) is not counted.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffpolicy.nets import frozen
from diffpolicy.objectives import crossq_td_loss, td_loss
from diffpolicy.objectives.common import noised_actions
from diffpolicy.rl import Agent
from diffpolicy.rl.agent.presets import MUJOCO_PRESETS as PRESETS
from timing.common import ACT_DIM, BATCH, OBS_DIM, filled_buffer, random_transitions


@dataclass
class Args:
    presets: tuple[Literal["reference", "langevin-t3", "best", "crossq-critic"], ...] = (
        "reference",
        "langevin-t3",
        "best",
        "crossq-critic",
    )
    repeats: int = 30
    """Timed repetitions (the median is reported)."""


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def update_flops(agent: Agent, batch) -> int:
    """The update's matmul work, counted part by part (see the module docstring)."""
    next_actions = agent.target_actions(batch.next_obs)
    target = count(lambda: agent.target_actions(batch.next_obs))
    transitions = (batch.obs, batch.actions, batch.rewards, batch.next_obs, batch.terminated)

    def critic_step():
        if agent.target_critic is None:  # CrossQ: one joint batch, no target network
            loss, _ = crossq_td_loss(agent.critic.train(), lambda s: next_actions, *transitions)
            agent.critic.eval()
        else:
            loss, _ = td_loss(
                agent.critic, agent.target_critic, lambda s: next_actions, *transitions
            )
        loss.backward()

    schedule = agent.policy.sampler.schedule
    a_t, t, _ = noised_actions(schedule, batch.actions)

    def grad_q():
        a = a_t.detach().requires_grad_(True)
        with frozen(agent.critic):
            agent.critic(batch.obs, a).mean(dim=0).sum().backward()

    def denoiser_step():
        agent.policy.denoiser(a_t, t, batch.obs).pow(2).mean().backward()

    return target + count(critic_step) + count(grad_q) + count(denoiser_step)


def main(args: Args) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    buffer = filled_buffer(random_transitions())
    print("| preset | GFLOP per update | ms per update | GFLOP/s | matmul GFLOP/s | share |")
    print("|---|---|---|---|---|---|")
    for name in args.presets:
        agent = Agent(OBS_DIM, ACT_DIM, PRESETS[name]().agent)
        width = max(agent.cfg.actor_hidden + agent.cfg.critic_hidden)
        a, b = torch.randn(BATCH, width), torch.randn(width, width)
        peak = 2 * BATCH * width * width / median_seconds(lambda a=a, b=b: a @ b, 200)
        flops = update_flops(agent, buffer.sample(BATCH))
        agent.zero_grad(set_to_none=True)
        seconds = median_seconds(lambda ag=agent: ag.update(buffer.sample(BATCH)), args.repeats)
        rate = flops / seconds
        print(
            f"| {name} | {flops / 1e9:.3f} | {seconds * 1e3:.1f} | {rate / 1e9:.1f} | "
            f"{peak / 1e9:.1f} | {rate / peak:.0%} |"
        )
