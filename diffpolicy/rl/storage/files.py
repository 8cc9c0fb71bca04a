"""Writing into a run directory without losing what is already there.

Whole files are replaced atomically (write a temporary file, fsync, rename), logs only ever get
appended to, and a write that fails (a full disk, a read-only or missing folder) removes its
temporary file and raises `RunDirError` with one line naming the file and the cause.

Nothing is written through a symbolic link: a link where a temporary file goes is replaced by the
new file, the rename replaces a link at the final name, and appending to a link is refused, so a
link planted in a run directory never changes the file it points to.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class RunDirError(OSError):
    """A run directory cannot be used: it holds another run, or a file in it cannot be written."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, corrupt or does not fit the run."""


LINK = "it is a symbolic link, which a run never writes through"


def write_error(path: Path, err: OSError) -> RunDirError:
    """The one-line error for a failed write of `path`."""
    reason = LINK if err.errno == errno.ELOOP else err.strerror or err
    return RunDirError(f"cannot write {path}: {reason}")


def refuse_link(path: Path) -> None:
    """RunDirError if `path` is a symbolic link: a run writes only its own files."""
    if Path(path).is_symlink():
        raise RunDirError(f"cannot write {path}: {LINK}")


def _new_file(path: str, flags: int) -> int:
    # O_EXCL creates the file or fails, a planted symbolic link included (never followed).
    return os.open(path, flags | os.O_EXCL | os.O_NOFOLLOW, 0o666)


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, 0o666)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` by `data`: a kill or a failure at any moment leaves the old file or the new
    one, never a mix, and no temporary file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink(missing_ok=True)  # a killed write's leftover, or a link: removed, not followed
        with open(tmp, "wb", opener=_new_file) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_error(path, err) from err
    except BaseException:  # a second Ctrl-C during the write: leave no temporary file either
        tmp.unlink(missing_ok=True)
        raise


def append_text(path: Path, text: str) -> None:
    """Append `text` to `path` (created if missing)."""
    try:
        with open(path, "a", newline="", opener=_no_follow) as f:
            f.write(text)
    except OSError as err:
        raise write_error(path, err) from err


def make_folder(path: Path) -> None:
    """Create `path` and its parents; one line naming the folder if that is impossible."""
    if Path(path).exists() and not Path(path).is_dir():
        raise RunDirError(f"cannot use {path} as a folder: it is a file")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirError(f"cannot create the folder {path}: {err.strerror or err}") from err


def _sync_folder(folder: Path) -> None:
    # The rename itself is durable only once the folder's entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
