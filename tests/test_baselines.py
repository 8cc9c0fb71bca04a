"""benchmarks/sac_baseline.py: SAC and CrossQ runs, and checkpoints restored without unpickling."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sac():
    spec = importlib.util.spec_from_file_location(
        "sac_baseline", ROOT / "benchmarks" / "sac_baseline.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["sac_baseline"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def tiny(sac, run_dir: Path, **overrides):
    fields = dict(
        env="Pendulum-v1",
        steps=60,
        run_dir=run_dir,
        learning_starts=40,
        eval_every=30,
        eval_episodes=1,
        checkpoint_every=30,
        log_every=30,
        progress=False,
    )
    return sac.SACConfig(**{**fields, **overrides})


def eval_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "eval.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def test_sac_checkpoint_restores_weights_optimisers_and_replay(sac, tmp_path):
    run = sac.train(tiny(sac, tmp_path / "run"))
    manifest = json.loads((run / "sac_checkpoint.json").read_text())
    assert manifest["step"] == 60 and not list(run.glob("*.pkl")) and not list(run.glob("*.zip"))

    model = sac.build_model(tiny(sac, run), sac.make_train_env("Pendulum-v1"))
    sac.load_checkpoint_files(model, run, sac.ChunkedRing(run / "replay"))
    saved = sac.load_checkpoint(run / manifest["model"])
    policy = model.policy.state_dict()
    assert all(torch.equal(policy[k], v) for k, v in saved["params"]["policy"].items())
    assert torch.equal(model.log_ent_coef.detach(), saved["variables"]["log_ent_coef"])
    assert model.actor.optimizer.state_dict()["state"]  # Adam moments came back
    assert model.num_timesteps == 60 and model._n_updates == saved["n_updates"] > 0
    rb = model.replay_buffer
    assert rb.full and rb.pos == 0  # capacity min(1e6, steps) = 60 transitions, all there
    # Pendulum's observation is (cos, sin, velocity): every stored row is a real one.
    obs = rb.observations[:, 0]
    np.testing.assert_allclose(obs[:, 0] ** 2 + obs[:, 1] ** 2, 1.0, rtol=1e-5)


def test_sac_resume_extends_the_run_and_the_replay_ring(sac, tmp_path):
    run = sac.train(tiny(sac, tmp_path / "run"))
    sac.train(sac.SACConfig(run_dir=run, steps=100, resume=True, progress=False))
    assert eval_steps(run) == [30, 60, 90, 100]  # the budget's last step is evaluated
    chunks = sorted(p.name for p in (run / "replay").iterdir())
    assert chunks[-1].endswith("-000000000100.pt")
    model = sac.build_model(tiny(sac, run, steps=100), sac.make_train_env("Pendulum-v1"))
    sac.load_checkpoint_files(model, run, sac.ChunkedRing(run / "replay"))
    assert model.replay_buffer.full and model.num_timesteps == 100


def test_crossq_runs_and_resumes(sac, tmp_path):
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import CrossQ

    # Few updates: CrossQ's critics are 1024 wide.
    run = sac.train(tiny(sac, tmp_path / "run", algo="crossq", learning_starts=52))
    assert json.loads((run / "config.json").read_text())["algo"] == "crossq"
    sac.train(sac.SACConfig(run_dir=run, steps=70, resume=True, progress=False))
    assert eval_steps(run) == [30, 60, 70]
    cfg = tiny(sac, run, algo="crossq", learning_starts=52, steps=70)
    model = sac.build_model(cfg, sac.make_train_env("Pendulum-v1"))
    assert isinstance(model, CrossQ) and model.learning_starts == 52
    assert model.policy_delay == 3  # CrossQ's own default, untouched
    sac.load_checkpoint_files(model, run, sac.ChunkedRing(run / "replay"))
    assert model.num_timesteps == 70 and model._n_updates > 0


def test_default_run_dir_names_the_algorithm(sac):
    cfg = sac.SACConfig(algo="crossq", env="Hopper-v5", seed=2)
    assert cfg.run_dir == Path("runs/Hopper-v5/crossq/seed2")


def test_evaluations_log_the_critics_bias_and_read_the_mean_of_the_critics(sac, tmp_path):
    run = sac.train(tiny(sac, tmp_path / "run"))
    with open(run / "value_bias.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # Pendulum only truncates, at 200 steps, fewer than the horizon at gamma 0.99: nothing counts.
    assert [int(r["step"]) for r in rows] == eval_steps(run)
    assert all(r["states"] == "0" for r in rows)

    model = sac.build_model(tiny(sac, run), sac.make_train_env("Pendulum-v1"))
    callback = sac.ProtocolCallback(tiny(sac, run), [], None, None, None, None)
    callback.init_callback(model)
    with torch.no_grad():
        for q_net, constant in zip(model.critic.q_networks, (3.0, -1.0), strict=True):
            for p in q_net.parameters():
                p.zero_()
            q_net[-1].bias.fill_(constant)
    q = callback.q_estimate(torch.randn(4, 3), torch.rand(4, 1) * 2 - 1)
    assert torch.allclose(q, torch.full((4,), 1.0))
