"""Tests for the replay buffer and the environment adapter (BoxActionAdapter, make_env)."""

from __future__ import annotations

import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

from diffpolicy.rl.envs.adapters import BoxActionAdapter, make_env
from diffpolicy.rl.storage.buffer import Batch, ReplayBuffer

torch.set_num_threads(1)

OBS, ACT = 3, 2


# --- ReplayBuffer --------------------------------------------------------------------------------
def _fill(buf: ReplayBuffer, start: int, stop: int) -> None:
    """Transition i: obs = i, action = i / 100, reward = 10 i, next_obs = i + 0.5,
    terminated when i % 3 == 1, truncated when i % 3 == 2."""
    for i in range(start, stop):
        buf.add(
            np.full(OBS, i, dtype=np.float64),
            torch.full((ACT,), i / 100),
            10.0 * i,
            [i + 0.5] * OBS,
            i % 3 == 1,
            i % 3 == 2,
        )


def _ids(buf: ReplayBuffer) -> list[int]:
    """The stored transitions' ids, in slot order."""
    return [int(x) for x in buf.obs[: len(buf), 0].tolist()]


def test_add_and_sample_shapes_and_dtypes():
    buf = ReplayBuffer(OBS, ACT, 10)
    assert len(buf) == 0
    _fill(buf, 0, 5)
    assert len(buf) == 5
    batch = buf.sample(8, torch.Generator().manual_seed(0))
    assert isinstance(batch, Batch)
    assert batch.obs.shape == (8, OBS) and batch.next_obs.shape == (8, OBS)
    assert batch.actions.shape == (8, ACT)
    assert batch.rewards.shape == batch.terminated.shape == batch.truncated.shape == (8,)
    for x in (batch.obs, batch.actions, batch.rewards, batch.next_obs):
        assert x.dtype == torch.float32
    assert batch.terminated.dtype == batch.truncated.dtype == torch.bool
    # Every field of a sampled row belongs to the same transition.
    ids = batch.obs[:, 0]
    assert torch.all(ids < 5)
    torch.testing.assert_close(batch.actions, (ids / 100)[:, None].expand(-1, ACT))
    torch.testing.assert_close(batch.rewards, 10 * ids)
    torch.testing.assert_close(batch.next_obs, (ids + 0.5)[:, None].expand(-1, OBS))


def test_ring_keeps_newest_capacity_transitions():
    buf = ReplayBuffer(OBS, ACT, 4)
    _fill(buf, 0, 10)
    assert len(buf) == 4
    assert sorted(_ids(buf)) == [6, 7, 8, 9]
    assert buf.position == 10 % 4
    drawn = buf.sample(200, torch.Generator().manual_seed(1)).obs[:, 0]
    assert set(drawn.int().tolist()) == {6, 7, 8, 9}


def test_terminated_and_truncated_stored_apart():
    buf = ReplayBuffer(OBS, ACT, 6)
    _fill(buf, 0, 6)
    ids = torch.arange(6)
    assert torch.equal(buf.terminated, ids % 3 == 1)
    assert torch.equal(buf.truncated, ids % 3 == 2)
    assert not torch.any(buf.terminated & buf.truncated)


def test_sample_empty_raises():
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(OBS, ACT, 4).sample(1)


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(OBS, ACT, 0)


