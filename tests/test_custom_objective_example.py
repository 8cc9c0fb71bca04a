"""examples/custom_objective.py: an objective defined and registered outside the library trains
with the library's loop and command line."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer
from diffpolicy.rl.agent.components import OBJECTIVES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def example():
    """The example module, imported from its file; its registration is removed afterwards."""
    spec = importlib.util.spec_from_file_location(
        "custom_objective", ROOT / "examples/custom_objective.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    yield module
    OBJECTIVES.unregister("dipo")
    del sys.modules[spec.name]


def test_example_trains_dipo_with_the_library_loop(example, tmp_path):
    run = tmp_path / "run"
    tiny = ["--steps", "160", "--warmup-steps", "80", "--eval-every", "80", "--eval-episodes", "1"]
    tiny += ["--agent.actor-hidden", "16", "16", "--agent.critic-hidden", "16", "16"]
    tiny += ["--agent.batch-size", "16", "--log-every", "40", "--no-progress"]
    example.main(
        [*tiny, "--run-dir", str(run), "--dipo.step-size", "0.02", "--dipo.gradient-steps", "2"]
    )
    assert json.loads((run / "config.json").read_text())["agent"]["objective"] == "dipo"
    with open(run / "eval.csv") as f:
        assert [row["step"] for row in csv.DictReader(f)] == ["80", "160"]
    with open(run / "metrics.csv") as f:
        shifts = [float(row["dipo_action_shift"]) for row in csv.DictReader(f)]
    # Two moves of 0.02 each, less where the box stops them.
    assert shifts and all(0.0 < s <= 0.04 + 1e-6 for s in shifts)


def test_dipo_moves_actions_up_the_critic_and_denoises_them(example):
    torch.manual_seed(0)
    agent = Agent(3, 2, AgentConfig(objective="dipo", actor_hidden=(16,), critic_hidden=(16,)))
    buffer = ReplayBuffer(3, 2, 64)
    for _ in range(64):
        buffer.add(torch.randn(3), torch.rand(2) - 0.5, 0.0, torch.randn(3), False, False)
    batch = buffer.sample(64)
    dipo = example.DIPOConfig(step_size=0.01, gradient_steps=3)
    moved = example.improve_actions(agent.critic, batch.obs, batch.actions, dipo)
    q_before = agent.critic(batch.obs, batch.actions).min(dim=0).values
    q_after = agent.critic(batch.obs, moved).min(dim=0).values
    assert (q_after > q_before).float().mean() > 0.9  # small steps up the gradient raise Q
    loss, metrics = example.dipo_loss(agent, batch, dipo)
    # Inside the box each action takes three moves of 0.01 (in nearly one direction).
    assert 0.029 < float(metrics["dipo_action_shift"]) <= 0.03 + 1e-6
    loss.backward()
    assert all(p.grad is not None for p in agent.policy.denoiser.parameters())
    assert all(p.grad is None for p in agent.critic.parameters())
