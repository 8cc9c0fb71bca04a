"""The learning-benchmark harness (benchmarks/learning.py and benchmarks/harness/): statistics
against hand-computed values, the launch decision, run-directory claims, command building, the
local backend, and one tiny SB3 SAC run whose eval.csv must have the QSM loop's columns."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from diffpolicy.rl import TrainConfig
from diffpolicy.rl.agent.presets import MUJOCO_PRESETS
from diffpolicy.rl.run.cli import parse_with_preset
from diffpolicy.rl.storage.logger import Logger

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))  # the harness package, as learning.py imports it

import learning  # noqa: E402

from harness import claim, launch, local_backend, stats  # noqa: E402
from harness.aggregate import aggregate_suite  # noqa: E402
from harness.cli import BadInput  # noqa: E402
from harness.collect import collect, run_sps  # noqa: E402
from harness.methods import CURRENT, METHODS, PLOTTED, RETIRED, Method, build_command  # noqa: E402
from harness.plan import Job, Sweep, decide, plan  # noqa: E402
from harness.reach import first_step_at, reach_table  # noqa: E402
from harness.report import rule_table  # noqa: E402
from harness.results import TAIL_WINDOW, load_suite  # noqa: E402
from harness.seed_table import seed_table  # noqa: E402

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


def mann_whitney(x: list[float], y: list[float]) -> float:
    """P(X > Y) by counting pairs, ties as half."""
    return sum((a > b) + 0.5 * (a == b) for a in x for b in y) / (len(x) * len(y))


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


# --- statistics -----------------------------------------------------------------------------------
def test_summary_values_at_fixed_steps(suite: Path):
    rows = aggregate_suite(suite, [50_000, 100_000, 200_000])
    qsm = rows_of(rows, "Hopper-v5", "qsm")
    # seed 2 never reached 150k/200k: only 50k, 100k and the last common step (100k) are reported
    assert set(qsm) == {("fixed", 50_000), ("fixed", 100_000), ("last", 100_000), ("tail", 100_000)}
    for step in (50_000, 100_000):
        values = [scale * step / 1000 for scale in (1.0, 2.0, 4.0)]
        row = qsm[("fixed", step)]
        assert row["seeds"] == 3
        assert row["return_mean"] == pytest.approx(sum(values) / 3)
        assert row["return_std"] == pytest.approx(sample_std(values))
        assert row["return_iqm"] == pytest.approx(sum(values) / 3)  # 3 seeds: nothing trimmed
        assert min(values) <= row["iqm_low"] <= row["return_iqm"] <= row["iqm_high"] <= max(values)
        sac = [10 + step / 1000, 30 + step / 1000]
        assert row["p_over_sac"] == pytest.approx(mann_whitney(values, sac))
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
    assert math.isnan(sac[("fixed", 200_000)]["p_over_sac"])  # not compared with itself

    walker = rows_of(rows, "Walker2d-v5", "qsm")
    assert walker[("fixed", 50_000)]["return_mean"] == 7.0
    assert math.isnan(walker[("fixed", 50_000)]["return_std"])  # one seed: no spread
    assert math.isnan(walker[("fixed", 50_000)]["p_over_sac"])  # no SAC on Walker2d
    assert all(r["return_mean"] < 1e6 for r in rows)  # never the best-of column


def test_iqm_trims_a_quarter_at_each_end_and_bootstraps_reproducibly():
    values = [100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -100.0]  # 8 runs: 2 cut at each end
    scores = np.array(values)[:, None, None]
    first, second = stats.iqm(scores), stats.iqm(scores)
    assert first.at(0)[0] == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))
    assert first.at(0) == second.at(0)  # seeded: the same files give the same summary
    value, low, high = first.at(0)
    assert -100 < low < value < high < 100
    state = np.random.get_state()[1].copy()
    stats.iqm(scores)
    assert (np.random.get_state()[1] == state).all()  # the global RNG is given back


def test_vectorised_statistics_equal_rliables_metrics():
    from rliable import metrics

    rng = np.random.default_rng(0)
    for runs, tasks in ((3, 1), (5, 2), (8, 3), (10, 1)):
        x = rng.integers(0, 4, (runs, tasks, 6)).astype(float)  # small integers: many ties
        y = rng.integers(0, 4, (runs + 1, tasks, 6)).astype(float)
        for p in range(6):
            assert stats.iqm_per_point(x)[p] == pytest.approx(metrics.aggregate_iqm(x[..., p]))
            expected = metrics.probability_of_improvement(x[..., p], y[..., p])
            assert stats.improvement_per_point(x, y)[p] == pytest.approx(expected)


def test_probability_of_improvement_counts_pairs_and_averages_envs():
    x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])[..., None]  # (runs, envs, 1)
    y = np.array([[0.0, 25.0], [2.5, 25.0], [5.0, 25.0]])[..., None]
    expected = (mann_whitney([1, 2, 3], [0, 2.5, 5]) + mann_whitney([10, 20, 30], [25] * 3)) / 2
    assert stats.improvement(x, y).at(0)[0] == pytest.approx(expected)


def test_across_envs_normalises_by_sac_at_the_same_step(tmp_path: Path):
    root = tmp_path / "mujoco"
    for env, sac_scale in (("Hopper-v5", 100.0), ("Walker2d-v5", 10.0)):
        for seed in range(4):
            sac = {50_000: sac_scale * (1 + seed % 2 * 0.2 - 0.1)}  # mean sac_scale
            write_eval(root / env / "sac" / f"seed{seed}" / "eval.csv", sac)
            write_eval(root / env / "qsm" / f"seed{seed}" / "eval.csv", {50_000: sac_scale * seed})
    aggregate_suite(root, [50_000])
    with open(root / "aggregate.csv", newline="") as f:
        across = {r["method"]: r for r in csv.DictReader(f)}
    # qsm / SAC's mean: 0, 1, 2, 3 on both envs; IQM of the 8 values cuts 0, 0 and 3, 3
    assert float(across["qsm"]["normalised_iqm"]) == pytest.approx(1.5)
    assert across["qsm"]["envs"] == "Hopper-v5 Walker2d-v5" and across["qsm"]["runs_per_env"] == "4"
    expected = mann_whitney([0, 1, 2, 3], [0.9, 1.1, 0.9, 1.1])
    assert float(across["qsm"]["p_over_sac"]) == pytest.approx(expected)
    assert float(across["sac"]["normalised_iqm"]) == pytest.approx(1.0)
    md = (root / "summary.md").read_text()
    assert (
        "## All environments, normalised by SAC" in md
        and "| qsm | Hopper-v5 Walker2d-v5 | 4 |" in md
    )
    assert (root / "all-envs.png").read_bytes()[:4] == b"\x89PNG"


def test_mean_ratio_of_means_uses_every_seed_and_averages_the_envs(tmp_path: Path):
    root = tmp_path / "mujoco"
    returns = {
        ("Hopper-v5", "qsm"): [100.0, 200.0, 600.0],  # mean 300 against SAC's 200: 1.5
        ("Hopper-v5", "sac"): [100.0, 300.0],
        ("Walker2d-v5", "qsm"): [10.0, 20.0, 30.0],  # mean 20 against SAC's 40: 0.5
        ("Walker2d-v5", "sac"): [40.0, 40.0, 40.0],
    }
    for (env, method), values in returns.items():
        for seed, value in enumerate(values):
            write_eval(root / env / method / f"seed{seed}" / "eval.csv", {50_000: value})
    aggregate_suite(root, [50_000])
    with open(root / "aggregate.csv", newline="") as f:
        across = {r["method"]: r for r in csv.DictReader(f)}
    # (1.5 + 0.5) / 2; pooling the envs would give 320 / 240, the first two seeds only 0.625
    assert float(across["qsm"]["mean_ratio_of_means"]) == pytest.approx(1.0)
    assert float(across["sac"]["mean_ratio_of_means"]) == pytest.approx(1.0)
    md = (root / "summary.md").read_text()
    assert "| mean / SAC's at 50k |" in md
    assert [line for line in md.splitlines() if line.startswith("| qsm |")][0].endswith("| 1.00 |")


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
    rows = rows_of(aggregate_suite(root, [50_000]), "Hopper-v5", "qsm")
    assert TAIL_WINDOW == 10_000
    tail = rows[("tail", 100_000)]
    assert tail["return_mean"] == pytest.approx((6.0 + 10.0) / 2)
    assert tail["return_std"] == pytest.approx(sample_std([6.0, 10.0]))
    assert rows[("last", 100_000)]["return_mean"] == pytest.approx(4.5)  # the single-step point
    md = (root / "summary.md").read_text()
    low, high = rows[("tail", 100_000)]["iqm_low"], rows[("tail", 100_000)]["iqm_high"]
    assert f"| 8.0 [{low:.1f}, {high:.1f}] @ 100000 |" in md


def test_seed_table_lists_every_seed_and_agrees_with_the_aggregate(tmp_path: Path):
    root = tmp_path / "mujoco"
    returns = {
        ("Hopper-v5", "qsm", 0): {50_000: 100.0, 100_000: 300.0},
        ("Hopper-v5", "qsm", 1): {50_000: 200.0, 100_000: 500.0},
        ("Hopper-v5", "qsm", 2): {50_000: 600.0},  # stopped before 100k
        ("Hopper-v5", "sac", 0): {50_000: 100.0, 100_000: 400.0},
        ("Hopper-v5", "sac", 1): {50_000: 300.0, 100_000: 400.0},
        ("Walker2d-v5", "qsm", 0): {50_000: 10.0, 100_000: 60.0},
        ("Walker2d-v5", "sac", 0): {50_000: 40.0, 100_000: 30.0},
    }
    for (env, method, seed), curve in returns.items():
        write_eval(root / env / method / f"seed{seed}" / "eval.csv", curve)
    table = seed_table(load_suite(root), ["qsm", "sac", "crossq"], [50_000, 100_000])
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in table.splitlines()}
    # Hopper at 50k: mean 300 / SAC's 200; at 100k two seeds of three, mean 400 / 400
    assert rows[("Hopper-v5", "qsm")].endswith(
        "| 100, 200, 600 | 300 | 1.50 | 300, 500 (1 short) | 400 | 1.00 |"
    )
    assert rows[("Walker2d-v5", "qsm")].endswith("| 10 | 10 | 0.25 | 60 | 60 | 2.00 |")
    assert "| Hopper-v5 | crossq | not run |" in table
    # across envs at 50k: (1.5 + 0.25) / 2; at 100k only Walker2d has every qsm seed
    mean_row = rows[("mean of / SAC", "qsm")]
    assert (
        "| over Hopper-v5, Walker2d-v5 |  | **0.88** | over Walker2d-v5 |  | **2.00** |" in mean_row
    )
    assert "| mean of / SAC | crossq | not run |" in table
    aggregate_suite(root, [50_000])
    with open(root / "aggregate.csv", newline="") as f:
        across = {r["method"]: r for r in csv.DictReader(f)}
    assert float(across["qsm"]["mean_ratio_of_means"]) == pytest.approx(0.875)


def test_rule_table_gives_each_envs_ratio_and_the_minimum_only_where_every_env_counts(
    tmp_path: Path, capsys
):
    root = tmp_path / "mujoco"
    returns = {
        ("Hopper-v5", "qsm-best", 0): 300.0,
        ("Hopper-v5", "qsm-best", 1): 500.0,
        ("Hopper-v5", "sac", 0): 200.0,
        ("Hopper-v5", "sac", 1): 600.0,
        ("Walker2d-v5", "qsm-best", 0): 90.0,
        ("Walker2d-v5", "sac", 0): 30.0,
        ("Hopper-v5", "crossq", 0): 800.0,
    }
    for (env, method, seed), value in returns.items():
        write_eval(root / env / method / f"seed{seed}" / "eval.csv", {100_000: value})
    table = rule_table(load_suite(root), 100_000)
    assert "| method | Hopper-v5 | Walker2d-v5 | minimum |" in table
    assert "| qsm-best | 1.00 | 3.00 | **1.00** |" in table  # 400 / 400 and 90 / 30
    assert "| crossq | 2.00 |  |  |" in table  # Walker2d not run: no minimum
    assert "| sac |" not in table
    aggregate_suite(root, [100_000])
    assert "| qsm-best | 1.00 | 3.00 | **1.00** |" in (root / "summary.md").read_text()
    learning.table(
        learning.Table(methods=("qsm-best", "sac"), steps=(100_000,), results_root=tmp_path)
    )
    out = capsys.readouterr().out
    assert "| min of / SAC | qsm-best | over Hopper-v5, Walker2d-v5 |  | **1.00** |" in out
    with open(root / "aggregate.csv", newline="") as f:  # the IQM, as the aggregate has it
        [row] = [r for r in csv.DictReader(f) if r["method"] == "qsm-best"]
    iqm = float(row["normalised_iqm"])
    assert f"| qsm-best | Hopper-v5 Walker2d-v5 | 1 | {iqm:.2f} |" in out


def test_reach_table_gives_each_seeds_first_step_at_sacs_mean_and_its_minutes(tmp_path: Path):
    root = tmp_path / "mujoco"
    returns = {
        ("Hopper-v5", "qsm", 0): {50_000: 450.0, 100_000: 300.0},  # there at 50k, then fell
        ("Hopper-v5", "qsm", 1): {50_000: 100.0, 100_000: 400.0},  # exactly the threshold
        ("Hopper-v5", "slow", 0): {50_000: 100.0, 100_000: 399.0},
        ("Hopper-v5", "sac", 0): {50_000: 100.0, 100_000: 300.0},
        ("Hopper-v5", "sac", 1): {50_000: 300.0, 100_000: 500.0},
    }
    for (env, method, seed), curve in returns.items():
        write_eval(root / env / method / f"seed{seed}" / "eval.csv", curve)
    for seed, sps in ((0, 50.0), (1, 25.0)):  # whole-loop steps/s, as collect writes them
        (root / "Hopper-v5" / "qsm" / f"seed{seed}" / "sps.csv").write_text(
            f"step,sps\n20000,{sps}\n"
        )
    table = reach_table(load_suite(root), ["qsm", "slow", "crossq"], 100_000)
    # SAC's mean at 100k is 400; qsm's seeds get there at 50k (1000 s) and 100k (4000 s)
    assert "| Hopper-v5 | qsm | 400 | 50k, 100k | 2/2 | 42 |" in table
    assert "| Hopper-v5 | slow | 400 | not reached | 0/1 |  |" in table
    assert "| Hopper-v5 | crossq | 400 | not run |  |  |" in table
    assert first_step_at({5: 1.0, 10: 3.0, 15: 2.0}, 2.0) == 10


def test_table_refuses_an_unknown_method_before_reading_anything(tmp_path: Path, capsys):
    cfg = learning.Table(methods=("qsm-best", "qsm-bset"), results_root=tmp_path / "absent")
    with pytest.raises(BadInput, match="--methods qsm-bset: unknown method"):
        learning.table(cfg)
    with pytest.raises(BadInput, match="--steps 0: must be >= 1"):
        learning.table(learning.Table(steps=(0,)))
    learning.table(learning.Table(methods=("sac",), steps=(50_000,)))  # the repository's results
    assert "| Hopper-v5 | sac |" in capsys.readouterr().out


def test_aggregate_files(suite: Path):
    aggregate_suite(suite, [50_000, 100_000], plotted=("qsm", "sac"))
    with open(suite / "summary.csv", newline="") as f:
        saved = list(csv.DictReader(f))
    assert {r["method"] for r in saved} == {"qsm", "sac"}
    assert float(rows_of(saved, "Hopper-v5", "sac")[("fixed", "50000")]["return_mean"]) == 70.0
    for env in ("Hopper-v5", "Walker2d-v5"):
        png = suite / f"{env}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (suite / "summary.md").read_text()
    assert "## Hopper-v5" in md and "| qsm | 3 | 116.7 [" in md and "| 233.3 [" in md
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
    assert collect(run_dir, tmp_path / "res")
    assert (tmp_path / "res" / "eval.csv").read_bytes() == (run_dir / "eval.csv").read_bytes()
    assert run_sps(tmp_path / "res" / "sps.csv") == pytest.approx(48.0)
    assert not collect(tmp_path / "missing", tmp_path / "res2")


def test_collect_copies_the_value_bias_log_where_the_run_has_one(tmp_path: Path):
    run_dir = tmp_path / "run"
    write_eval(run_dir / "eval.csv", {200: 1.0})
    assert (
        collect(run_dir, tmp_path / "without")
        and not (tmp_path / "without" / "value_bias.csv").exists()
    )
    (run_dir / "value_bias.csv").write_text("step,q_mean\n200,3.5\n")
    assert collect(run_dir, tmp_path / "with")
    assert (tmp_path / "with" / "value_bias.csv").read_text() == "step,q_mean\n200,3.5\n"


# --- planning and commands ------------------------------------------------------------------------
def test_decide(tmp_path: Path):
    d = tmp_path / "run"
    assert decide(d, 1000) == "fresh"  # nothing there
    d.mkdir()
    (d / "harness.log").write_text("$ ...\n")
    assert decide(d, 1000) == "fresh"  # only the harness's log
    (d / "config.json").write_text("{}")
    assert decide(d, 1000) == "restart"  # started, never checkpointed
    (d / "checkpoint.pt").write_bytes(b"")
    assert decide(d, 1000) == "resume"
    assert decide(d, 1000, busy=True) == "busy"  # claimed by another process
    write_eval(d / "eval.csv", {500: 1.0})
    assert decide(d, 1000) == "resume"  # eval.csv short of the budget
    write_eval(d / "eval.csv", {500: 1.0, 1000: 2.0})
    assert decide(d, 1000) == "skip"
    assert decide(d, 1000, busy=True) == "skip"
    assert decide(d, 2000) == "resume"  # a larger budget extends the run

    sac = tmp_path / "sac"
    sac.mkdir()
    (sac / "config.json").write_text("{}")
    (sac / "sac_checkpoint.json").write_text("{}")
    assert decide(sac, 1000) == "resume"


def test_build_command(tmp_path: Path, monkeypatch):
    run_dir = tmp_path / "r"
    extra, sac_extra = ["--warmup-steps", "200"], ["--learning-starts", "200"]
    cmd = build_command(
        "qsm-w256-langevin", "mujoco", "Hopper-v5", 3, 600, run_dir, extra, sac_extra
    )
    assert cmd[0] == sys.executable and cmd[1].endswith("recipes/qsm_mujoco.py")
    assert cmd[cmd.index("--seed") + 1] == "3" and cmd[cmd.index("--steps") + 1] == "600"
    assert cmd[cmd.index("--run-dir") + 1] == str(run_dir)
    assert cmd[cmd.index("--agent.sampler") + 1] == "langevin"
    assert cmd[-2:] == extra and "--learning-starts" not in cmd

    cmd = build_command("sac", "mujoco", "Hopper-v5", 0, 600, run_dir, extra, sac_extra)
    assert cmd[1].endswith("benchmarks/sac_baseline.py")
    assert cmd[-2:] == sac_extra and "--warmup-steps" not in cmd and "--algo" not in cmd

    cmd = build_command("crossq", "mujoco", "Hopper-v5", 0, 600, run_dir, extra, sac_extra)
    assert cmd[1].endswith("benchmarks/sac_baseline.py")
    assert cmd[-4:] == ["--algo", "crossq", *sac_extra]

    monkeypatch.setitem(METHODS, "nope", Method((), "a method without a script", "nope_{suite}.py"))
    with pytest.raises(FileNotFoundError, match="nope_dmc.py"):
        build_command("nope", "dmc", "cheetah-run", 0, 600, run_dir)


def test_job_argv_and_gpu_request(tmp_path: Path):
    job = Job("Hopper-v5", "m", 0, 600, tmp_path, tmp_path, ("python", "x.py"), tmp_path)
    assert job.argv(False) == ["python", "x.py"] and job.argv(True)[-1] == "--resume"
    assert job.gpus == 0
    assert job._replace(cmd=("x.py", "--device", "cuda:1")).gpus == 1
    assert job._replace(cmd=("x.py", "--device", "cpu")).gpus == 0


@pytest.mark.parametrize("method", [m for m, s in METHODS.items() if s.family != "sac"])
def test_every_diffpolicy_method_parses_to_a_valid_config(method: str):
    """A typo in a method's flags must fail here, not 100 minutes into a benchmark."""
    cfg, _ = parse_with_preset(
        MUJOCO_PRESETS, "best", "Hopper-v5", args=list(METHODS[method].flags)
    )
    assert isinstance(cfg, TrainConfig) and cfg.env == "Hopper-v5"