def _round_trip(buf: ReplayBuffer, tmp_path) -> dict:
    path = tmp_path / "buffer.pt"
    torch.save(buf.state_dict(), path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("count", [3, 7, 13])  # partly full, and wrapped
def test_state_dict_round_trip_same_capacity(count, tmp_path):
    buf = ReplayBuffer(OBS, ACT, 5)
    _fill(buf, 0, count)
    state = _round_trip(buf, tmp_path)
    assert state["obs"].shape[0] == min(count, 5)  # only the filled part is saved
    fresh = ReplayBuffer(OBS, ACT, 5)
    fresh.load_state_dict(state)
    assert (len(fresh), fresh.position) == (len(buf), buf.position)
    assert _ids(fresh) == _ids(buf)
    for seed in (0, 1):
        a = buf.sample(16, torch.Generator().manual_seed(seed))
        b = fresh.sample(16, torch.Generator().manual_seed(seed))
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
    # Both overwrite the same slot next.
    _fill(buf, 100, 101)
    _fill(fresh, 100, 101)
    assert _ids(fresh) == _ids(buf)


def test_load_into_bigger_capacity_keeps_order(tmp_path):
    buf = ReplayBuffer(OBS, ACT, 4)
    _fill(buf, 0, 6)  # wrapped: slots hold 4, 5, 2, 3
    assert _ids(buf) == [4, 5, 2, 3]
    big = ReplayBuffer(OBS, ACT, 10)
    big.load_state_dict(_round_trip(buf, tmp_path))
    assert _ids(big) == [2, 3, 4, 5]
    assert len(big) == 4 and big.position == 4
    # Fields stay aligned after the reordering.
    torch.testing.assert_close(big.rewards[:4], torch.tensor([20.0, 30.0, 40.0, 50.0]))
    assert big.terminated[:4].tolist() == [False, False, True, False]
    assert big.truncated[:4].tolist() == [True, False, False, True]
    _fill(big, 6, 8)
    assert _ids(big) == [2, 3, 4, 5, 6, 7]
    # Not wrapped: the order is the slot order.
    small = ReplayBuffer(OBS, ACT, 4)
    _fill(small, 0, 3)
    big = ReplayBuffer(OBS, ACT, 10)
    big.load_state_dict(_round_trip(small, tmp_path))
    assert _ids(big) == [0, 1, 2] and big.position == 3


def test_load_into_smaller_capacity_keeps_newest(tmp_path):
    buf = ReplayBuffer(OBS, ACT, 6)
    _fill(buf, 0, 9)  # wrapped: holds 3..8
    small = ReplayBuffer(OBS, ACT, 4)
    small.load_state_dict(_round_trip(buf, tmp_path))
    assert _ids(small) == [5, 6, 7, 8]
    assert len(small) == 4
    # The ring continues by overwriting the oldest (5).
    _fill(small, 9, 10)
    assert sorted(_ids(small)) == [6, 7, 8, 9]
    # Not wrapped, more data than the new capacity.
    buf = ReplayBuffer(OBS, ACT, 10)
    _fill(buf, 0, 7)
    small = ReplayBuffer(OBS, ACT, 4)
    small.load_state_dict(_round_trip(buf, tmp_path))
    assert _ids(small) == [3, 4, 5, 6]
    _fill(small, 7, 8)
    assert sorted(_ids(small)) == [4, 5, 6, 7]


# --- BoxActionAdapter ----------------------------------------------------------------------------
class RecordingEnv(gym.Env):
    """Asymmetric action bounds; records the actions it receives; can misbehave on request."""

    def __init__(self, low=(-2.0, 0.0), high=(1.0, 4.0), fault: str | None = None) -> None:
        self.action_space = gym.spaces.Box(np.array(low), np.array(high), dtype=np.float64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
        self.fault = fault
        self.received: list[np.ndarray] = []

    def _obs(self):
        if self.fault == "shape":
            return np.zeros(OBS + 1, dtype=np.float32)
        if self.fault == "nan_obs":
            return np.array([0.0, np.nan, 0.0], dtype=np.float32)
        if self.fault == "inf_obs":
            return np.array([0.0, np.inf, 0.0], dtype=np.float32)
        return np.arange(OBS, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return (self._obs() if self.fault != "step_only" else np.zeros(OBS, np.float32)), {}

    def step(self, action):
        self.received.append(np.array(action))
        reward = np.nan if self.fault == "nan_reward" else 1.0
        return self._obs(), reward, False, False, {}


def test_discrete_action_space_rejected():
    with pytest.raises(ValueError, match="Box") as err:
        make_env("CartPole-v1")
    assert "CartPole-v1" in str(err.value)


def test_unbounded_action_space_rejected():
    env = RecordingEnv(low=(-np.inf, 0.0), high=(1.0, 4.0))
    with pytest.raises(ValueError, match="bounded"):
        BoxActionAdapter(env, "unbounded")


def test_actions_map_to_bounds():
    env = BoxActionAdapter(RecordingEnv(), "rec")
    assert env.action_space.low.tolist() == [-1.0, -1.0]
    assert env.action_space.high.tolist() == [1.0, 1.0]
    env.reset(seed=0)
    sent = [[-1.0, 1.0], [1.0, -1.0], [0.0, 0.0], [0.5, -0.5], [3.0, -7.0]]
    for a in sent:
        env.step(np.array(a, dtype=np.float32))
    got = [r.tolist() for r in env.unwrapped.received]
    expected = [[-2.0, 4.0], [1.0, 0.0], [-0.5, 2.0], [0.25, 1.0], [1.0, 0.0]]  # last: clipped
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert env.unwrapped.received[0].dtype == np.float64  # the env's own dtype


@pytest.mark.parametrize(
    "action",
    [np.zeros(3), np.zeros((1, 2)), np.zeros(1), np.array([np.nan, 0.0]), np.array([0.0, np.inf])],
    ids=["long", "2d", "short", "nan", "inf"],
)
def test_bad_actions_raise(action):
    env = BoxActionAdapter(RecordingEnv(), "rec")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="rec"):
        env.step(action)
    assert env.unwrapped.received == []  # nothing reached the env


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ("shape", "observation shape"),
        ("nan_obs", "NaN"),
        ("inf_obs", "inf"),
        ("nan_reward", "reward"),
    ],
)
def test_bad_env_outputs_raise(fault, match):
    env = BoxActionAdapter(RecordingEnv(fault=fault), "faulty")
    if fault == "nan_reward":
        env.reset(seed=0)
    else:
        with pytest.raises(ValueError, match=match):
            env.reset(seed=0)
        env.unwrapped.fault = "step_only"
        env.reset(seed=0)
        env.unwrapped.fault = fault
    with pytest.raises(ValueError, match=match) as err:
        env.step(np.zeros(ACT))
    assert "faulty" in str(err.value)


