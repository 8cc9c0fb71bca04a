"""`TrainConfig.reward_scale`: the agent learns from scaled rewards, while every return the run
logs (training episodes, evaluations) stays in the env's own units. `AgentConfig.
reward_normalization`: an agent that learns the same whatever the rewards' units."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_runs import TINY_AGENT, tiny_config

from diffpolicy.objectives import RunningRewardScale
from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer, train
from diffpolicy.rl.run.validation import ConfigError


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


# --- reward normalisation: an agent that does not depend on the reward's units -------------------


def _closed_form_scale(batches: list[torch.Tensor], rate: float) -> float:
    """s_k = sum_i rate (1 - rate)^(k - i) mean|r_i| / (1 - (1 - rate)^k)."""
    k = len(batches)
    weighted = sum(
        rate * (1 - rate) ** (k - i) * b.abs().mean().item() for i, b in enumerate(batches, 1)
    )
    return weighted / (1 - (1 - rate) ** k)


@settings(max_examples=30, deadline=None)
@given(
    rate=st.floats(1e-3, 1.0),
    count=st.integers(1, 12),
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
)
def test_running_scale_is_the_bias_corrected_average_and_equivariant(rate, count, scale, seed):
    g = torch.Generator().manual_seed(seed)
    batches = [torch.randn(16, generator=g, dtype=torch.float64) * 3 for _ in range(count)]
    plain, scaled = RunningRewardScale(rate).double(), RunningRewardScale(rate).double()
    for b in batches:
        plain.update(b)
        scaled.update(scale * b)
    assert plain.scale.item() == pytest.approx(_closed_form_scale(batches, rate), rel=1e-9)
    assert scaled.scale.item() == pytest.approx(scale * plain.scale.item(), rel=1e-9)


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5])
def test_a_rate_outside_zero_one_is_refused(rate):
    with pytest.raises(ValueError) as err:
        RunningRewardScale(rate)
    assert str(err.value) == f"rate must lie in (0, 1], got {rate}"


def test_rate_one_takes_each_batch_alone_and_normalise_divides_by_it():
    """rate 1 (allowed): s is the last batch's mean |r|; normalise divides the rewards by the
    scale it has after stepping with them, in the rewards' dtype."""
    s = RunningRewardScale(1.0).double()
    s.update(torch.tensor([1.0, -3.0], dtype=torch.float64))
    rewards = torch.tensor([4.0, -2.0, 0.0])
    normalised = s.normalise(rewards)
    assert normalised.dtype == torch.float32
    assert normalised.tolist() == [2.0, -1.0, 0.0]  # s = mean |r| of this batch = 2


def test_running_scale_is_one_before_any_batch_and_finite_on_zero_rewards():
    s = RunningRewardScale()
    assert s.scale.item() == 1.0
    assert torch.isfinite(s.normalise(torch.zeros(8))).all()


def _batches(reward_factor: float, count: int = 6):
    buffer = ReplayBuffer(3, 2, 64)
    g = torch.Generator().manual_seed(0)
    for i in range(64):
        obs, next_obs = torch.randn(3, generator=g), torch.randn(3, generator=g)
        reward = reward_factor * (torch.rand((), generator=g).item() * 4 - 1)
        buffer.add(obs, torch.rand(2, generator=g) * 2 - 1, reward, next_obs, i % 9 == 0, False)
    return [buffer.sample(16, torch.Generator().manual_seed(k)) for k in range(count)]


def _trained(reward_factor: float, normalise: bool) -> Agent:
    torch.manual_seed(0)
    agent = Agent(3, 2, AgentConfig(**TINY_AGENT, reward_normalization=normalise))
    torch.manual_seed(1)
    for batch in _batches(reward_factor):
        agent.update(batch)
    return agent


@pytest.mark.parametrize("factor", [0.01, 100.0])
def test_a_normalising_agent_learns_the_same_from_scaled_rewards(factor):
    """Six updates from rewards times 0.01 or 100 leave the same networks (to float rounding),
    and the agent's Q estimate comes out in the rewards' units; without the normalisation the
    networks differ (the check can fail)."""
    same, scaled = _trained(1.0, True), _trained(factor, True)
    for a, b in zip(same.parameters(), scaled.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), "a normalising agent depends on the reward scale"
    obs, act = torch.randn(5, 3), torch.rand(5, 2)
    assert torch.allclose(
        scaled.q_estimate(obs, act), factor * same.q_estimate(obs, act), rtol=1e-4
    )
    plain, plain_scaled = _trained(1.0, False), _trained(factor, False)
    q, q_scaled = plain.q_estimate(obs, act), plain_scaled.q_estimate(obs, act)
    assert not torch.allclose(q_scaled, factor * q, rtol=0.1)


def test_learning_curves_of_three_reward_scales_agree(tmp_path):
    """A short Pendulum run that learns (a few hundred updates) at rewards times 0.01, 1 and
    100, with reward normalisation: the evaluation returns, in the env's units, agree."""
    curves = {}
    for scale in (0.01, 1.0, 100.0):
        cfg = tiny_config(tmp_path / str(scale), steps=600, reward_normalization=True)
        cfg.eval_every, cfg.reward_scale = 200, scale
        curves[scale] = _returns(train(cfg) / "eval.csv", "return_mean")
    assert len(curves[1.0]) == 3
    for scale in (0.01, 100.0):
        assert curves[scale] == pytest.approx(curves[1.0], rel=1e-3)