def test_the_fast_preset_is_what_its_harness_method_ran():
    method, _ = parse_with_preset(
        MUJOCO_PRESETS, "best", "Hopper-v5", args=list(METHODS["qsm-best-t1-d3"].flags)
    )
    preset, _ = parse_with_preset(MUJOCO_PRESETS, "best", "Hopper-v5", args=["--preset", "fast"])
    assert method.agent == preset.agent
    assert preset.agent.target_sampler_steps == 1 and preset.agent.actor_every == 3


def _parsed(flags: list[str]):
    return parse_with_preset(MUJOCO_PRESETS, "best", "Hopper-v5", args=flags)[0].agent


def test_the_best_preset_is_what_the_runs_filed_under_qsm_best_ran():
    """The runs under qsm-best ran as qsm-best-rewnorm; the earlier best presets' runs are filed
    under qsm-polyak-ln-crossq-adam and qsm-crossq-t3 (benchmarks/results/mujoco/PROVENANCE.md)."""
    best = _parsed(list(METHODS["qsm-best"].flags))
    assert best == _parsed(list(METHODS["qsm-best-rewnorm"].flags))
    assert best == _parsed(["--preset", "polyak-ln-rewnorm"])
    assert best.reward_normalization and best.critic_layer_norm and best.critic_target_network
    polyak_ln = _parsed(["--preset", "polyak-ln"])
    assert polyak_ln == _parsed(list(METHODS["qsm-polyak-ln-crossq-adam"].flags))
    assert polyak_ln == dataclasses.replace(best, reward_normalization=False)
    crossq_critic = _parsed(["--preset", "crossq-critic"])
    assert crossq_critic == _parsed(list(METHODS["qsm-crossq-t3"].flags))
    assert crossq_critic.critic_batch_renorm and not crossq_critic.critic_target_network