def test_good_env_outputs_pass_through():
    env = BoxActionAdapter(RecordingEnv(), "rec")
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.tolist() == [0.0, 1.0, 2.0]
    obs, reward, terminated, truncated, _ = env.step(np.zeros(ACT))
    assert (reward, terminated, truncated) == (1.0, False, False)
    assert type(reward) is float and type(terminated) is bool


def test_unknown_gymnasium_id_raises():
    with pytest.raises(ValueError, match="NoSuchEnv-v0"):
        make_env("NoSuchEnv-v0")
    with pytest.raises(ValueError, match="action_repeat"):
        make_env("Hopper-v5", action_repeat=2)


def test_dmc_cheetah_run():
    pytest.importorskip("dm_control")
    start = time.perf_counter()
    env = make_env("cheetah-run")
    assert isinstance(env, BoxActionAdapter)
    assert env.action_space.shape == (6,)
    assert np.all(env.action_space.low == -1.0) and np.all(env.action_space.high == 1.0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (17,)
    obs, reward, terminated, truncated, _ = env.step(np.ones(6))
    assert np.isfinite(obs).all() and np.isfinite(reward)
    assert not terminated and not truncated
    env.close()
    assert time.perf_counter() - start < 20


def test_a_snapshot_without_the_episode_restores_rng_only(tmp_path):
    """A checkpoint written before episodes were recorded: the caller must reset, and the next
    episode starts as it would have."""
    pytest.importorskip("dm_control")
    env = make_env("cheetah-run")
    env.reset(seed=3)
    snap = env.snapshot()
    del snap["episode"]
    torch.save(snap, tmp_path / "snap.pt")
    snap = torch.load(tmp_path / "snap.pt", weights_only=True)
    first, _ = env.reset()  # the next episode's start
    fresh = make_env("cheetah-run")
    fresh.reset(seed=99)
    assert fresh.restore(snap) is False  # caller must reset
    again, _ = fresh.reset()
    np.testing.assert_array_equal(first, again)
    env.close()
    fresh.close()


# --- snapshot / restore on MuJoCo ----------------------------------------------------------------
def _actions(n: int, offset: int = 0, dim: int = 3) -> list[np.ndarray]:
    return [0.3 * np.sin(np.arange(dim) + 0.7 * (k + offset)) for k in range(n)]


@pytest.mark.parametrize("name", ["Ant-v5", "Humanoid-v5"])
def test_snapshot_restores_what_tasks_read_before_stepping(name, tmp_path):
    """Ant's reward reads body positions and Humanoid's its centre of mass from quantities MuJoCo
    derives during the previous step; a restore must bring those back too, not only the state."""
    env = make_env(name)
    dim = env.action_space.shape[0]
    env.reset(seed=0)
    for a in _actions(6, dim=dim):
        env.step(a)
    torch.save(env.snapshot(), tmp_path / "snap.pt")
    expected = [env.step(a)[:2] for a in _actions(4, offset=6, dim=dim)]
    fresh = make_env(name)
    fresh.reset(seed=7)
    assert fresh.restore(torch.load(tmp_path / "snap.pt", weights_only=True))
    got = [fresh.step(a)[:2] for a in _actions(4, offset=6, dim=dim)]
    for (o1, r1), (o2, r2) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


def test_hopper_snapshot_restore_mid_episode(tmp_path):
    env = make_env("Hopper-v5")
    env.reset(seed=0)
    for a in _actions(8):
        _, _, terminated, truncated, _ = env.step(a)
        assert not (terminated or truncated)
    snap = env.snapshot()
    assert snap["elapsed_steps"] == 8
    path = tmp_path / "snap.pt"
    torch.save(snap, path)
    loaded = torch.load(path, weights_only=True)

    expected = [env.step(a) for a in _actions(5, offset=8)]
    expected_draw = env.unwrapped.np_random.random()

    fresh = make_env("Hopper-v5")
    fresh.reset(seed=12345)
    assert fresh.restore(loaded) is True
    got = [fresh.step(a) for a in _actions(5, offset=8)]
    for (o1, r1, te1, tr1, _), (o2, r2, te2, tr2, _) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, te1, tr1) == (r2, te2, tr2)
    assert fresh.unwrapped.np_random.random() == expected_draw
    # The episode clock moved on from the snapshot's step.
    assert _elapsed(fresh) == _elapsed(env) == 13

    # Control: without restore the fresh env does not reproduce the trajectory.
    other = make_env("Hopper-v5")
    other.reset(seed=12345)
    o, *_ = other.step(_actions(1, offset=8)[0])
    assert not np.array_equal(o, expected[0][0])
    for e in (env, fresh, other):
        e.close()


