"""How a command-line program ends on an error the user can fix: one `error: ...` line on stderr
and a non-zero exit status, instead of a traceback.

Exit status 2: bad input (a config value, a flag, a resume that does not fit, a run directory
another process holds). Exit status 1: the run directory or a file in it (a full disk, a corrupt
checkpoint, a folder that holds another run), or training that diverged.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

from diffpolicy.rl.run.divergence import DivergedError
from diffpolicy.rl.run.validation import ConfigError
from diffpolicy.rl.storage.files import CheckpointError, RunDirError
from diffpolicy.rl.storage.lock import RunDirBusy


def exit_with(message: str, status: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(status)


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Inside this block, a ConfigError, CheckpointError, RunDirError or DivergedError ends the
    process with one line, and so does a Ctrl-C that the run could not turn into a checkpoint (a
    second one, or one before training began); any other exception (a bug) keeps its
    traceback."""
    try:
        yield
    except KeyboardInterrupt:
        exit_with(
            "interrupted: stopped at once, without saving; the last checkpoint saved, if any, "
            "is intact",
            128 + signal.SIGINT,
        )
    except (ConfigError, RunDirBusy) as err:
        exit_with(str(err), 2)
    except (CheckpointError, RunDirError, DivergedError) as err:
        exit_with(str(err), 1)
