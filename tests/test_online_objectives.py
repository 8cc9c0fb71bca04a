"""DIME, DACER and QVPO end to end: a 2000-step run of each from the MuJoCo recipe's command line
(on the best preset, tiny networks, Pendulum-v1, 500 updates after 1500 warm-up steps), and their
config-time refusals."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest

from diffpolicy.rl import AgentConfig, train
from diffpolicy.rl.agent.components import OBJECTIVES
from diffpolicy.rl.agent.presets import MUJOCO_PRESETS
from diffpolicy.rl.run.cli import parse_with_preset
from diffpolicy.rl.run.validation import ConfigError

TINY = [
    "--env", "Pendulum-v1", "--steps", "2000", "--warmup-steps", "1500", "--eval-every", "2000",
    "--eval-episodes", "1", "--checkpoint-every", "2000", "--no-progress",
    "--agent.actor-hidden", "16", "16", "--agent.critic-hidden", "16", "16",
    "--agent.batch-size", "16",
]  # fmt: skip
# The best preset acts by Langevin dynamics, reading the score in the diffusion convention; the
# objectives that backpropagate through the chain act with DDPM (benchmarks/harness/methods.py).
DDPM = ["--agent.sampler", "ddpm", "--agent.langevin-score", "trained"]
RUNS = {
    "dime": ["--agent.objective", "dime", *DDPM],
    "dacer": ["--agent.objective", "dacer", *DDPM, "--agent.dacer-entropy-every", "100"],
    "qvpo": ["--agent.objective", "qvpo", "--agent.qvpo-samples", "8"],
}
LOSS = {"dime": "dime_loss", "dacer": "dacer_loss", "qvpo": "qvpo_loss"}


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", RUNS)
def test_a_2000_step_run_from_the_recipe(name, tmp_path):
    args = ["--preset", "best", *TINY, "--run-dir", str(tmp_path / name), *RUNS[name]]
    cfg, preset = parse_with_preset(MUJOCO_PRESETS, "best", "Hopper-v5", args=args)
    assert cfg.agent.objective == name
    run = train(cfg, defaults=preset)
    (evaluation,) = _rows(run / "eval.csv")
    assert math.isfinite(float(evaluation["return_mean"]))
    losses = [float(r[LOSS[name]]) for r in _rows(run / "metrics.csv") if r.get(LOSS[name])]
    assert losses and all(math.isfinite(v) for v in losses)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"objective": "dime", "sampler": "ddim"}, "objective dime needs the Gaussian steps"),
        ({"objective": "dime", "sampler": "langevin"}, "objective dime needs the Gaussian"),
        ({"objective": "dime", "ddpm_variance": "small"}, "needs a Gaussian last step"),
        ({"objective": "dime", "exploration_noise": 0.2}, "explores by its chain's own noise"),
        ({"objective": "dacer", "sampler": "langevin"}, "objective dacer backpropagates"),
        ({"objective": "dacer", "exploration_noise": 0.2}, "alpha * dacer_noise_scale"),
        ({"dacer_alpha": 2.0}, "read only by objective dacer"),
        ({"objective": "qvpo", "qvpo_samples": 1}, "agent.qvpo_samples = 1: must be >= 2"),
        ({"objective": "qvpo", "dime_alpha": 0.5}, "read only by objective dime"),
    ],
)
def test_refusals_at_config_time(fields, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        AgentConfig(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"objective": "qvpo", "sampler": "langevin"},
        {"objective": "qvpo", "sampler": "ddim"},
        {"objective": "dacer", "sampler": "ddim"},
        {"objective": "dime", "sample_steps": 3},
        {"objective": "dime", "critic": "crossq"},
    ],
)
def test_compositions_the_maths_allows(fields):
    cfg = AgentConfig(**fields)
    assert OBJECTIVES[cfg.objective] is not None
