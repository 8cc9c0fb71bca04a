"""End-to-end behaviour of the training loop: run directory, determinism, exact resume,
signals, and clear errors that overwrite nothing."""

from __future__ import annotations

import csv
import importlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from diffpolicy.rl import AgentConfig, CheckpointError, TrainConfig, load_checkpoint, train
from diffpolicy.rl.storage.files import RunDirError

ROOT = Path(__file__).resolve().parents[1]
TINY_AGENT = AgentConfig(actor_hidden=(32, 32), critic_hidden=(32, 32), batch_size=32)
# DIFFPOLICY_TEST_DEVICE=cuda runs these in-process runs (determinism, exact resume) on a GPU.
DEVICE = os.environ.get("DIFFPOLICY_TEST_DEVICE", "cpu")


def tiny(run_dir: Path, **overrides) -> TrainConfig:
    """A few hundred Hopper steps with tiny networks: seconds, but every code path runs."""
    fields = dict(
        env="Hopper-v5",
        steps=300,
        seed=3,
        run_dir=run_dir,
        warmup_steps=100,
        eval_every=150,
        eval_episodes=2,
        checkpoint_every=100,
        log_every=50,
        progress=False,
        agent=TINY_AGENT,
        device=DEVICE,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_state(a: dict, b: dict) -> None:
    """Networks, targets, optimiser moments, replay contents and RNG states all equal."""

    def flat(x, prefix=""):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from flat(v, f"{prefix}/{k}")
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                yield from flat(v, f"{prefix}/{i}")
        else:
            yield prefix, x

    fa, fb = dict(flat(a)), dict(flat(b))
    assert fa.keys() == fb.keys()
    for key, va in fa.items():
        vb = fb[key]
        if isinstance(va, torch.Tensor):
            assert torch.equal(va, vb), key
        else:
            assert va == vb or (va != va and vb != vb), key  # NaN == NaN for last_eval


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    return train(tiny(tmp_path_factory.mktemp("full") / "run"))


def test_run_directory_holds_config_metrics_and_checkpoint(uninterrupted: Path):
    for name in ("config.json", "eval.csv", "metrics.csv", "train_episodes.csv", "checkpoint.pt"):
        assert (uninterrupted / name).is_file(), name
    rows = read_csv(uninterrupted / "eval.csv")
    assert [int(r["step"]) for r in rows] == [150, 300]
    assert all(np.isfinite(float(r["return_mean"])) for r in rows)
    assert load_checkpoint(uninterrupted / "checkpoint.pt")["step"] == 300


def test_every_evaluation_logs_the_critics_bias(uninterrupted: Path):
    rows = read_csv(uninterrupted / "value_bias.csv")
    assert [int(r["step"]) for r in rows] == [150, 300]
    for r in rows:
        assert int(r["states"]) > 0  # tiny Hopper policies fall: terminated episodes count whole
        q, g = float(r["q_mean"]), float(r["return_to_go_mean"])
        assert np.isfinite(q) and g > 0  # Hopper pays about 1 a step for staying up
        assert float(r["bias"]) == pytest.approx(q - g)


def test_logged_bias_is_the_discounted_tail_of_the_evaluated_rewards(tmp_path: Path, monkeypatch):
    """Whatever trajectory a device produces: value_bias.csv's return-to-go is the discounted sum,
    at the agent's gamma, of the very rewards eval.csv's returns add up, over the states counted,
    and its q is the one that evaluation's call computed (test_value_bias.py checks q itself)."""
    # diffpolicy.rl re-exports the function `evaluate` under the module's name.
    evaluate_module = importlib.import_module("diffpolicy.rl.run.evaluate")
    value_bias = evaluate_module.value_bias
    calls = []

    def spy(value, episodes, gamma, device="cpu"):
        result = value_bias(value, episodes, gamma, device)
        calls.append((episodes, gamma, result))
        return result

    monkeypatch.setattr(evaluate_module, "value_bias", spy)
    cfg = tiny(tmp_path / "run")
    run = train(cfg)
    evals, logged = read_csv(run / "eval.csv"), read_csv(run / "value_bias.csv")
    assert len(calls) == len(evals) == len(logged) == 2
    horizon = math.ceil(math.log(0.01) / math.log(cfg.agent.gamma))
    for (episodes, gamma, result), ev, row in zip(calls, evals, logged, strict=True):
        assert gamma == cfg.agent.gamma
        totals = [float(np.sum(rewards)) for _, _, rewards, _ in episodes]
        assert float(ev["return_mean"]) == pytest.approx(np.mean(totals), rel=1e-9, abs=1e-9)
        tails = []
        for _, _, rewards, terminated in episodes:
            n = len(rewards) if terminated else max(0, len(rewards) - horizon)
            weights = gamma ** np.arange(len(rewards))
            tails += [float(np.dot(weights[: len(rewards) - t], rewards[t:])) for t in range(n)]
        assert int(row["states"]) == len(tails) > 0
        assert float(row["return_to_go_mean"]) == pytest.approx(np.mean(tails), rel=1e-9)
        assert float(row["q_mean"]) == pytest.approx(result["q_mean"], rel=1e-6)


def test_same_seed_same_evaluation_returns(uninterrupted: Path, tmp_path: Path):
    again = train(tiny(tmp_path / "again"))
    returns = [r["return_mean"] for r in read_csv(uninterrupted / "eval.csv")]
    assert [r["return_mean"] for r in read_csv(again / "eval.csv")] == returns
    other = train(tiny(tmp_path / "other", seed=4))
    assert [r["return_mean"] for r in read_csv(other / "eval.csv")] != returns


def assert_same_run(run: Path, full: Path, stopped_at: int) -> None:
    """`run`, stopped at step `stopped_at` and resumed, ends as the uninterrupted `full`: every
    tensor of the final checkpoint (nets, targets, Adam moments, replay, RNGs, env state) and the
    logs, but for the evaluation that ended the first budget (evaluating does not touch the
    training RNGs)."""
    assert_same_state(
        load_checkpoint(run / "checkpoint.pt"), load_checkpoint(full / "checkpoint.pt")
    )
    for name in ("eval.csv", "train_episodes.csv"):
        rows = [{k: v for k, v in r.items() if k != "wall_time"} for r in read_csv(run / name)]
        expected = [{k: v for k, v in r.items() if k != "wall_time"} for r in read_csv(full / name)]
        if name == "eval.csv":
            rows = [r for r in rows if r["step"] != str(stopped_at)]
        assert rows == expected


def test_stopped_and_resumed_run_ends_in_the_same_state(uninterrupted: Path, tmp_path: Path):
    """Stop mid-episode at step 170 (not a checkpoint multiple), resume to 300."""
    run = tmp_path / "resumed"
    train(tiny(run, steps=170))
    train(tiny(run, steps=300, resume=True))
    assert [r["step"] for r in read_csv(run / "eval.csv")] == ["150", "170", "300"]
    assert_same_run(run, uninterrupted, stopped_at=170)


@pytest.mark.parametrize("env", ["Pendulum-v1", "cartpole-swingup"])
def test_a_resume_replays_the_episode_in_progress_where_no_simulator_state_is_saved(
    env, tmp_path, capsys
):
    """A Pendulum or DeepMind Control run stopped mid-episode resumes exactly: the episode in
    progress is replayed from its seed and actions (before: each resume began a new episode)."""
    if env == "cartpole-swingup":
        pytest.importorskip("dm_control")
    full, run = tmp_path / "full", tmp_path / "resumed"
    train(tiny(full, env=env, steps=200))
    train(tiny(run, env=env, steps=130))
    train(tiny(run, env=env, steps=200, resume=True))
    assert "warning" not in capsys.readouterr().err
    assert_same_run(run, full, stopped_at=130)


def test_a_resume_that_cannot_replay_its_episode_says_so_in_one_line(tmp_path, capsys):
    from tiny_runs import register_faulty_env

    env, run = register_faulty_env("DiffpolicyTestUnrepeatable-v0"), tmp_path / "run"
    train(tiny(run, env=env, steps=130))
    train(tiny(run, env=env, steps=200, resume=True))
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {env} cannot continue the episode in progress at step 130, so this resumed "
        "run starts a new one and will differ from an uninterrupted run"
    ]


