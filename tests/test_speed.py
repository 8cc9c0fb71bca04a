"""benchmarks/speed.py and benchmarks/probe.py: bad input in one line before anything is timed,
`python benchmarks/update_speed.py` as `speed.py update`, and every measurement run once at a
tiny size, so that each keeps printing its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # as the scripts import their packages

import probe  # noqa: E402
import speed  # noqa: E402

from timing.denoiser_calls import denoiser_calls  # noqa: E402
from timing.update import harness_method_configs, objective_configs  # noqa: E402


def one_error_line(main, args: list[str], capsys) -> str:
    """The single `error: ...` line that `main(args)` ends with (exit status 2)."""
    with pytest.raises(SystemExit) as ended:
        main(args)
    assert ended.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    [line] = captured.err.strip().splitlines()
    assert line.startswith("error: ")
    return line.removeprefix("error: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "a command is needed, one of: update, algorithms, revisions, critic, profile, "),
        (["updte"], "unknown command 'updte', one of: update, "),
        (["update", "--threads", "0"], "--threads 0: needs >= 1, and --clock wall when above 1"),
        (["update", "--threads", "2", "--clock", "cpu"], "--threads 2: needs >= 1, and --clock"),
        (["update", "--device", "tpu"], "device = 'tpu': not a torch device (cpu, cuda, cuda:N"),
        (["update", "--device", "meta"], "device = 'meta': must be cpu, cuda, cuda:N or mps"),
        (["update", "--device", "cuda", "--clock", "cpu"], "--device cuda: needs --clock wall"),
        (["update", "--clock", "gpu"], "--clock gpu: must be one of: wall, cpu"),
        (["update", "--methods", "sac"], "--methods sac: not a QSM method; valid: qsm-best, "),
        (["update", "--methods", "qsm-nope"], "--methods qsm-nope: not a QSM method; valid: "),
        (["update", "--objectives", "nope"], "--objectives nope: unknown; valid: qsm, "),
        (["revisions", "--only", "nope"], "--only 'nope' matches none of: reference (512, "),
        (["revisions", "--base", "no-such-rev"], "--base no-such-rev: fatal: "),
        (["critic", "--base", "no-such-rev"], "--base no-such-rev: fatal: "),
        (["loop", "--window", "0"], "--window must be >= 1 and --warmup >= 0"),
        (["profile", "--preset", "nope"], "--preset nope: must be one of: best, crossq-critic, "),
        (["flops", "--repeats", "x"], "--repeats: "),
    ],
)
def test_speed_refuses_bad_input_in_one_line_before_timing(args, message, capsys):
    assert one_error_line(speed.main, args, capsys).startswith(message)


def test_update_speed_lists_every_qsm_method_it_can_time(capsys):
    line = one_error_line(speed.main, ["update", "--methods", "crossq"], capsys)
    assert "qsm-ln-no-target-input-renorm" in line and "dime-best" in line  # retired and current
    assert ", sac" not in line and ", crossq" not in line


def test_update_speed_times_a_harness_method_with_the_config_its_runs_have():
    from diffpolicy.rl.agent.presets import MUJOCO_PRESETS
    from diffpolicy.rl.run.cli import parse_with_preset

    flags = ["--preset", "polyak-ln", "--agent.no-critic-target-network"]
    configs = harness_method_configs(("qsm-ln-no-target-input-renorm", "qsm-best"))
    expected = parse_with_preset(
        MUJOCO_PRESETS, "best", "Hopper-v5", args=[*flags, "--agent.critic-input-renorm"]
    )[0].agent
    assert configs["qsm-ln-no-target-input-renorm"] == expected
    assert configs["qsm-best"] == MUJOCO_PRESETS["best"]("Hopper-v5").agent
    assert list(configs) == ["qsm-ln-no-target-input-renorm", "qsm-best"]


def test_update_speed_objectives_are_the_harness_methods_of_the_same_objective():
    """--objectives NAME times the config the harness method NAME-best runs (where one exists),
    and the best preset for qsm."""
    from diffpolicy.rl.agent.presets import MUJOCO_PRESETS

    names = ("dime", "dacer", "qvpo")
    configs = objective_configs(("qsm", *names))
    methods = harness_method_configs(tuple(f"{n}-best" for n in names))
    assert configs["best, objective qsm"] == MUJOCO_PRESETS["best"]("Hopper-v5").agent
    for name in names:
        assert configs[f"best, objective {name}"] == methods[f"{name}-best"]


def test_update_speed_counts_every_denoiser_call_and_row():
    """QVPO with n draws per state on a K-level DDPM chain, counted by hand: per update, K calls
    on the batch for the critic's target actions, K on n batches for the draws and one on the
    batch plus 10 uniform actions per state for the loss; per action, K."""
    from diffpolicy.rl import AgentConfig
    from timing.common import qsm_tasks, random_transitions

    K, n = 3, 4
    cfg = AgentConfig(
        objective="qvpo", qvpo_samples=n, diffusion_steps=K, actor_hidden=(8,), critic_hidden=(8,)
    )
    tasks = qsm_tasks(cfg, random_transitions())
    calls, batches, per_action = denoiser_calls(tasks, updates=2)
    assert (calls, batches, per_action) == (K + K + 1, K + K * n + 1 + 10, K)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["saturation"], "RUN_DIRS: give at least one"),
        (["bias", "RUN"], "RUN: no config.json (not a diffpolicy run directory)"),
        (["bias", "--episodes", "x", "RUN"], "--episodes: "),
        (["greed", "--temperatures", "1", "-0.5", "--", "RUN"], "--temperatures must each be >= 0"),
        (["greed", "--best-of", "0", "--", "RUN"], "--best-of must each be >= 1, got (0,)"),
        (["greed", "--episodes", "0", "RUN"], "--episodes must be >= 1, got 0"),
        (["greed", "RUN"], "RUN: no config.json (not a diffpolicy run directory)"),
        (["noise"], "unknown command 'noise', one of: saturation, bias, greed (see --help)"),
    ],
)
def test_probe_refuses_bad_input_in_one_line(args, message, tmp_path, capsys):
    args = [str(tmp_path) if a == "RUN" else a for a in args]
    line = one_error_line(probe.main, args, capsys).replace(str(tmp_path), "RUN")
    assert line.startswith(message)


@pytest.mark.slow
def test_update_speed_is_speed_update_and_prints_the_ratio():
    """The command an issue's done-when names (about 30 s here at one round)."""
    done = subprocess.run(
        [sys.executable, "benchmarks/update_speed.py", "--rounds", "1", "--seconds", "0.01"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "\nupdate ratio best/SAC: " in done.stdout
    assert "QSM fast" in done.stdout and "update ratio crossq-critic/SAC: " in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "printed"),
    [
        (["algorithms", "--rounds", "1", "--seconds", "0.01"], "cq t1 d3"),
        (["revisions", "--base", "HEAD", "--rounds", "1", "--seconds", "0.01", "--only", "CrossQ"],
         "this/base"),
        (["critic", "--rounds", "1", "--calls", "1"], "batch renorm"),
        (["profile", "--updates", "1", "--top", "3"], "operator (self CPU)"),
        (["flops", "--presets", "best", "--repeats", "1"], "| best | "),
        (["loop", "--warmup", "20", "--window", "20", "--no-sac"], "| qsm-reference |"),
        (["checkpoint", "--sizes", "2000", "--obs-dim", "3", "--act-dim", "2", "--new", "500"],
         "2000,"),
    ],
)  # fmt: skip
def test_every_measurement_runs_and_prints_its_figures(args, printed, capsys):
    speed.main(args)
    assert printed in capsys.readouterr().out