# --- the methods as data --------------------------------------------------------------------------
RESULTS = REPO / "benchmarks" / "results"


def test_each_retired_method_names_the_experiment_page_that_ran_it():
    assert RETIRED and not set(RETIRED) & set(CURRENT) and METHODS == {**CURRENT, **RETIRED}
    for name, spec in RETIRED.items():
        page = REPO / "docs" / spec.page
        assert spec.page.startswith("experiments/") and page.is_file(), (name, spec.page)
        assert name in page.read_text(), f"{spec.page} does not mention {name}"
    for name, spec in CURRENT.items():  # a current method's page, where it has one
        assert not spec.page or name in (REPO / "docs" / spec.page).read_text(), name


def test_every_method_with_results_has_a_definition():
    filed = {p.name for p in RESULTS.glob("*/*/*") if p.is_dir() and list(p.glob("seed*"))}
    assert {"qsm-best", "sac", "qsm-w256"} <= filed
    assert filed <= set(METHODS), sorted(filed - set(METHODS))


def test_every_method_an_experiment_page_runs_or_names_has_a_definition():
    """So that every command an experiment page or a PROVENANCE.md quotes still runs."""
    pages = [*(REPO / "docs" / "experiments").glob("*.md"), *RESULTS.glob("*/PROVENANCE.md")]
    named = set()
    for page in pages:
        text = page.read_text().replace("\n", " ")
        named |= set(re.findall(r"`((?:qsm|dime|dacer|qvpo)-[a-z0-9-]+)`", text))
        for methods in re.findall(r"--methods((?: +[a-z][a-z0-9-]*)+)", text):
            named |= set(methods.split())
    assert {"qsm-w256-norm", "qsm-best-adaptive-chain", "crossq"} <= named
    assert named <= set(METHODS), sorted(named - set(METHODS))