def _elapsed(env) -> int:
    inner = env
    while isinstance(inner, gym.Wrapper):
        if isinstance(inner, gym.wrappers.TimeLimit):
            return inner._elapsed_steps
        inner = inner.env
    raise AssertionError("no TimeLimit wrapper")


@pytest.mark.parametrize("name", ["Pendulum-v1", "cheetah-run"])
def test_a_snapshot_without_simulator_state_replays_the_episode_in_progress(name, tmp_path):
    """Pendulum and DeepMind Control save no simulator state: a restore replays the episode from
    how it began (here an unseeded reset, from the random state) and its actions, and the
    episode, then the next one, go on as they would have."""
    if name == "cheetah-run":
        pytest.importorskip("dm_control")
    env = make_env(name)
    dim = env.action_space.shape[0]
    env.reset(seed=3)
    env.reset()
    for a in _actions(5, dim=dim):
        env.step(a)
    torch.save(env.snapshot(), tmp_path / "snap.pt")
    expected = [env.step(a)[:2] for a in _actions(4, offset=5, dim=dim)]
    fresh = make_env(name)
    fresh.reset(seed=99)
    assert fresh.restore(torch.load(tmp_path / "snap.pt", weights_only=True)) is True
    got = [fresh.step(a)[:2] for a in _actions(4, offset=5, dim=dim)]
    for (o1, r1), (o2, r2) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
    np.testing.assert_array_equal(env.reset()[0], fresh.reset()[0])
    env.close()
    fresh.close()


# --- make_env: gymnasium's registry first (issue 15.6) -------------------------------------------
gym.register(
    "thirdparty-pendulum-v0",
    entry_point="gymnasium.envs.classic_control:PendulumEnv",
    max_episode_steps=20,
)


def test_a_registered_id_that_looks_like_domain_task_needs_no_dm_control(monkeypatch):
    monkeypatch.setitem(
        sys.modules, "diffpolicy.rl.envs.dmc", None
    )  # as if dm_control were missing
    env = make_env("thirdparty-pendulum-v0")
    assert env.action_space.shape == (1,)
    env.close()


def test_an_id_found_nowhere_names_both_registries(monkeypatch):
    with pytest.raises(ValueError, match="gymnasium id nor a DeepMind Control task") as err:
        make_env("nosuch-task")
    assert "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "diffpolicy.rl.envs.dmc", None)
    with pytest.raises(ValueError, match="dm_control is not installed"):
        make_env("nosuch-task")


def test_buffer_refuses_rows_of_the_wrong_size_and_empty_batches():
    buf = ReplayBuffer(OBS, ACT, 4)
    with pytest.raises(ValueError, match=r"actions has shape \(3,\), expected \(2,\)"):
        buf.add(np.zeros(OBS), np.zeros(3), 0.0, np.zeros(OBS), False, False)
    assert len(buf) == 0 and buf.added == 0
    _fill(buf, 0, 2)
    with pytest.raises(ValueError, match="batch_size"):
        buf.sample(0)
