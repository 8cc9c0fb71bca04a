"""The policy face: load a trained policy from a run directory or a small policy file and predict
in the environment's own units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import TINY_AGENT, tiny_config

from diffpolicy.rl import (
    Agent,
    AgentConfig,
    CheckpointError,
    load_checkpoint,
    load_policy,
    make_env,
    save_policy,
    train,
)


def tiny_run(run_dir: Path, **agent) -> Path:
    """A 120-step Pendulum run (torque bounds [-2, 2]) with tiny networks."""
    return train(tiny_config(run_dir, **agent))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("policy") / "run")


def trained_agent(run_dir: Path, cfg: AgentConfig) -> Agent:
    agent = Agent(3, 1, cfg)
    agent.load_training_state(load_checkpoint(run_dir / "checkpoint.pt")["agent"])
    return agent


def test_predict_is_the_agents_evaluation_action_in_env_units(run):
    policy = load_policy(run)
    agent = trained_agent(run, AgentConfig(**TINY_AGENT))
    obs = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    torch.manual_seed(5)
    actions, _ = policy.predict(obs)
    torch.manual_seed(5)
    unit = agent.act(torch.as_tensor(obs), explore=False).numpy()
    assert actions.shape == (7, 1) and actions.dtype == np.float32
    np.testing.assert_allclose(actions, 2.0 * unit, rtol=1e-6, atol=1e-6)  # [-1, 1] -> [-2, 2]
    assert np.abs(actions).max() <= 2.0


def test_env_units_are_what_the_adapter_sends_to_the_environment(run):
    policy = load_policy(run)
    env = make_env("Pendulum-v1")
    sent = []
    inner_step = env.env.step
    env.env.step = lambda a: (sent.append(np.array(a)), inner_step(a))[1]
    env.reset(seed=0)
    unit = np.array([0.3], dtype=np.float32)
    env.step(unit)
    np.testing.assert_allclose(policy.to_env_units(unit), sent[0], rtol=1e-6)
    env.close()


def test_one_observation_gives_one_action_and_deterministic_repeats(run):
    policy = load_policy(run)
    obs = np.array([1.0, 0.0, 0.5], dtype=np.float32)
    one, _ = policy.predict(obs, deterministic=True)
    assert one.shape == (1,)
    assert np.array_equal(one, policy.predict(obs, deterministic=True)[0])
    assert np.array_equal(one, policy.predict(obs[None], deterministic=True)[0][0])
    draws = {float(policy.predict(obs)[0][0]) for _ in range(8)}
    assert len(draws) > 1  # without deterministic the sample is stochastic
    with pytest.raises(ValueError, match=r"obs must have shape \(3,\)"):
        policy.predict(np.zeros(4))


def test_predict_returns_actions_and_state_as_stable_baselines3s_does(run):
    policy = load_policy(run)
    obs = np.array([1.0, 0.0, 0.5], dtype=np.float32)
    action, state = policy.predict(obs, deterministic=True)
    assert action.shape == (1,) and state is None
    # SB3's positional order: (observation, state, episode_start, deterministic).
    hidden = (np.zeros(4),)
    again, same = policy.predict(obs, hidden, np.array([True]), True)
    assert np.array_equal(again, action) and same is hidden


def test_deterministic_runs_the_chain_at_temperature_zero(run):
    policy = load_policy(run)
    assert policy._deterministic_sampler.temperature == 0.0
    assert policy._sampler.temperature == 1.0  # the run's eval_temperature


def test_policy_file_holds_weights_and_config_only_and_predicts_the_same(run, tmp_path):
    path = save_policy(run, tmp_path / "pendulum.pt")
    saved = torch.load(path, weights_only=True)["state"]
    assert set(saved) == {
        "policy_format",
        "config",
        "obs_dim",
        "action_low",
        "action_high",
        "denoiser",
    }
    weights = sum(v.numel() * v.element_size() for v in saved["denoiser"].values())
    assert path.stat().st_size < 1.2 * weights + 20_000  # the weights and little else
    obs = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    from_file, _ = load_policy(path).predict(obs, deterministic=True)
    np.testing.assert_array_equal(from_file, load_policy(run).predict(obs, deterministic=True)[0])


def test_ema_runs_act_with_the_ema_weights_and_best_of_keeps_the_critic(tmp_path):
    run = tiny_run(tmp_path / "run", ema_decay=0.9, eval_best_of=3)
    policy = load_policy(run)
    agent = trained_agent(run, AgentConfig(**TINY_AGENT, ema_decay=0.9, eval_best_of=3))
    for p, q in zip(policy.policy.denoiser.parameters(), agent.ema.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(
        next(agent.ema.model.parameters()), next(agent.policy.denoiser.parameters())
    )
    obs = np.zeros((2, 3), dtype=np.float32)
    torch.manual_seed(2)
    actions, _ = policy.predict(obs)
    torch.manual_seed(2)
    np.testing.assert_allclose(
        actions, 2.0 * agent.act(torch.as_tensor(obs), False).numpy(), atol=1e-6
    )
    saved = torch.load(save_policy(policy, tmp_path / "p.pt"), weights_only=True)["state"]
    assert "critic" in saved


def test_a_tuned_chain_temperature_travels_with_the_policy(tmp_path):
    tuned = {"sampler": "langevin", "alpha_target_std": 0.05, "alpha_control": "chain"}
    run = tiny_run(tmp_path / "run", **tuned)
    policy = load_policy(run)
    agent = trained_agent(run, AgentConfig(**TINY_AGENT, **tuned))
    assert policy.chain_temperature == pytest.approx(agent.chain_temperature.item())
    assert policy.chain_temperature != pytest.approx(1.0)  # the controller moved it
    obs = np.zeros((5, 3), dtype=np.float32)
    torch.manual_seed(3)
    actions, _ = policy.predict(obs)
    torch.manual_seed(3)
    unit = agent.act(torch.as_tensor(obs), explore=False).numpy()
    np.testing.assert_allclose(actions, 2.0 * unit, atol=1e-5)
    from_file = load_policy(save_policy(policy, tmp_path / "p.pt"))
    assert from_file.chain_temperature == policy.chain_temperature
    torch.manual_seed(3)
    np.testing.assert_array_equal(from_file.predict(obs)[0], actions)


def test_a_checkpoint_file_is_not_a_policy_file(run):
    with pytest.raises(CheckpointError, match="pass its run directory"):
        load_policy(run / "checkpoint.pt")
