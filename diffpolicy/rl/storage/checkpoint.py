"""Atomic checkpoint files that carry a checksum of their contents and load with
`torch.load(..., weights_only=True)`, so no pickled code runs on load.

A file holds `{"format": FORMAT, "sha256": ..., "state": state}`; the SHA-256 covers every tensor's
dtype, shape and bytes and every other value of `state`, so flipped bits in tensor data (which
torch's zip reader does not notice) are refused. Replay rows live in chunk files beside the
checkpoint (`diffpolicy.rl.storage.chunks`); `state` holds their manifest, and `load_checkpoint`
reads them back.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from diffpolicy.rl.storage.chunks import is_manifest, read_ring
from diffpolicy.rl.storage.files import CheckpointError, atomic_write, make_folder

FORMAT = "diffpolicy-checkpoint-2"

__all__ = ["CheckpointError", "checksum", "load_checkpoint", "save_checkpoint"]


def checksum(state) -> str:
    """SHA-256 of a nested state (dicts, lists, tuples, tensors and plain values), in order."""
    digest = hashlib.sha256()
    _feed(digest, state)
    return digest.hexdigest()


def _feed(digest, value) -> None:
    if isinstance(value, torch.Tensor):
        digest.update(f"T{value.dtype}{tuple(value.shape)}".encode())
        flat = value.detach().cpu().reshape(-1)
        if flat.stride(0) != 1:  # an empty or one-element tensor can have any stride
            flat = torch.empty(flat.shape, dtype=flat.dtype).copy_(flat)
        digest.update(flat.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(f"{type(value).__name__}{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def save_checkpoint(state: dict, path: Path) -> None:
    """Write `state` with its checksum atomically (temporary file, fsync, rename): a kill or a
    full disk at any moment leaves the old checkpoint or the new one, and no temporary file."""
    path = Path(path)
    make_folder(path.parent)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "sha256": checksum(state), "state": state}, buf)
    atomic_write(path, buf.getbuffer())


def load_checkpoint(path: Path, read_chunks: bool = True) -> dict:
    """Load and verify a checkpoint without running pickled code. With `read_chunks`, a replay
    manifest among the top-level entries is replaced by the ring it describes (a
    `ReplayBuffer.state_dict`); without, it stays a manifest. One-line `CheckpointError` for a
    missing, foreign, truncated or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        if "Unsupported global" in str(err):  # weights_only refused to build a Python object
            raise CheckpointError(
                f"checkpoint {path} holds pickled Python objects, which are never loaded: "
                "not a diffpolicy checkpoint"
            ) from err
        reason = (str(err).strip().splitlines() or [""])[0].split(". ")[0]
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a diffpolicy checkpoint "
            f"({type(err).__name__}: {reason})"
        ) from err
    if isinstance(saved, dict) and saved.get("format") == FORMAT:
        state = saved["state"]
        if checksum(state) != saved["sha256"]:
            raise CheckpointError(f"checkpoint {path} fails its checksum: its data is corrupt")
    elif isinstance(saved, dict) and "step" in saved:
        state = saved  # written before checkpoints had checksums (issue 16): loads unchecked
    else:
        raise CheckpointError(f"checkpoint {path} is not a diffpolicy checkpoint")
    if read_chunks:
        state = {k: read_ring(path.parent, v) if is_manifest(v) else v for k, v in state.items()}
    return state
