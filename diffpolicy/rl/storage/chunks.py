"""A ring buffer's rows on disk as immutable chunk files, so that a checkpoint writes only the rows
added since the previous one: its cost grows with the new data, not with the buffer.

Rows are numbered in the order they were added (0, 1, 2, ...). A ring that has had `added` rows
and writes its next one to slot `position` holds rows `added - size ... added - 1`, row t in slot
`(position - (added - t)) mod capacity`. A chunk file holds rows [start, end) of every field. The
manifest, which the checkpoint carries, names the chunk files with their row ranges and SHA-256
and holds the ring's counters; chunks whose rows the ring has overwritten are deleted once no
checkpoint names them. Only files the run wrote are ever deleted: chunks a manifest named or this
process wrote, and the temporary file of a chunk's write, by its name; never a file of any other
name, nor anything in a `replay` folder that is a symbolic link (which the run refuses to use).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from pathlib import Path

import torch
from torch import Tensor

from diffpolicy.rl.storage.files import CheckpointError, atomic_write, make_folder, refuse_link

KIND = "ring_chunks"
MAX_ROWS = 65_536
"""Rows per chunk file at most: bounds the memory one save or one load holds at once."""
_NAME = re.compile(r"^\d{12}-\d{12}\.pt$")
_TMP = re.compile(r"^\d{12}-\d{12}\.pt\.tmp$")
"""What a chunk's atomic write leaves when the process is killed during it."""


def is_manifest(value) -> bool:
    return isinstance(value, dict) and value.get("kind") == KIND


def _slots(position: int, added: int, capacity: int, start: int, end: int) -> Tensor:
    return (position - (added - torch.arange(start, end))) % capacity


class ChunkedRing:
    """Saves a ring's rows into `folder` (created on the first write), one chunk per save."""

    def __init__(self, folder: Path, max_rows: int = MAX_ROWS) -> None:
        self.folder = Path(folder)
        refuse_link(self.folder)  # its cleanup would delete in the folder the link points to
        self.max_rows = max_rows
        self.committed: list[dict] = []
        """The chunks the last checkpoint on disk names."""
        self._ours: set[str] = set()
        """Chunk files this run wrote or a manifest named: the only ones it may delete."""

    def resume(self, manifest: dict) -> None:
        """Continue from a loaded checkpoint's manifest: its chunks are on disk already."""
        self.committed = list(manifest["chunks"])
        self._ours = {c["file"] for c in self.committed}

    def write(self, storage: dict[str, Tensor], position: int, size: int, added: int) -> dict:
        """Write the rows added since the committed chunks into new chunk files; returns the
        manifest of the ring as it is now. Nothing is deleted until `commit`."""
        if not 0 <= size <= added:
            raise ValueError(f"a ring of {size} rows cannot have had only {added} added")
        first = next(iter(storage.values()))
        live = added - size
        kept = [c for c in self.committed if c["end"] > live]
        start = max([live] + [c["end"] for c in kept])
        if start < added:
            make_folder(self.folder)
        new = [
            self._write_chunk(storage, position, added, s, min(s + self.max_rows, added))
            for s in range(start, added, self.max_rows)
        ]
        return {
            "kind": KIND,
            "folder": self.folder.name,
            "capacity": first.shape[0],
            "position": position,
            "size": size,
            "added": added,
            "fields": {n: [str(t.dtype), list(t.shape[1:])] for n, t in storage.items()},
            "chunks": kept + new,
        }

    def _write_chunk(self, storage: dict, position: int, added: int, start: int, end: int) -> dict:
        capacity = next(iter(storage.values())).shape[0]
        idx = _slots(position, added, capacity, start, end)
        rows = {name: t[idx.to(t.device)].cpu() for name, t in storage.items()}
        buf = io.BytesIO()
        torch.save(rows, buf)
        data = buf.getbuffer()
        name = f"{start:012d}-{end:012d}.pt"
        self._ours.add(name)
        atomic_write(self.folder / name, data)
        return {
            "file": name,
            "start": start,
            "end": end,
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def commit(self, manifest: dict) -> None:
        """The checkpoint naming `manifest` is on disk: forget older chunks, delete their files."""
        self.committed = list(manifest["chunks"])
        self.clean()

    def clean(self) -> None:
        """Delete the chunk files of ours that the committed checkpoint does not name (overwritten
        rows, or a save that failed before its checkpoint was written), and chunks' temporary
        files."""
        if self.folder.is_symlink() or not self.folder.is_dir():
            return
        named = {c["file"] for c in self.committed}
        for name in self._ours - named:
            (self.folder / name).unlink(missing_ok=True)
        self._ours = named
        for path in self.folder.iterdir():
            if _TMP.match(path.name) and not path.is_dir():
                path.unlink()


def read_ring(base: Path, manifest: dict) -> dict:
    """The ring a manifest describes, as a `ReplayBuffer.state_dict`: each field's filled slots in
    slot order, plus position, size, capacity and added. Chunk files are found in
    `base / manifest["folder"]` and checked against their SHA-256."""
    capacity, position = manifest["capacity"], manifest["position"]
    size, added = manifest["size"], manifest["added"]
    if not all(_is_count(v) for v in (capacity, position, size, added)) or not (
        size <= capacity and position < max(capacity, 1) and size <= added
    ):
        raise CheckpointError(f"replay manifest in {base} is inconsistent: {_counters(manifest)}")
    folder = Path(base) / Path(manifest["folder"]).name
    try:  # a crafted manifest gets one line, not a traceback or an allocation it chose
        fields = _fields(manifest["fields"], base)
        _check_chunks_hold(folder, manifest, fields)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"replay manifest in {base} is malformed ({type(err).__name__}: {err})"
        ) from err
    state = {
        name: torch.empty((size, *shape), dtype=dtype) for name, (dtype, shape) in fields.items()
    }
    live, filled = added - size, 0
    for chunk in manifest["chunks"]:
        lo, hi = max(chunk["start"], live), min(chunk["end"], added)
        if lo >= hi:
            continue
        rows = _read_chunk(folder, chunk)
        idx = _slots(position, added, capacity, lo, hi)
        for name in state:
            state[name][idx] = rows[name][lo - chunk["start"] : hi - chunk["start"]]
        filled += hi - lo
    if filled != size:
        raise CheckpointError(f"replay chunks in {folder} hold {filled} of the ring's {size} rows")
    state.update(position=position, size=size, capacity=capacity, added=added)
    return state


