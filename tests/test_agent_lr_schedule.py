"""The actor's learning-rate decay: cosine to 0 over its period, then 0 (not back up), and
checkpoints written with the first schedule (CosineAnnealingLR) still load on the same curve."""

from __future__ import annotations

import math

import pytest
import torch

from diffpolicy.rl import Agent, AgentConfig

TINY = dict(actor_hidden=(8,), critic_hidden=(8,), actor_lr=1e-3)


def _step_schedule(agent: Agent, k: int) -> None:
    for _ in range(k):
        agent.actor_opt.step()
        agent.actor_lr_schedule.step()


def _lr(agent: Agent) -> float:
    return agent.actor_opt.param_groups[0]["lr"]


def test_actor_lr_follows_cosine_then_stays_at_zero():
    agent = Agent(3, 2, AgentConfig(actor_lr_decay_steps=4, **TINY))
    seen = []
    for _ in range(8):
        seen.append(_lr(agent))
        _step_schedule(agent, 1)
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * min(k, 4) / 4)) for k in range(8)]
    assert seen == pytest.approx(expected, abs=1e-12)
    assert seen[-1] == 0.0  # CosineAnnealingLR would have climbed back to 1e-3 by k = 8


def test_checkpoint_from_cosine_annealing_schedule_loads_on_the_same_curve():
    agent = Agent(3, 2, AgentConfig(actor_lr_decay_steps=100, **TINY))
    old_opt = torch.optim.Adam(agent.policy.denoiser.parameters(), lr=1e-3)
    old = torch.optim.lr_scheduler.CosineAnnealingLR(old_opt, 100)
    for _ in range(30):
        old_opt.step()
        old.step()
    state = agent.training_state()
    state["actor_lr_schedule"] = old.state_dict()
    state["actor_opt"] = old_opt.state_dict()
    fresh = Agent(3, 2, AgentConfig(actor_lr_decay_steps=100, **TINY))
    fresh.load_training_state(state)
    assert fresh.actor_lr_schedule.last_epoch == 30
    _step_schedule(fresh, 1)
    assert _lr(fresh) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 31 / 100)), rel=1e-9)
