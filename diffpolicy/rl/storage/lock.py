"""One process per run directory.

A run holds an exclusive lock on `RUN/run.lock` (filelock's flock, which the operating system drops
however the process ends, so a killed run leaves no stale claim) from before its first write to
its end. The file holds the holder's pid, so a second process can say who has the folder. The
lock is taken as soon as the folder exists: at once for a resume or a folder made beforehand (the
benchmark harness makes it), otherwise when the new run creates its folder. A run refused before
it writes anything removes a lock file it created, leaving the folder as it found it.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

from diffpolicy.rl.storage.files import RunDirError, make_folder

LOCK_FILE = "run.lock"


class RunDirBusy(RunDirError):
    """Another process holds the run directory's lock."""


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def lock_holder(path: Path) -> str:
    """Who holds the lock file `path`, as its holder wrote it ("process 1234")."""
    try:
        pid = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


class RunDirLock:
    """Context manager holding `run_dir`'s lock from entry (if the folder exists) or from
    `start_writing` (if it does not) until exit. `RunDirBusy`, in one line naming the holder's
    pid, when another process holds it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._lock = FileLock(self.path, blocking=False, thread_local=False, on_acquired=_write_pid)
        self._created = False
        self._writing = False

    def __enter__(self) -> RunDirLock:
        if self.run_dir.is_dir():
            self._acquire()
        return self

    def start_writing(self) -> None:
        """Everything is checked: create the folder and hold its lock from now on."""
        make_folder(self.run_dir)
        if not self._lock.is_locked:
            self._acquire()
        self._writing = True

    def _acquire(self) -> None:
        self._created = not self.path.exists()
        try:
            self._lock.acquire()
        except Timeout:
            raise RunDirBusy(
                f"{self.run_dir} is in use by {lock_holder(self.path)}, which holds its "
                f"{LOCK_FILE}; wait for that run to end or choose another --run-dir"
            ) from None
        except OSError as err:
            raise RunDirError(f"cannot lock {self.path}: {err.strerror or err}") from err

    def __exit__(self, *exc) -> None:
        if not self._lock.is_locked:
            return
        if self._created and not self._writing:  # refused before writing: leave no trace
            self.path.unlink(missing_ok=True)
        self._lock.release()