def test_the_methods_command_lists_every_method_under_its_page(capsys):
    learning.main(["methods"])
    out = capsys.readouterr().out
    assert all(re.search(rf"^ +{re.escape(name)} ", out, re.M) for name in METHODS)
    retired = out[out.index("Retired screens:") :]
    assert "docs/experiments/2026-11-21-variant-screen.md:\n    qsm-w256 " in retired


def test_plots_draw_the_presets_and_baselines_unless_asked(suite: Path, tmp_path: Path, capsys):
    """The suite's plots leave the screens out (Walker2d has only a retired screen's runs); the
    plot command draws what it is asked for."""
    for env in ("Hopper-v5", "Walker2d-v5"):
        (suite / env / "qsm").rename(suite / env / "qsm-w256")
    aggregate_suite(suite, [50_000])
    assert (suite / "Hopper-v5.png").is_file() and not (suite / "Walker2d-v5.png").exists()
    assert "## Walker2d-v5" in (suite / "summary.md").read_text()  # the tables keep every method
    root, out = suite.parent, tmp_path / "plots"
    learning.main(["plot", "--methods", "qsm-w256", "--results-root", str(root), "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["Hopper-v5.png", "Walker2d-v5.png"]
    assert str(out / "Hopper-v5.png") in capsys.readouterr().out


def test_a_screen_plot_draws_its_pages_methods_beside_sac(monkeypatch):
    plotted = learning.Plot(screen="2026-12-05-input-renorm")
    name, methods = learning._plotted(plotted)
    assert name == "2026-12-05-input-renorm"
    assert methods == ["qsm-ln-no-target-input-renorm", "qsm-polyak-ln-input-renorm", "sac"]
    assert learning._plotted(learning.Plot())[1] == list(PLOTTED)
    assert {"qsm-best", "qsm-reference", "sac", "crossq"} <= set(PLOTTED)
    assert not set(PLOTTED) & set(RETIRED)


def test_plan_checks_suite_and_method(tmp_path: Path):
    base = {"runs_root": tmp_path / "runs", "results_root": tmp_path / "res", "seeds": (0,)}
    with pytest.raises(ValueError, match="suite"):
        plan(Sweep(suite="mujoco", envs=("cheetah-run",), **base))
    with pytest.raises(ValueError, match="suite"):
        plan(Sweep(suite="dmc", envs=("Hopper-v5",), **base))
    with pytest.raises(BadInput, match="--methods nope: unknown method"):
        plan(Sweep(methods=("nope",), **base))
    planned = plan(Sweep(methods=("qsm-reference", "sac"), steps=600, **base))
    assert [(j.method, d) for j, d in planned] == [("qsm-reference", "fresh"), ("sac", "fresh")]
    job = planned[1][0]
    assert job.run_dir == (tmp_path / "runs" / "mujoco" / "Hopper-v5" / "sac" / "seed0")
    assert job.result_dir == tmp_path / "res" / "mujoco" / "Hopper-v5" / "sac" / "seed0"
    assert job.cwd == REPO
    (dmc,) = plan(Sweep(suite="dmc", envs=("cheetah-run",), methods=("sac",), **base))
    assert dmc[0].run_dir.parts[-4:] == ("dmc", "cheetah-run", "sac", "seed0")


def test_default_roots_are_inside_the_repository():
    """No machine's absolute path: the defaults are relative, taken from the repository root."""
    sweep = Sweep()
    assert sweep.runs_root == Path("runs") and sweep.results_root == Path("benchmarks/results")
    assert learning.Aggregate().results_root == Path("benchmarks/results")
    (job, _), *_ = plan(Sweep(seeds=(0,), methods=("sac",)))
    assert job.run_dir == REPO / "runs" / "mujoco" / "Hopper-v5" / "sac" / "seed0"
    assert (
        job.result_dir == REPO / "benchmarks" / "results" / "mujoco" / "Hopper-v5" / "sac" / "seed0"
    )
    help_text = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "learning.py"), "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(default: runs)" in help_text and "(default: benchmarks/results)" in help_text
    assert "(default: /" not in help_text


# --- claims and launching ---------------------------------------------------------------------
HOLD = (
    "import sys, time; sys.path.insert(0, sys.argv[1]); from harness.claim import try_claim; "
    "lock = try_claim(sys.argv[2]); print('held' if lock else 'busy', flush=True); time.sleep(60)"
)


def hold_claim(run_dir: Path) -> subprocess.Popen:
    """Another process (another harness) claiming run_dir."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(REPO / "benchmarks"), str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_claim_excludes_other_processes_until_its_holder_dies(tmp_path: Path):
    run_dir = tmp_path / "runs" / "seed0"
    assert not claim.is_claimed(run_dir) and not claim.lock_path(run_dir).exists()
    holder = hold_claim(run_dir)
    try:
        assert claim.is_claimed(run_dir)
        assert claim.try_claim(run_dir) is None
    finally:
        holder.send_signal(signal.SIGKILL)  # a harness that dies without cleaning up
        holder.wait()
    lock = claim.try_claim(run_dir)  # the OS dropped the dead holder's lock
    assert lock is not None and claim.is_claimed(run_dir)
    lock.release()
    assert not claim.is_claimed(run_dir)


@pytest.mark.parametrize(
    ("codes", "message"),
    [((0, 143), "1 run(s) stopped with a checkpoint"), ((143, 1), "1 run(s) failed")],
)
def test_run_tells_a_stopped_run_from_a_failed_one(tmp_path: Path, monkeypatch, codes, message):
    cfg = learning.Run(
        runs_root=tmp_path / "runs", results_root=tmp_path / "res", seeds=(0, 1), methods=("sac",)
    )
    jobs = [job for job, _ in plan(cfg)]

    def execute(jobs, max_jobs, on_outcome):
        return [launch.Outcome(job, "fresh", rc, {}) for job, rc in zip(jobs, codes, strict=True)]

    monkeypatch.setattr(local_backend, "execute", execute)
    assert len(jobs) == 2
    with pytest.raises(SystemExit, match=re.escape(message)):
        learning.run(cfg)


def test_jobs_are_decided_again_at_launch(tmp_path: Path, monkeypatch):
    """A run finished, or claimed, by another harness since the plan was made is not launched
    again (two harnesses sharing a run list once collided this way)."""
    base = {"runs_root": tmp_path / "runs", "results_root": tmp_path / "res", "seeds": (0, 1, 2)}
    planned = plan(Sweep(methods=("qsm-reference",), steps=600, **base))
    assert [d for _, d in planned] == ["fresh"] * 3
    jobs = [j for j, _ in planned]
    finished, busy, resumable = (j.run_dir for j in jobs)
    write_eval(finished / "eval.csv", {600: 1.0})
    resumable.mkdir(parents=True)
    (resumable / "checkpoint.pt").write_bytes(b"")
    holder = hold_claim(busy)
    launched = []

    class FakeProcess:
        pid = 0

        def __init__(self, argv, **kwargs):
            launched.append((argv, kwargs["cwd"]))

        def wait(self):
            return 0

    monkeypatch.setattr(launch.subprocess, "Popen", FakeProcess)
    try:
        outcomes = [launch.start(j) for j in jobs]
    finally:
        holder.kill()
        holder.wait()
    assert [o.decision for o in outcomes[:2]] == ["skip", "busy"]
    assert outcomes[0].files["eval.csv"] == (finished / "eval.csv").read_bytes()
    started = outcomes[2]
    assert isinstance(started, launch.Started) and started.decision == "resume"
    assert launched == [(jobs[2].argv(True), REPO)]
    assert claim.is_claimed(resumable)  # held while the run lives
    assert launch.finish(started).returncode == 0
    assert not claim.is_claimed(resumable)


def test_a_run_that_never_checkpointed_is_moved_aside(tmp_path: Path):
    planned = plan(Sweep(runs_root=tmp_path, results_root=tmp_path / "res", seeds=(0,), steps=9))
    job = planned[0][0]._replace(cmd=(sys.executable, "-c", "pass"))
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "config.json").write_text("{}")
    outcome = launch.finish(launch.start(job))
    assert (outcome.decision, outcome.returncode) == ("restart", 0)
    (aside,) = job.run_dir.parent.glob("seed0.stale-*")
    assert (aside / "config.json").is_file() and not (job.run_dir / "config.json").exists()


def test_local_backend_collects_each_run_when_it_ends(tmp_path: Path):
    """A finished run's eval.csv reaches the results folder while the harness is still going,
    so `aggregate` can report it without waiting for the harness's other runs."""
    base = {"runs_root": tmp_path / "runs", "results_root": tmp_path / "res", "seeds": (0, 1)}
    jobs = [j for j, _ in plan(Sweep(methods=("qsm-reference",), steps=600, **base))]
    write = "import pathlib, sys; pathlib.Path(sys.argv[1], 'eval.csv').write_text('step\\n600\\n')"
    slow = "import time; time.sleep(3)"
    fast = jobs[0]._replace(cmd=(sys.executable, "-c", write, str(jobs[0].run_dir)))
    slow_job = jobs[1]._replace(cmd=(sys.executable, "-c", slow))
    seen = []

    def store(outcome):
        # when the fast run is reported, the slow one is still going
        seen.append((outcome.job.seed, outcome.files.get("eval.csv"), time.monotonic()))

    outcomes = local_backend.execute([fast, slow_job], max_jobs=2, on_outcome=store)
    assert [(o.job.seed, o.returncode) for o in outcomes] == [(0, 0), (1, 0)]
    assert seen[0][:2] == (0, b"step\n600\n") and seen[1][2] - seen[0][2] > 1.0
    assert not claim.is_claimed(fast.run_dir) and not claim.is_claimed(slow_job.run_dir)


STOPPABLE = (
    "import pathlib, signal, sys, time\n"
    "def stop(*args):\n"
    "    pathlib.Path(sys.argv[1]).write_text('checkpointed')\n"
    "    sys.exit(143)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "pathlib.Path(sys.argv[1]).write_text('running')\n"
    "time.sleep(60)\n"
)


def test_sigterm_to_the_harness_stops_each_run_with_a_checkpoint(tmp_path: Path):
    sweep = Sweep(runs_root=tmp_path, results_root=tmp_path / "res", seeds=(0,), methods=("sac",))
    (planned,) = plan(sweep)
    marker = tmp_path / "marker"
    job = planned[0]._replace(cmd=(sys.executable, "-c", STOPPABLE, str(marker)))
    threading.Thread(target=lambda: _kill_when_running(marker), daemon=True).start()
    outcomes = []
    with pytest.raises(KeyboardInterrupt):
        local_backend.execute([job], max_jobs=1, on_outcome=outcomes.append)
    assert marker.read_text() == "checkpointed"  # the run got SIGTERM and finished its handler
    assert [(o.decision, o.returncode) for o in outcomes] == [("fresh", 143)]
    assert not claim.is_claimed(job.run_dir)
    assert launch.describe(outcomes[0]).startswith("stopped with a checkpoint (rc=143)")
    assert launch.describe(outcomes[0]._replace(returncode=1)).startswith("FAILED rc=1")


def _kill_when_running(marker: Path) -> None:
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)  # as `kill HARNESS_PID` would


@pytest.mark.slow
def test_tiny_sac_run_writes_the_qsm_loop_columns(tmp_path: Path):
    pytest.importorskip("stable_baselines3")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "sac_baseline", REPO / "benchmarks" / "sac_baseline.py"
    )
    sac = importlib.util.module_from_spec(spec)
    sys.modules["sac_baseline"] = sac  # dataclasses look their module up while the class is built
    spec.loader.exec_module(sac)
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
