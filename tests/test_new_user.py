"""What a new user meets in the first hour: a budget the warm-up would use up, the progress bar
and the run's last line, the recipes' help and environment, and the package's own names."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_runs import tiny_config

import diffpolicy
from diffpolicy.rl.agent.presets import DMC_PRESETS, MUJOCO_PRESETS
from diffpolicy.rl.run import loop
from diffpolicy.rl.run.cli import run_recipe

ROOT = Path(__file__).resolve().parents[1]


def last_eval(run_dir: Path) -> dict:
    with open(run_dir / "eval.csv", newline="") as f:
        return list(csv.DictReader(f))[-1]


def test_a_budget_the_default_warm_up_would_use_up_is_refused_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as ended:
        run_recipe(args=["--env", "Pendulum-v1", "--steps", "3000", "--run-dir", str(run)])
    assert ended.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: warmup_steps = 10000: must be below steps = 3000")
    assert not run.exists()


def test_the_progress_bar_ends_on_its_own_steps_evaluation(tmp_path, monkeypatch):
    bars = []

    class Recorded(loop.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(loop, "tqdm", Recorded)
    cfg = tiny_config(tmp_path / "run")
    cfg.progress, cfg.log_every = True, 30
    run_dir = loop.train(cfg)
    (bar,) = bars
    assert bar.n == cfg.steps
    # The last step is logged and evaluated: the bar shows that evaluation, not the one before.
    assert f"eval={float(last_eval(run_dir)['return_mean']):.1f}" in bar.postfix
    assert "sps=nan" not in bar.postfix


def test_a_recipe_run_ends_with_its_final_evaluation_and_its_folder(tmp_path, capsys):
    run_dir = loop.train_from_cli(tiny_config(tmp_path / "run"))
    row = last_eval(run_dir)
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line == (
        f"final evaluation at step 120: return {float(row['return_mean']):.1f} "
        f"+- {float(row['return_std']):.1f} over 1 episodes; run files in {run_dir}"
    )


@pytest.mark.parametrize(
    ("script", "presets"),
    [("recipes/qsm_mujoco.py", MUJOCO_PRESETS), ("recipes/qsm_dmc.py", DMC_PRESETS)],
)
def test_the_recipes_help_lists_every_preset(script, presets):
    help_text = subprocess.run(
        [sys.executable, script, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    # Both recipes start from the best preset (the README's recipe table says so).
    assert "--preset NAME (default best)" in help_text
    for name, preset in presets.items():  # each by name, with its docstring's first line
        assert f"{name}: {preset.__doc__.splitlines()[0]}" in help_text, name


# Run in a fresh process: records MUJOCO_GL at the moment mujoco is first imported.
MUJOCO_GL_AT_IMPORT = """
import os, runpy, sys
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "mujoco":
            seen.append(os.environ.get("MUJOCO_GL"))
sys.meta_path.insert(0, Spy())
runpy.run_path(sys.argv[1], run_name="imported")
import mujoco  # the recipes' environments import it when they are made, if not before
print(seen[0])
"""


@pytest.mark.parametrize("script", ["recipes/qsm_mujoco.py", "recipes/qsm_dmc.py"])
def test_recipes_choose_mujocos_headless_backend_when_none_is_set(script):
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    proc = subprocess.run(
        [sys.executable, "-c", MUJOCO_GL_AT_IMPORT, script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "egl"


def test_the_package_exports_its_main_names():
    assert len(diffpolicy.__all__) == len(set(diffpolicy.__all__))
    for name in diffpolicy.__all__:
        assert getattr(diffpolicy, name) is not None, name
    from diffpolicy import Agent, load_policy, make_schedule, qsm_loss, train  # noqa: F401


def test_the_bandit_recipe_shows_its_progress(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("qsm_bandit", ROOT / "recipes" / "qsm_bandit.py")
    bandit = importlib.util.module_from_spec(spec)
    sys.modules["qsm_bandit"] = bandit  # dataclasses look their module up
    spec.loader.exec_module(bandit)
    bandit.main(bandit.BanditConfig(rounds=20, out=tmp_path / "bandit.png"))
    assert "QSM bandit rounds" in capsys.readouterr().err
