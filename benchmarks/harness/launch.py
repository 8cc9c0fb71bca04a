"""Starting and finishing one run, the same way for every backend.

`start` claims the run directory (harness/claim.py), decides again what to do with it (another
harness may have finished or taken the run since the plan was made), moves a run that never
checkpointed aside, and starts the run's process with its output in <run_dir>/harness.log. The
claim is held until `finish`, which waits for the process, collects the run's result files and
releases the claim. The process runs in its own session, so a terminal's Ctrl-C reaches the
harness only, which then asks each run to checkpoint and stop (`stop`: SIGTERM).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, NamedTuple

from filelock import FileLock

from harness.claim import try_claim
from harness.collect import collect_files
from harness.plan import LAUNCH, Job, decide

# One BLAS/OpenMP thread per run, as --threads gives torch: two single-thread runs on a 2-core
# machine gave about 1.4x the throughput of one two-thread run.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STOPPED_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM)
"""Exit statuses of a run that a signal asked to stop: the recipes and sac_baseline.py save a
checkpoint first, so it is not a failure."""


class Outcome(NamedTuple):
    job: Job
    decision: str
    """The decision at launch ("skip", "busy", "resume", "restart", "fresh")."""
    returncode: int | None
    """The run's exit status; None when no process was started."""
    files: dict[str, bytes]
    """The run's result files (harness/collect.py), to store in job.result_dir."""


@dataclass
class Started:
    job: Job
    decision: str
    proc: subprocess.Popen
    log: IO[str]
    claim: FileLock


def start(job: Job) -> Started | Outcome:
    """Start the job's run, or say why not (an Outcome without a return code)."""
    claim = try_claim(job.run_dir)
    if claim is None:
        return Outcome(job, "busy", None, collect_files(job.run_dir))
    try:
        decision = decide(job.run_dir, job.steps)
        if decision not in LAUNCH:
            claim.release()
            return Outcome(job, decision, None, collect_files(job.run_dir))
        if decision == "restart":
            job.run_dir.rename(
                job.run_dir.with_name(f"{job.run_dir.name}.stale-{int(time.time())}")
            )
        job.run_dir.mkdir(parents=True, exist_ok=True)
        argv = job.argv(decision == "resume")
        log = open(job.run_dir / "harness.log", "a")  # closed by finish
        log.write(f"\n$ {shlex.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(
            argv,
            cwd=job.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **THREAD_ENV},
            start_new_session=True,
        )
    except BaseException:
        claim.release()
        raise
    return Started(job, decision, proc, log, claim)


def stop(started: Started) -> None:
    """Ask a live run to checkpoint and exit."""
    if started.proc.poll() is None:
        started.proc.send_signal(signal.SIGTERM)


def finish(started: Started) -> Outcome:
    """Wait for the run's process, collect its files, release the claim."""
    try:
        returncode = started.proc.wait()
        started.log.close()
        files = collect_files(started.job.run_dir)
    finally:
        started.claim.release()
    return Outcome(started.job, started.decision, returncode, files)


def run_to_end(job: Job) -> Outcome:
    """Start, wait, finish: a Ray task's body. When the task is cancelled (KeyboardInterrupt in
    this thread), the run checkpoints and stops first."""
    started = start(job)
    if isinstance(started, Outcome):
        return started
    try:
        started.proc.wait()
    except KeyboardInterrupt:
        stop(started)
        finish(started)
        raise
    return finish(started)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt meanwhile, so a backend stops its runs as on Ctrl-C."""

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def describe(outcome: Outcome) -> str:
    job, rc = outcome.job, outcome.returncode
    if rc is None:
        return f"[{outcome.decision} now] {job.name}"
    if rc in STOPPED_CODES:  # the run's own signal handler checkpointed, then exited
        return f"stopped with a checkpoint (rc={rc}), resumes when run again: {job.name}"
    status = "done" if rc == 0 else f"FAILED rc={rc}"
    return f"{status} ({outcome.decision}): {job.name} (log: {job.run_dir / 'harness.log'})"
