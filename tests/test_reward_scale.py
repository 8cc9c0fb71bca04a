"""`TrainConfig.reward_scale`: the agent learns from scaled rewards, while every return the run
logs (training episodes, evaluations) stays in the env's own units."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tiny_runs import tiny_config

from diffpolicy.rl import ReplayBuffer, train
from diffpolicy.rl.validation import ConfigError


def _returns(path: Path, column: str) -> list[float]:
    with path.open() as f:
        return [float(row[column]) for row in csv.DictReader(f)]


def test_the_agent_sees_scaled_rewards_and_the_logs_the_envs(tmp_path, monkeypatch):
    stored: dict[float, list[float]] = {}
    add = ReplayBuffer.add

    def recording_add(self, obs, action, reward, *rest):
        stored.setdefault(scale, []).append(reward)
        return add(self, obs, action, reward, *rest)

    monkeypatch.setattr(ReplayBuffer, "add", recording_add)
    logs = {}
    for scale in (1.0, 0.01):
        # Warm-up to the last step: the same random actions at both scales, so the same
        # episodes. The one update before the evaluation cannot move the actor (lr 1e-12 is
        # below float32's resolution of its weights), so the evaluations act alike too.
        cfg = tiny_config(tmp_path / str(scale), steps=400, actor_lr=1e-12)
        cfg.warmup_steps, cfg.reward_scale = 399, scale
        run = train(cfg)
        logs[scale] = (
            _returns(run / "train_episodes.csv", "return"),
            _returns(run / "eval.csv", "return_mean"),
        )
    assert stored[0.01] == pytest.approx([0.01 * r for r in stored[1.0]], rel=1e-6)
    assert logs[0.01] == logs[1.0]
    assert len(logs[1.0][0]) == 2  # Pendulum's 200-step episodes


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_a_bad_reward_scale_is_one_line(bad, tmp_path):
    with pytest.raises(ConfigError, match="reward_scale") as err:
        tiny_config(tmp_path).__class__(reward_scale=bad)
    assert "\n" not in str(err.value)
