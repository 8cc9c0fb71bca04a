"""Tests for the DeepMind Control suite gymnasium adapter (diffpolicy.rl.envs.dmc)."""

import io

import numpy as np
import pytest

pytest.importorskip("dm_control")
torch = pytest.importorskip("torch")

from dm_control import suite  # noqa: E402

from diffpolicy.rl.envs.dmc import DMC_TASKS, DMCEnv  # noqa: E402


def _spy(env, method):
    """Record what the wrapped dm_control env's ``method`` receives and returns."""
    calls = []
    original = getattr(env.dmc_env, method)

    def wrapper(*args):
        result = original(*args)
        calls.append((args, result))
        return result

    setattr(env.dmc_env, method, wrapper)
    return calls


def _sorted_concat(observation):
    return np.concatenate([np.asarray(observation[k]).ravel() for k in sorted(observation)])


def test_task_names():
    assert len(DMC_TASKS) == len(suite.ALL_TASKS)
    for name in ("cheetah-run", "walker-walk", "hopper-hop", "quadruped-walk", "humanoid-walk"):
        assert name in DMC_TASKS
    assert "dog-trot" in DMC_TASKS and "ball_in_cup-catch" in DMC_TASKS


def test_invalid_arguments():
    with pytest.raises(ValueError, match="cheetah-run") as excinfo:
        DMCEnv("cheetah-fly")
    assert "ball_in_cup-catch" in str(excinfo.value)
    with pytest.raises(ValueError, match="action_repeat"):
        DMCEnv("cartpole-swingup", action_repeat=0)


def test_observation_flattened_in_sorted_key_order():
    env = DMCEnv("walker-walk", time_limit=5)
    resets, steps = _spy(env, "reset"), _spy(env, "step")
    keys = list(env.dmc_env.observation_spec())
    assert keys != sorted(keys)  # dm_control's own order differs, so the test is meaningful
    for seed in (0, None):
        obs, info = env.reset(seed=seed)
        raw = resets[-1][1].observation
        assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
        np.testing.assert_array_equal(obs, _sorted_concat(raw).astype(np.float32))
        obs, *_ = env.step(env.action_space.sample())
        np.testing.assert_array_equal(obs, _sorted_concat(steps[-1][1].observation).astype("f4"))
        assert env.observation_space.contains(obs)
    env.close()


def test_action_rescaling_and_validation():
    env = DMCEnv("quadruped-walk")  # asymmetric action bounds
    spec = env.dmc_env.action_spec()
    assert not np.allclose(spec.minimum, -spec.maximum)
    steps = _spy(env, "step")
    env.reset(seed=0)
    m = env.action_space.shape[0]
    for action, expected in (
        (-np.ones(m), spec.minimum),
        (np.ones(m), spec.maximum),
        (np.zeros(m), (spec.minimum + spec.maximum) / 2),
    ):
        env.step(action.astype(np.float32))
        np.testing.assert_allclose(steps[-1][0][0], expected, rtol=0, atol=1e-12)
    for bad in (np.zeros(m + 1), np.zeros((1, m)), np.full(m, np.nan), np.full(m, np.inf)):
        with pytest.raises(ValueError):
            env.step(bad)
    env.close()


@pytest.mark.parametrize("action_repeat,agent_steps", [(1, 20), (2, 10), (3, 7)])
def test_time_limit_is_truncation(action_repeat, agent_steps):
    env = DMCEnv("cartpole-swingup", action_repeat=action_repeat, time_limit=20)
    steps = _spy(env, "step")
    env.reset(seed=0)
    for t in range(1, agent_steps + 1):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(reward, float) and not terminated
        assert truncated == (t == agent_steps)
    assert len(steps) == 20 and info["discount"] == 1.0
    with pytest.raises(RuntimeError):
        env.step(env.action_space.sample())
    env.reset()  # a new episode can start after truncation
    env.step(env.action_space.sample())