def test_existing_run_is_not_overwritten_without_resume(uninterrupted: Path):
    before = (uninterrupted / "checkpoint.pt").read_bytes()
    with pytest.raises(RunDirError, match="--resume"):
        train(tiny(uninterrupted))
    assert (uninterrupted / "checkpoint.pt").read_bytes() == before


def test_resume_without_a_run_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CheckpointError, match="config.json"):
        train(tiny(tmp_path / "nothing", resume=True))


def test_resume_from_a_corrupt_checkpoint_is_a_clear_error_and_changes_nothing(tmp_path: Path):
    run = train(tiny(tmp_path / "run", steps=120))
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    eval_before = (run / "eval.csv").read_bytes()
    with pytest.raises(CheckpointError, match="corrupt"):
        train(tiny(run, resume=True))
    assert (run / "checkpoint.pt").read_bytes() == b"not a checkpoint"
    assert (run / "eval.csv").read_bytes() == eval_before


class _FaultyEnv(gym.Env):
    """A 3-dim control task that misbehaves at a chosen step: NaN reward or a wrong-shaped obs."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)

    def __init__(self, fault: str = "nan_reward", at: int = 130) -> None:
        self.fault, self.at, self.t = fault, at, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.t += 1
        obs, reward = np.full(4, 0.1, np.float32), 1.0
        if self.t >= self.at:
            if self.fault == "nan_reward":
                reward = float("nan")
            else:
                obs = np.zeros(5, np.float32)
        return obs, reward, False, self.t % 50 == 0, {}


gym.register("FaultyNaN-v0", entry_point=_FaultyEnv, kwargs={"fault": "nan_reward"})
gym.register("FaultyObs-v0", entry_point=_FaultyEnv, kwargs={"fault": "bad_obs"})


@pytest.mark.parametrize(
    ("env", "message"),
    [("FaultyNaN-v0", "non-finite reward"), ("FaultyObs-v0", "observation shape")],
)
def test_bad_env_output_stops_the_run_and_keeps_the_last_good_checkpoint(env, message, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train(tiny(run, env=env, steps=300, eval_every=1000))
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 100  # not overwritten after the fault


def test_discrete_action_env_is_rejected_before_anything_is_written(tmp_path: Path):
    with pytest.raises(ValueError, match="Box"):
        train(tiny(tmp_path / "run", env="CartPole-v1"))
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_default_run_dir_and_budget_follow_the_command_line(tmp_path: Path, monkeypatch):
    """The DMC preset is parsed with tyro against a default config: the run directory must still
    follow --seed and --agent.objective, and the budget default to 100k steps."""
    import tyro

    from diffpolicy.rl.agent.presets import qsm_dmc
    from diffpolicy.rl.run.loop import resolve_config

    monkeypatch.chdir(tmp_path)
    preset = qsm_dmc("quadruped-walk")
    assert preset.agent.qsm.alpha == 120.0
    cfg = tyro.cli(type(preset), default=preset, args=["--seed", "4", "--agent.objective", "dql"])
    resolved = resolve_config(cfg)
    assert resolved.run_dir == Path("runs/quadruped-walk/dql/seed4")
    assert resolved.steps == 100_000


def test_resume_keeps_the_saved_budget_unless_steps_is_given(uninterrupted: Path):
    from diffpolicy.rl.run.loop import resolve_config

    assert resolve_config(TrainConfig(run_dir=uninterrupted, resume=True)).steps == 300
    assert resolve_config(TrainConfig(run_dir=uninterrupted, resume=True, steps=900)).steps == 900
    with pytest.raises(ValueError, match="already at step 300"):
        train(TrainConfig(run_dir=uninterrupted, resume=True, steps=200, progress=False))


def _recipe(*args: str, **popen) -> subprocess.Popen:
    env = {"MUJOCO_GL": "egl", **os.environ}  # a caller's own MUJOCO_GL wins
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, **popen)


TINY_FLAGS = [
    "--warmup-steps",
    "100",
    "--eval-every",
    "150",
    "--eval-episodes",
    "2",
    "--log-every",
    "50",
    "--agent.actor-hidden",
    "32",
    "32",
    "--agent.critic-hidden",
    "32",
    "32",
    "--agent.batch-size",
    "32",
    "--no-progress",
]


@pytest.mark.parametrize(
    ("recipe", "env"),
    [("recipes/qsm_mujoco.py", "Hopper-v5"), ("recipes/qsm_dmc.py", "cheetah-run")],
)
def test_recipe_end_to_end(recipe: str, env: str, tmp_path: Path):
    run = tmp_path / "run"
    proc = _recipe(
        recipe,
        "--env",
        env,
        "--steps",
        "300",
        "--run-dir",
        str(run),
        *TINY_FLAGS,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert str(run) in out
    rows = read_csv(run / "eval.csv")
    assert [int(r["step"]) for r in rows] == [150, 300]
    assert {"step", "return_mean"} <= set(rows[0])


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path: Path):
    run = tmp_path / "run"
    flags = [
        "--env",
        "Hopper-v5",
        "--steps",
        "100000",
        "--run-dir",
        str(run),
        "--checkpoint-every",
        "100000",
        *TINY_FLAGS,
    ]
    proc = _recipe(
        "recipes/qsm_mujoco.py", *flags, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 120
    while not (run / "eval.csv").exists() or not read_csv(run / "eval.csv"):
        assert proc.poll() is None and time.time() < deadline, "the run did not get going"
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "--resume" in out
    stopped_at = load_checkpoint(run / "checkpoint.pt")["step"]
    assert stopped_at >= 150
    train(TrainConfig(run_dir=run, steps=stopped_at + 50, resume=True, progress=False))
    assert load_checkpoint(run / "checkpoint.pt")["step"] == stopped_at + 50


def test_action_saturation_probe_reads_a_run_and_swaps_the_sampler(uninterrupted: Path, capsys):
    """`benchmarks/probe.py saturation` loads the run's weights and reports shares in [0, 1]; the
    Langevin row really acts with the Langevin chain."""
    sys.path.insert(0, str(ROOT / "benchmarks"))  # as the script imports the harness
    import probe

    agent, buffer, env = probe.load_agent(uninterrupted)
    saved = load_checkpoint(uninterrupted / "checkpoint.pt")["agent"]["modules"]
    assert env == "Hopper-v5" and len(buffer) == 300
    assert all(torch.equal(v, saved[k]) for k, v in agent.state_dict().items())

    probe.saturation(
        probe.Saturation(
            (uninterrupted,),
            samplers=("trained", "langevin", "trained"),
            observations=50,
            episodes=1,
        )
    )
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == ["trained", "langevin", "trained"]
    # Each row draws from the same seed: the swapped chain acts differently, and the run's own
    # chain is back for the last row.
    figures = [r.split(",")[2:] for r in rows]
    assert figures[1] != figures[0] and figures[2] == figures[0]
    for row in rows:
        at_bound, mean_abs, sample_std, ret = map(float, row.split(",")[2:])
        assert 0 <= at_bound <= 1 and 0 <= mean_abs <= 1 and sample_std >= 0 and math.isfinite(ret)


def test_greed_probe_acts_with_each_temperature_and_best_of(uninterrupted: Path, capsys):
    """`benchmarks/probe.py greed` evaluates the same weights with each evaluation temperature and
    best-of-N: the agent it loads acts with them, and each row's return is a real evaluation."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import probe

    agent, _, _ = probe.load_agent(uninterrupted, eval_temperature=0.0, eval_best_of=3)
    assert agent.eval_sampler.temperature == 0.0 and agent.cfg.eval_best_of == 3
    saved = load_checkpoint(uninterrupted / "checkpoint.pt")["agent"]["modules"]
    assert all(torch.equal(v, saved[k]) for k, v in agent.state_dict().items())

    probe.greed(probe.Greed((uninterrupted,), temperatures=(1.0, 0.0), best_of=(1, 2), episodes=2))
    rows = [r.split(",") for r in capsys.readouterr().out.strip().splitlines()[1:]]
    assert [(r[1], r[2]) for r in rows] == [("1", "1"), ("1", "2"), ("0", "1"), ("0", "2")]
    for r in rows:
        mean, std, low = map(float, r[3:])
        assert math.isfinite(mean) and std >= 0 and low <= mean


def test_every_mujoco_preset_runs_on_deepmind_control():
    """`recipes/qsm_dmc.py --preset NAME`: each MuJoCo preset's agent on the task, action repeat
    1; the reference keeps its DMC alpha; an unknown task is refused by every preset."""
    from diffpolicy.rl.agent.presets import DMC_PRESETS, MUJOCO_PRESETS, qsm_dmc

    assert set(DMC_PRESETS) == set(MUJOCO_PRESETS)
    for name, preset in MUJOCO_PRESETS.items():
        on_dmc = DMC_PRESETS[name]("quadruped-walk")
        assert on_dmc.env == "quadruped-walk" and on_dmc.action_repeat == 1
        if name != "reference":
            assert on_dmc.agent == preset("quadruped-walk").agent
        with pytest.raises(ValueError, match="unknown DeepMind Control task 'Hopper-v5'"):
            DMC_PRESETS[name]("Hopper-v5")
    assert DMC_PRESETS["reference"]("quadruped-walk") == qsm_dmc("quadruped-walk")