def _is_count(value) -> bool:
    return type(value) is int and value >= 0


def _fields(fields, base: Path) -> dict[str, tuple[torch.dtype, list[int]]]:
    """The manifest's fields as (dtype, row shape), each checked."""
    out = {}
    for name, spec in fields.items():
        dtype, shape = spec
        dtype = getattr(torch, str(dtype).removeprefix("torch."), None)
        if not (
            isinstance(dtype, torch.dtype)
            and isinstance(shape, list)
            and all(_is_count(n) for n in shape)
        ):
            raise CheckpointError(f"replay manifest in {base} has an invalid field {name}: {spec}")
        out[name] = (dtype, shape)
    return out


def _check_chunks_hold(folder: Path, manifest: dict, fields: dict) -> None:
    """The live rows the manifest's chunks claim fit in their files' bytes on disk."""
    row_bytes = sum(dtype.itemsize * math.prod(shape) for dtype, shape in fields.values())
    live, added = manifest["added"] - manifest["size"], manifest["added"]
    for chunk in manifest["chunks"]:
        start, end = chunk["start"], chunk["end"]
        if not (_is_count(start) and _is_count(end) and start <= end):
            raise CheckpointError(f"replay manifest names an invalid chunk {chunk}")
        rows = max(0, min(end, added) - max(start, live))
        if rows:
            path = _chunk_path(folder, chunk)
            try:
                on_disk = path.stat().st_size
            except OSError as err:
                raise _unreadable(path, err) from err
            if rows * row_bytes > on_disk:  # a chunk file holds its rows' bytes, uncompressed
                raise CheckpointError(
                    f"replay chunk {path} is too small to hold the {rows} rows its manifest claims"
                )


def _chunk_path(folder: Path, chunk: dict) -> Path:
    name = chunk["file"]
    if not (isinstance(name, str) and _NAME.match(name)):
        raise CheckpointError(f"replay manifest names an invalid chunk file {name!r}")
    return folder / name


def _unreadable(path: Path, err: OSError) -> CheckpointError:
    return CheckpointError(f"cannot read replay chunk {path}: {err.strerror or err}")


def _read_chunk(folder: Path, chunk: dict) -> dict[str, Tensor]:
    path = _chunk_path(folder, chunk)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise _unreadable(path, err) from err
    if hashlib.sha256(data).hexdigest() != chunk["sha256"]:
        raise CheckpointError(f"replay chunk {path} fails its checksum: the file is corrupt")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # the checksum matched: only a file built to mislead gets here
        raise CheckpointError(f"replay chunk {path} is not a chunk: {type(err).__name__}") from err


def _counters(manifest: dict) -> str:
    keys = ("capacity", "position", "size", "added")
    return ", ".join(f"{k} {manifest[k]}" for k in keys)
