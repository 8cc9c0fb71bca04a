"""The learning-benchmark harness (benchmarks/learning.py): aggregation against hand-computed
values, the resume/skip decision, command building, and one tiny SB3 SAC run whose eval.csv must
have the QSM loop's columns."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tyro

from diffpolicy.rl import TrainConfig
from diffpolicy.rl.logger import Logger

REPO = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


learning = _load("learning")

EVAL_FIELDS = Logger.EVAL_FIELDS


def write_eval(path: Path, curve: dict[int, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, EVAL_FIELDS)
        writer.writeheader()
        for step, ret in curve.items():
            writer.writerow(
                {
                    "step": step,
                    "return_mean": ret,
                    "return_std": 1.0,
                    "return_min": ret - 1,
                    "return_max": 1e9,  # a best-of value that must never be reported
                    "length_mean": 1000,
                    "episodes": 10,
                    "wall_time": 0.0,
                }
            )


def write_sps(path: Path, values: list[float]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "sps"])
        writer.writerows([(1000 * (i + 1), v) for i, v in enumerate(values)])


def sample_std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """Hopper-v5: qsm with 3 seeds (seed 2 stops at 100k), sac with 2 seeds; Walker2d: 1 seed."""
    root = tmp_path / "results" / "mujoco"
    steps = [50_000, 100_000, 150_000, 200_000]
    for seed, scale in ((0, 1.0), (1, 2.0), (2, 4.0)):
        n = 2 if seed == 2 else 4
        curve = {s: scale * s / 1000 for s in steps[:n]}
        write_eval(root / "Hopper-v5" / "qsm" / f"seed{seed}" / "eval.csv", curve)
    for seed, offset in ((0, 10.0), (1, 30.0)):
        curve = {s: offset + s / 1000 for s in steps}
        write_eval(root / "Hopper-v5" / "sac" / f"seed{seed}" / "eval.csv", curve)
        write_sps(root / "Hopper-v5" / "sac" / f"seed{seed}" / "sps.csv", [50.0, 50.0])
    write_sps(root / "Hopper-v5" / "qsm" / "seed0" / "sps.csv", [100.0, 50.0])
    write_eval(root / "Walker2d-v5" / "qsm" / "seed0" / "eval.csv", {50_000: 7.0})
    return root


def rows_of(rows, env, method):
    return {(r["point"], r["step"]): r for r in rows if r["env"] == env and r["method"] == method}


def test_summary_values_at_fixed_steps(suite: Path):
    rows = learning.aggregate_suite(suite, [50_000, 100_000, 200_000])
    qsm = rows_of(rows, "Hopper-v5", "qsm")
    # seed 2 never reached 150k/200k: only 50k, 100k and the last common step (100k) are reported
    assert set(qsm) == {("fixed", 50_000), ("fixed", 100_000), ("last", 100_000), ("tail", 100_000)}
    for step in (50_000, 100_000):
        values = [scale * step / 1000 for scale in (1.0, 2.0, 4.0)]
        row = qsm[("fixed", step)]
        assert row["seeds"] == 3
        assert row["return_mean"] == pytest.approx(sum(values) / 3)
        assert row["return_std"] == pytest.approx(sample_std(values))
    assert qsm[("last", 100_000)]["return_mean"] == pytest.approx(700 / 3)

    sac = rows_of(rows, "Hopper-v5", "sac")
    assert set(sac) == {
        ("fixed", 50_000),
        ("fixed", 100_000),
        ("fixed", 200_000),
        ("last", 200_000),
        ("tail", 200_000),
    }
    assert sac[("fixed", 200_000)]["return_mean"] == pytest.approx(220.0)
    assert sac[("fixed", 200_000)]["return_std"] == pytest.approx(sample_std([210.0, 230.0]))

    walker = rows_of(rows, "Walker2d-v5", "qsm")
    assert walker[("fixed", 50_000)]["return_mean"] == 7.0
    assert math.isnan(walker[("fixed", 50_000)]["return_std"])  # one seed: no spread
    assert all(r["return_mean"] < 1e6 for r in rows)  # never the best-of column


def test_tail_averages_each_seed_over_the_last_window(tmp_path: Path):
    root = tmp_path / "mujoco"
    steps = range(5_000, 100_001, 5_000)
    # evaluations every 5k; a window of 10k ending at 100k holds 90k, 95k and 100k, not 85k
    write_eval(
        root / "Hopper-v5" / "qsm" / "seed0" / "eval.csv",
        {**{s: 0.0 for s in steps}, 85_000: 1e4, 90_000: 3.0, 95_000: 6.0, 100_000: 9.0},
    )
    write_eval(
        root / "Hopper-v5" / "qsm" / "seed1" / "eval.csv",
        {**{s: 0.0 for s in steps}, 90_000: 30.0, 95_000: 0.0, 100_000: 0.0},
    )
    rows = rows_of(learning.aggregate_suite(root, [50_000]), "Hopper-v5", "qsm")
    assert learning.TAIL_WINDOW == 10_000
    tail = rows[("tail", 100_000)]
    assert tail["return_mean"] == pytest.approx((6.0 + 10.0) / 2)
    assert tail["return_std"] == pytest.approx(sample_std([6.0, 10.0]))
    assert rows[("last", 100_000)]["return_mean"] == pytest.approx(4.5)  # the single-step point
    assert (
        "| qsm | 2 | 0.0 ± 0.0 | 4.5 ± 6.4 @ 100000 | 8.0 ± 2.8 @ 100000 |"
        in (root / "summary.md").read_text()
    )


def test_aggregate_files(suite: Path):
    learning.aggregate_suite(suite, [50_000, 100_000])
    with open(suite / "summary.csv", newline="") as f:
        saved = list(csv.DictReader(f))
    assert {r["method"] for r in saved} == {"qsm", "sac"}
    assert float(rows_of(saved, "Hopper-v5", "sac")[("fixed", "50000")]["return_mean"]) == 70.0
    for env in ("Hopper-v5", "Walker2d-v5"):
        png = suite / f"{env}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (suite / "summary.md").read_text()
    assert "## Hopper-v5" in md and "| qsm | 3 |" in md and "233.3 ± " in md
    with open(suite / "sps.csv", newline="") as f:
        sps = {(r["method"], r["seed"]): float(r["sps"]) for r in csv.DictReader(f)}
    # whole-loop rate: two equal windows at 100 and 50 steps/s -> 2 / (1/100 + 1/50)
    assert sps[("qsm", "0")] == pytest.approx(200 / 3)
    assert sps[("sac", "1")] == pytest.approx(50.0)
    assert "| Hopper-v5 | qsm | 1 | 66.7 | 1.33 |" in md


def test_collect_drops_the_warmup_window(tmp_path: Path):
    run_dir = tmp_path / "run"
    write_eval(run_dir / "eval.csv", {200: 1.0})
    (run_dir / "config.json").write_text(json.dumps({"warmup_steps": 200, "log_every": 100}))
    with open(run_dir / "metrics.csv", "w") as f:
        f.write("step,sps,critic_loss\n200,1500.0,1.0\n300,40.0,1.0\n400,60.0,1.0\n")
    assert learning.collect(run_dir, tmp_path / "res")
    assert (tmp_path / "res" / "eval.csv").read_text() == (run_dir / "eval.csv").read_text()
    assert learning.run_sps(tmp_path / "res" / "sps.csv") == pytest.approx(48.0)
    assert not learning.collect(tmp_path / "missing", tmp_path / "res2")


def test_decide(tmp_path: Path):
    d = tmp_path / "run"
    assert learning.decide(d, 1000) == "fresh"  # nothing there
    d.mkdir()
    (d / "harness.log").write_text("$ ...\n")
    assert learning.decide(d, 1000) == "fresh"  # only the harness's log
    (d / "config.json").write_text("{}")
    assert learning.decide(d, 1000) == "restart"  # started, never checkpointed
    (d / "checkpoint.pt").write_bytes(b"")
    assert learning.decide(d, 1000) == "resume"
    assert learning.decide(d, 1000, busy=True) == "busy"  # a live process trains there
    write_eval(d / "eval.csv", {500: 1.0})
    assert learning.decide(d, 1000) == "resume"  # eval.csv short of the budget
    write_eval(d / "eval.csv", {500: 1.0, 1000: 2.0})
    assert learning.decide(d, 1000) == "skip"
    assert learning.decide(d, 1000, busy=True) == "skip"
    assert learning.decide(d, 2000) == "resume"  # a larger budget extends the run

    sac = tmp_path / "sac"
    sac.mkdir()
    (sac / "config.json").write_text("{}")
    (sac / "sac_checkpoint.json").write_text("{}")
    assert learning.decide(sac, 1000) == "resume"


def test_build_command(tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "r"
    extra, sac_extra = ["--warmup-steps", "200"], ["--learning-starts", "200"]
    cmd = learning.build_command(
        "qsm-w256-langevin", "mujoco", "Hopper-v5", 3, 600, run_dir, True, extra, sac_extra
    )
    assert cmd[0] == sys.executable and cmd[1].endswith("recipes/qsm_mujoco.py")
    assert cmd[cmd.index("--seed") + 1] == "3" and cmd[cmd.index("--steps") + 1] == "600"
    assert cmd[cmd.index("--run-dir") + 1] == str(run_dir)
    assert cmd[cmd.index("--agent.sampler") + 1] == "langevin"
    assert cmd[-3:] == [*extra, "--resume"]
    assert "--learning-starts" not in cmd

    cmd = learning.build_command(
        "sac", "mujoco", "Hopper-v5", 0, 600, run_dir, False, extra, sac_extra
    )
    assert cmd[1].endswith("benchmarks/sac_baseline.py")
    assert cmd[-2:] == sac_extra and "--warmup-steps" not in cmd and "--resume" not in cmd

    monkeypatch.setitem(learning.METHODS, "nope", learning.Method(("recipes/nope_{suite}.py",)))
    with pytest.raises(FileNotFoundError, match="nope_dmc.py"):
        learning.build_command("nope", "dmc", "cheetah-run", 0, 600, run_dir, False)


@pytest.mark.parametrize("method", [m for m, s in learning.METHODS.items() if s.family != "sac"])
def test_every_diffpolicy_method_parses_to_a_valid_config(method: str):
    """A typo in a method's flags must fail here, not 100 minutes into a benchmark."""
    cfg = tyro.cli(TrainConfig, args=["--env", "Hopper-v5", *learning.METHODS[method].flags])
    assert isinstance(cfg, TrainConfig)


