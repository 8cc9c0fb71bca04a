"""What one checkpoint of the replay buffer costs, before and after issue 16 (the chunked replay
checkpoints of docs/reliability.md).

    python benchmarks/speed.py checkpoint                       # Humanoid sizes
    python benchmarks/speed.py checkpoint --sizes 10000 100000 --obs-dim 11 --act-dim 3

For each size N a synthetic buffer of N transitions (random values; capacity N, as a run of N
steps allocates) is saved as a checkpoint saves it:

- before: the old `ReplayBuffer.state_dict` (slices of the ring) written by the old
  `save_checkpoint` (torch.save into a temporary file, fsync, rename): the whole buffer, every
  checkpoint;
- after: `ChunkedRing`, with the first N - new transitions already saved by earlier checkpoints:
  only the `new` transitions added since (default 10k, the loop's checkpoint_every) are written.

Bytes are what lands on disk; times are wall-clock seconds of the save, fsync included.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from diffpolicy.rl.storage.buffer import ReplayBuffer
from diffpolicy.rl.storage.chunks import ChunkedRing


@dataclass
class Args:
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    """Transitions in the buffer."""
    obs_dim: int = 348
    """Observation size (Humanoid-v5: 348)."""
    act_dim: int = 17
    """Action size (Humanoid-v5: 17)."""
    new: int = 10_000
    """Transitions added since the previous checkpoint."""
    folder: Path | None = None
    """Where the files go (default: a temporary folder, removed afterwards)."""


def synthetic_buffer(size: int, obs_dim: int, act_dim: int) -> ReplayBuffer:
    buffer = ReplayBuffer(obs_dim, act_dim, size)
    gen = torch.Generator().manual_seed(0)
    for name in ("obs", "actions", "rewards", "next_obs"):
        tensor = getattr(buffer, name)
        tensor.copy_(torch.randn(tensor.shape, generator=gen))
    buffer.terminated.copy_(torch.rand(size, generator=gen) < 0.01)
    buffer.size = buffer.added = size
    return buffer


def save_before(buffer: ReplayBuffer, path: Path) -> None:
    """The pre-issue-16 code path, verbatim: views of the ring, torch.save straight to a file."""
    state = {name: getattr(buffer, name)[: buffer.size].cpu() for name in ReplayBuffer.FIELDS}
    state.update(position=buffer.position, size=buffer.size, capacity=buffer.capacity)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"buffer": state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_after(buffer: ReplayBuffer, folder: Path, new: int) -> tuple[float, int]:
    """Seconds and bytes of a checkpoint that adds the last `new` transitions to the earlier
    checkpoints' chunks."""
    ring = ChunkedRing(folder)
    older = buffer.size - new
    ring.commit(ring.write(buffer.storage(), older % buffer.capacity, older, older))
    before = _bytes(folder)
    start = time.perf_counter()
    ring.commit(ring.write(buffer.storage(), buffer.position, buffer.size, buffer.added))
    return time.perf_counter() - start, _bytes(folder) - before


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir()) if folder.is_dir() else 0


def main(args: Args) -> None:
    torch.set_num_threads(1)
    print("transitions,before_bytes,before_s,after_bytes,after_s")
    for size in args.sizes:
        buffer = synthetic_buffer(size, args.obs_dim, args.act_dim)
        with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
            path = Path(tmp) / "checkpoint.pt"
            start = time.perf_counter()
            save_before(buffer, path)
            before_s, before_bytes = time.perf_counter() - start, path.stat().st_size
            path.unlink()
            after_s, after_bytes = save_after(buffer, Path(tmp) / "replay", min(args.new, size))
        print(f"{size},{before_bytes},{before_s:.3f},{after_bytes},{after_s:.3f}", flush=True)
        del buffer
