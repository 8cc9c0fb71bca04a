"""Results of a run: the small files copied from its run directory into the results folder.

A run's results are its eval.csv, sps.csv (step, sps: the whole-loop steps/s of each logging
window wholly after warm-up, from its metrics.csv) and, where the run logged one, value_bias.csv
(the critic's Q against the evaluation's returns-to-go). `collect_files` reads them where the run
ran (a Ray task returns them to the driver), `write_results` stores them on the harness's
machine.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from diffpolicy.rl.run.rates import whole_loop_rate


def read_eval(path: Path) -> dict[int, float]:
    """step -> return_mean of an eval.csv (empty if the file is missing or has no rows)."""
    if not Path(path).is_file():
        return {}
    with open(path, newline="") as f:
        return {int(r["step"]): float(r["return_mean"]) for r in csv.DictReader(f)}


def run_sps(path: Path) -> float | None:
    """A run's whole-loop steps/s from its sps.csv (None if there is none)."""
    if not Path(path).is_file():
        return None
    with open(path, newline="") as f:
        return whole_loop_rate(float(r["sps"]) for r in csv.DictReader(f))


def _first_window_after_warmup(run_dir: Path) -> int:
    """The first logged step whose window lies wholly after warm-up, from the run's config.json
    (the QSM loop logs the window that ends at warmup_steps; the SB3 baselines do not)."""
    try:
        cfg = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return 0
    warmup = cfg.get("warmup_steps", cfg.get("learning_starts", 0))
    return int(warmup) + int(cfg.get("log_every", 0))


def collect_files(run_dir: Path) -> dict[str, bytes]:
    """{"eval.csv": bytes, "sps.csv": bytes, "value_bias.csv": bytes} of a run directory (the
    last where it exists; empty without an eval.csv)."""
    run_dir = Path(run_dir)
    if not (run_dir / "eval.csv").is_file():
        return {}
    files = {"eval.csv": (run_dir / "eval.csv").read_bytes()}
    if (run_dir / "value_bias.csv").is_file():
        files["value_bias.csv"] = (run_dir / "value_bias.csv").read_bytes()
    metrics = run_dir / "metrics.csv"
    if metrics.is_file():
        first = _first_window_after_warmup(run_dir)
        with open(metrics, newline="") as f:
            rows = [
                (r["step"], r["sps"])
                for r in csv.DictReader(f)
                if r.get("sps") and int(r["step"]) >= first
            ]
        if rows:
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows([("step", "sps"), *rows])
            files["sps.csv"] = out.getvalue().encode()
    return files


def write_results(result_dir: Path, files: dict[str, bytes]) -> bool:
    """Store collected files in result_dir; False if there was nothing to store."""
    if not files:
        return False
    result_dir = Path(result_dir)
    result_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (result_dir / name).write_bytes(data)
    return True


def collect(run_dir: Path, result_dir: Path) -> bool:
    """Copy a run's results from its run directory into result_dir."""
    return write_results(result_dir, collect_files(run_dir))
