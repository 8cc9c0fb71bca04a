"""Metrics to CSV files (always) and TensorBoard (when installed), with resume-safe appends."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from torch import Tensor

from diffpolicy.rl.storage.files import append_text, atomic_write, refuse_link


class CSVLog:
    """Rows under one header (given, or taken from the file or the first row written), appended
    one at a time: a kill loses at most the row being written.

    On resume, rows logged after the checkpoint's step are dropped, so a resumed run writes each
    step once. The kept rows replace the file atomically, so a kill during that rewrite loses
    nothing; a last line cut short by a kill is dropped too.
    """

    def __init__(
        self, path: Path, fields: list[str] | None = None, resume_step: int | None = None
    ) -> None:
        self.path, self.fields = Path(path), fields
        refuse_link(self.path)  # before reading: a link's target is not this run's log
        lines = self.path.read_text().splitlines(keepends=True) if self.path.is_file() else []
        if lines:
            kept = lines if lines[-1].endswith("\n") else lines[:-1]
            reader = csv.DictReader(kept)
            rows = list(reader)
            self.fields = reader.fieldnames or self.fields
            if resume_step is not None:
                rows = [r for r in rows if int(r["step"]) <= resume_step]
            self.has_header = bool(self.fields)
            if len(kept) != len(lines) or len(rows) != len(kept) - 1:
                atomic_write(self.path, self._render(rows, header=True).encode())
        else:
            self.has_header = False
            if self.fields:
                self.write_rows([])

    def _render(self, rows: list[dict], header: bool) -> str:
        if not self.fields:  # no header known yet, so no rows either
            return ""
        out = io.StringIO()
        writer = csv.DictWriter(out, self.fields, extrasaction="ignore")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    def write_rows(self, rows: list[dict]) -> None:
        self.fields = self.fields or list(rows[0])
        append_text(self.path, self._render(rows, header=not self.has_header))
        self.has_header = True

    def write(self, row: dict) -> None:
        self.write_rows([row])


class Logger:
    """eval.csv, train_episodes.csv and metrics.csv in the run directory, plus TensorBoard scalars
    under the conventional tags (charts/episodic_return, charts/SPS, losses/...)."""

    EVAL_FIELDS = [
        "step",
        "return_mean",
        "return_std",
        "return_min",
        "return_max",
        "length_mean",
        "episodes",
        "wall_time",
    ]

    VALUE_FIELDS = ["step", "q_mean", "return_to_go_mean", "bias", "normalised_bias", "states"]
    """value_bias.csv: the critic's Q against the evaluation episodes' discounted returns-to-go
    (`diffpolicy.rl.run.value_bias`), one row per evaluation."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        self.eval = CSVLog(run_dir / "eval.csv", self.EVAL_FIELDS, resume_step)
        self.value = CSVLog(run_dir / "value_bias.csv", self.VALUE_FIELDS, resume_step)
        self.episodes = CSVLog(
            run_dir / "train_episodes.csv", ["step", "return", "length"], resume_step
        )
        self.metrics = CSVLog(run_dir / "metrics.csv", None, resume_step)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(
                str(run_dir / "tensorboard"),
                purge_step=None if resume_step is None else resume_step + 1,
            )
        except ImportError:
            self.tb = None

    def log_eval(self, row: dict) -> None:
        self.eval.write(row)
        self._scalars(
            row["step"],
            {
                "eval/episodic_return": row["return_mean"],
                "eval/episodic_length": row["length_mean"],
            },
        )

    def log_value_bias(self, step: int, row: dict) -> None:
        self.value.write({"step": step, **row})
        self._scalars(
            step,
            {
                "eval/q_mean": row["q_mean"],
                "eval/return_to_go": row["return_to_go_mean"],
                "eval/normalised_q_bias": row["normalised_bias"],
            },
        )

    def log_episode(self, step: int, ret: float, length: int) -> None:
        self.episodes.write({"step": step, "return": ret, "length": length})
        self._scalars(step, {"charts/episodic_return": ret, "charts/episodic_length": length})

    def log_metrics(self, step: int, sps: float, metrics: dict[str, float | Tensor]) -> None:
        # The agent returns tensors so its update never waits on the device; read them here.
        metrics = {k: float(v) for k, v in metrics.items()}
        self.metrics.write({"step": step, "sps": sps, **metrics})
        self._scalars(step, {"charts/SPS": sps, **{f"losses/{k}": v for k, v in metrics.items()}})

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        if self.tb is not None:
            for tag, value in values.items():
                self.tb.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
