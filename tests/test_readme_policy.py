"""The README's blocks on registering a part and loading a trained policy run as written; the
policy, loaded from a tiny run in the directory the block names, acts in the environment's own
units."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from diffpolicy.rl import ReplayBuffer
from diffpolicy.rl.agent.components import OBJECTIVES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _block(marker: str) -> str:
    start = README.index(marker)
    return re.search(r"```python\n(.*?)```", README[start:], flags=re.DOTALL).group(1)


def test_load_policy_example_trains_what_it_loads_and_predicts_in_env_units(tmp_path, monkeypatch):
    """Run from an empty folder, as on a fresh clone: the block makes its own run."""
    block = _block("<!-- load-policy-example -->")
    budget = "dict(steps=3000, warmup_steps=1000, eval_every=1000, run_dir=run_dir)"
    assert budget in block
    tiny = "dict(steps=120, warmup_steps=60, eval_every=120, eval_episodes=1, run_dir=run_dir)"
    block = block.replace(budget, tiny)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict = {}
    exec(block, namespace)
    assert (tmp_path / "runs/Pendulum-v1/qsm-best/seed0/checkpoint.pt").is_file()
    policy = namespace["policy"]  # reloaded from the small file the block saved
    assert (tmp_path / "pendulum.pt").is_file()
    assert namespace["action"].shape == (1,) and namespace["batch"].shape == (2, 1)
    obs = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
    torques, _ = policy.predict(obs)
    # Pendulum's torque bounds are [-2, 2]: the policy uses them, not the library's [-1, 1].
    assert np.abs(torques).max() <= 2.0 and np.abs(torques).max() > 1.0


def test_register_example_trains_the_agent_with_the_registered_objective():
    namespace: dict = {}
    try:
        exec(_block("<!-- register-example -->"), namespace)
        agent = namespace["agent"]
        buffer = ReplayBuffer(3, 1, 64)
        for _ in range(64):
            buffer.add(torch.randn(3), torch.rand(1) * 2 - 1, 0.0, torch.randn(3), False, False)
        metrics = agent.update(buffer.sample(256))
        assert "bc_loss" in metrics and "qsm_loss" not in metrics
    finally:
        OBJECTIVES.unregister("bc")