def test_plan_checks_suite_and_method(tmp_path: Path):
    base = {"runs_root": tmp_path / "runs", "results_root": tmp_path / "res", "seeds": (0,)}
    with pytest.raises(ValueError, match="suite"):
        learning.plan(learning.Run(suite="mujoco", envs=("cheetah-run",), **base))
    with pytest.raises(ValueError, match="unknown methods"):
        learning.plan(learning.Run(methods=("nope",), **base))
    jobs = learning.plan(learning.Run(methods=("qsm-reference", "sac"), steps=600, **base))
    assert [(j.method, j.decision) for j in jobs] == [("qsm-reference", "fresh"), ("sac", "fresh")]
    assert jobs[1].run_dir == (tmp_path / "runs" / "mujoco" / "Hopper-v5" / "sac" / "seed0")
    assert jobs[1].result_dir == tmp_path / "res" / "mujoco" / "Hopper-v5" / "sac" / "seed0"


def test_jobs_are_decided_again_at_launch(tmp_path: Path, monkeypatch, capsys):
    """A run finished, or being trained, by another harness since the plan was made is not
    launched again (two harnesses sharing a run list once collided this way)."""
    base = {"runs_root": tmp_path / "runs", "results_root": tmp_path / "res", "seeds": (0, 1, 2)}
    jobs = learning.plan(learning.Run(methods=("qsm-reference",), steps=600, **base))
    assert [j.decision for j in jobs] == ["fresh"] * 3
    finished, busy, resumable = (j.run_dir for j in jobs)
    finished.mkdir(parents=True)
    (finished / "eval.csv").write_text("step,return_mean\n600,1.0\n")
    resumable.mkdir(parents=True)
    (resumable / "checkpoint.pt").write_bytes(b"")
    monkeypatch.setattr(learning, "active_run_dirs", lambda: {busy})

    now = [learning.launch_now(j) for j in jobs]
    assert [j.decision for j in now] == ["skip", "busy", "resume"]
    assert not now[0].cmd and not now[1].cmd and now[2].cmd[-1] == "--resume"

    launched = []
    monkeypatch.setattr(learning.subprocess, "Popen", lambda cmd, **kw: launched.append(cmd))
    monkeypatch.setattr(learning, "launch_now", lambda j: j._replace(decision="skip", cmd=[]))
    assert learning.execute(jobs, max_jobs=2) == {}
    assert launched == [] and capsys.readouterr().out.count("[skip now]") == 3


