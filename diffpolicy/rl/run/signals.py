"""Graceful stops: SIGINT/SIGTERM set a flag that a training loop checks between steps."""

from __future__ import annotations

import signal


class StopFlag:
    """Context manager: while active, SIGINT and SIGTERM record the signal in `.signal` instead of
    killing the process, so the loop can save a checkpoint and exit; a second signal stops at once.
    The previous handlers come back on exit."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