def test_action_repeat_sums_rewards_like_raw_env():
    seed, limit = 3, 20
    raw = suite.load(
        "cartpole",
        "swingup",
        task_kwargs={"random": seed},
        environment_kwargs={"flat_observation": False},
    )
    env = DMCEnv("cartpole-swingup", action_repeat=2, time_limit=limit)
    obs, _ = env.reset(seed=seed)
    np.testing.assert_array_equal(obs, _sorted_concat(raw.reset().observation).astype("f4"))
    rng = np.random.default_rng(0)
    for t in range(limit // 2):
        action = rng.uniform(-1, 1, size=1)  # cartpole's spec is [-1, 1]: no rescaling
        first, second = raw.step(action), raw.step(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        assert reward == pytest.approx(first.reward + second.reward, abs=1e-12)
        np.testing.assert_array_equal(obs, _sorted_concat(second.observation).astype("f4"))
        assert not terminated and truncated == (t == limit // 2 - 1)


def test_default_limit_matches_suite_episode_length():
    raw = suite.load("cartpole", "balance", task_kwargs={"random": 0})  # suite defaults
    env = DMCEnv("cartpole-balance", action_repeat=4)
    raw.reset()
    env.reset(seed=0)
    for t in range(1, 251):
        for _ in range(4):
            time_step = raw.step(np.zeros(1))
        _, _, terminated, truncated, _ = env.step(np.zeros(1))
        assert truncated == time_step.last() == (t == 250) and not terminated


def test_true_terminal_is_termination(monkeypatch):
    env = DMCEnv("cartpole-swingup", action_repeat=3)
    steps = _spy(env, "step")
    env.reset(seed=0)
    calls = iter(range(100))
    # dm_control reports a true terminal as LAST with discount 0: fake one on control step 5.
    monkeypatch.setattr(
        env.dmc_env.task, "get_termination", lambda physics: 0.0 if next(calls) == 4 else None
    )
    _, _, terminated, truncated, _ = env.step(np.zeros(1))
    assert not terminated and not truncated
    _, _, terminated, truncated, info = env.step(np.zeros(1))
    assert terminated and not truncated and info["discount"] == 0.0
    assert len(steps) == 5  # the repeat stopped early at the terminal step


def test_seeding():
    env = DMCEnv("cartpole-swingup")
    a, _ = env.reset(seed=1)
    a_next, _ = env.reset()
    b, _ = env.reset(seed=1)
    b_next, _ = env.reset()
    c, _ = env.reset(seed=2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a_next, b_next)
    assert not np.array_equal(a, a_next)  # unseeded resets continue the stream
    assert not np.array_equal(a, c)
    # seeding matches building the suite task with task_kwargs={"random": seed}
    raw = suite.load("cartpole", "swingup", task_kwargs={"random": 2})
    np.testing.assert_array_equal(c, _sorted_concat(raw.reset().observation).astype("f4"))
    env.reset()  # an unseeded first reset also works
    DMCEnv("cartpole-swingup").reset()


def test_rng_state_checkpoint_round_trip():
    env = DMCEnv("cartpole-swingup", time_limit=5)
    env.reset(seed=7)
    env.step(env.action_space.sample())
    state = env.get_rng_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    expected_obs, _ = env.reset()
    expected_draw = env.np_random.random()

    resumed = DMCEnv("cartpole-swingup", time_limit=5)
    resumed.set_rng_state(loaded)
    obs, _ = resumed.reset()
    np.testing.assert_array_equal(obs, expected_obs)
    assert resumed.np_random.random() == expected_draw

    env.set_rng_state(loaded)  # restoring also ends the current episode
    with pytest.raises(RuntimeError):
        env.step(env.action_space.sample())
    np.testing.assert_array_equal(env.reset()[0], expected_obs)


@pytest.mark.filterwarnings("ignore:.*infinity")  # the unbounded observation Box is intended
def test_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    env = DMCEnv("cartpole-swingup", time_limit=10)
    check_env(env, skip_render_check=True)
    env.close()
    env.close()
