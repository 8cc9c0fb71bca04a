"""Atomic checkpoint files that load with `torch.load(..., weights_only=True)`."""

from __future__ import annotations

import os
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the run."""


def save_checkpoint(state: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    A kill at any moment leaves either the old checkpoint or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint without running pickled code; clear errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a diffpolicy checkpoint: "
            f"{type(err).__name__}: {err}"
        ) from err