def test_execute_collects_each_run_when_it_ends(tmp_path: Path, monkeypatch):
    """A finished run's eval.csv reaches the results folder while the harness is still going, so
    `aggregate` can report it without waiting for the harness's other runs."""
    base = {"runs_root": tmp_path / "runs", "results_root": tmp_path / "res", "seeds": (0,)}
    (job,) = learning.plan(learning.Run(methods=("qsm-reference",), steps=600, **base))
    write = "import pathlib, sys; pathlib.Path(sys.argv[1], 'eval.csv').write_text('step\\n600\\n')"
    fake = job._replace(cmd=[sys.executable, "-c", write, str(job.run_dir)])
    monkeypatch.setattr(learning, "launch_now", lambda j: j)
    assert learning.execute([fake], max_jobs=1) == {job.run_dir: 0}
    assert (job.result_dir / "eval.csv").read_text() == "step\n600\n"


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_active_run_dirs_sees_a_live_run(tmp_path: Path):
    code = "import time; time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code, "--run-dir", str(tmp_path / "x")])
    try:
        deadline = time.time() + 10
        while (tmp_path / "x").resolve() not in learning.active_run_dirs():
            assert time.time() < deadline, "the live process's --run-dir was not found"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_tiny_sac_run_writes_the_qsm_loop_columns(tmp_path: Path):
    pytest.importorskip("stable_baselines3")

    sac = _load("sac_baseline")
    cfg = sac.SACConfig(
        env="Hopper-v5",
        steps=160,
        seed=0,
        run_dir=tmp_path / "sac",
        learning_starts=120,
        eval_every=80,
        eval_episodes=2,
        checkpoint_every=80,
        log_every=40,
        progress=False,
    )
    run_dir = sac.train(cfg)
    with open(run_dir / "eval.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == EVAL_FIELDS
    assert [int(r["step"]) for r in rows] == [80, 160]
    assert all(int(r["episodes"]) == 2 for r in rows)
    manifest = json.loads((run_dir / "sac_checkpoint.json").read_text())
    assert manifest["step"] == 160 and (run_dir / manifest["replay_buffer"]).is_file()
    with open(run_dir / "metrics.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [160]  # windows after warm-up
