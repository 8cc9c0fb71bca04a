"""Tests for atomic, weights_only checkpoint files (diffpolicy.rl.storage.checkpoint)."""

from __future__ import annotations

import io

import pytest
import torch

from diffpolicy.rl.agent.agent import Agent, AgentConfig
from diffpolicy.rl.storage.buffer import ReplayBuffer
from diffpolicy.rl.storage.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

torch.set_num_threads(1)

UNPICKLED: list[str] = []


def _record(note: str) -> str:
    UNPICKLED.append(note)
    return note


class Payload:
    """An arbitrary Python object; unpickling it would run code (it records that it did)."""

    def __init__(self, note: str = "x") -> None:
        self.note = note

    def __reduce__(self):
        return (_record, ("payload ran",))


class Plain:
    """An ordinary user class, not on torch's weights_only allow-list."""

    def __init__(self) -> None:
        self.value = torch.ones(2)


def test_custom_class_instance_is_refused(tmp_path):
    path = tmp_path / "custom.pt"
    torch.save({"step": 1, "obj": Plain()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    assert isinstance(torch.load(path, weights_only=False)["obj"], Plain)


def _state(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "step": seed,
        "weights": {"w": torch.randn(64, 64, generator=g), "b": torch.randn(64, generator=g)},
        "flags": torch.tensor([True, False]),
        "nested": [1, 2.5, "text", (3, 4), None],
    }


def _assert_same(a, b) -> None:
    assert type(a) is type(b) or (isinstance(a, tuple) and isinstance(b, tuple))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b


def test_round_trip(tmp_path):
    path = tmp_path / "sub" / "dir" / "ckpt.pt"  # parent folders are created
    state = _state(1)
    save_checkpoint(state, path)
    _assert_same(load_checkpoint(path), state)
    assert not path.with_name(path.name + ".tmp").exists()
    save_checkpoint(_state(2), path)  # overwrite
    _assert_same(load_checkpoint(path), _state(2))


def test_save_is_atomic_when_torch_save_crashes_midway(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    first = _state(1)
    save_checkpoint(first, path)
    first_bytes = path.read_bytes()
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])  # half of the new checkpoint reaches the disk
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(_state(2), path)
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == first_bytes
    _assert_same(load_checkpoint(path), first)
    # The next successful save replaces the debris.
    save_checkpoint(_state(3), path)
    _assert_same(load_checkpoint(path), _state(3))


def test_missing_file_raises_with_path(tmp_path):
    path = tmp_path / "nothing_here.pt"
    with pytest.raises(CheckpointError, match="nothing_here.pt") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        load_checkpoint(tmp_path)  # a directory is not a checkpoint


def test_random_bytes_raise_with_path(tmp_path):
    path = tmp_path / "garbage.pt"
    g = torch.Generator().manual_seed(0)
    path.write_bytes(bytes(torch.randint(256, (4096,), generator=g, dtype=torch.uint8).tolist()))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9])
def test_truncated_checkpoint_raises_with_path(tmp_path, keep):
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    save_checkpoint(_state(1), good)
    data = good.read_bytes()
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    assert str(bad) in str(err.value)
    assert isinstance(err.value, RuntimeError)


def test_arbitrary_python_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"step": 1, "payload": Payload()}, path)  # saved directly, as a foreign file
    UNPICKLED.clear()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    assert UNPICKLED == []  # the payload never ran
    # The same file does load (and runs the payload) without weights_only: the refusal is real.
    torch.load(path, weights_only=False)
    assert UNPICKLED == ["payload ran"]


def test_agent_and_buffer_state_survive_weights_only(tmp_path):
    cfg = AgentConfig(actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=8, ema_decay=0.9)
    torch.manual_seed(0)
    agent = Agent(3, 2, cfg)
    buf = ReplayBuffer(3, 2, 16)
    for i in range(10):
        buf.add(torch.randn(3), torch.rand(2) * 2 - 1, float(i), torch.randn(3), i == 9, False)
    agent.update(buf.sample(8, torch.Generator().manual_seed(0)))  # Adam state, EMA, lr schedule
    path = tmp_path / "run.pt"
    save_checkpoint({"agent": agent.training_state(), "buffer": buf.state_dict()}, path)
    state = load_checkpoint(path)

    torch.manual_seed(1)
    fresh = Agent(3, 2, cfg)
    fresh.load_training_state(state["agent"])
    _assert_same(fresh.state_dict(), agent.state_dict())
    _assert_same(fresh.actor_opt.state_dict(), agent.actor_opt.state_dict())
    _assert_same(fresh.critic_opt.state_dict(), agent.critic_opt.state_dict())
    assert int(fresh.ema.num_updates) == 1
    restored = ReplayBuffer(3, 2, 16)
    restored.load_state_dict(state["buffer"])
    assert len(restored) == 10 and torch.equal(restored.rewards[:10], buf.rewards[:10])


# --- checksums ------------------------------------------------------------------------------------
def test_checksum_covers_values_dtypes_and_order():
    from diffpolicy.rl.storage.checkpoint import checksum

    state = _state(1)
    assert checksum(state) == checksum(_state(1))
    changed = _state(1)
    changed["weights"]["w"][3, 4] += 1e-6
    assert checksum(changed) != checksum(state)
    assert checksum({"a": torch.zeros(2)}) != checksum({"a": torch.zeros(2, dtype=torch.float64)})
    assert checksum({"a": 1, "b": 2}) != checksum({"b": 2, "a": 1})
    assert checksum({"x": torch.zeros(0, 3)}) != checksum({"x": torch.zeros(3, 0)})


def test_a_checkpoint_written_before_checksums_still_loads(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(_state(1), path)  # the layout of checkpoints before issue 16
    _assert_same(load_checkpoint(path), _state(1))


# --- the replay buffer in chunk files -------------------------------------------------------------
def _ring_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _save(ring, buf) -> dict:
    manifest = ring.write(buf.storage(), buf.position, buf.size, buf.added)
    ring.commit(manifest)
    return manifest


def _filled(capacity: int, count: int, start: int = 0) -> ReplayBuffer:
    buf = ReplayBuffer(3, 2, capacity)
    _add(buf, start, count)
    return buf


def _add(buf: ReplayBuffer, start: int, stop: int) -> None:
    for i in range(start, stop):
        buf.add(
            torch.full((3,), float(i)),
            torch.full((2,), i / 1000),
            i,
            torch.ones(3),
            i % 7 == 0,
            False,
        )


def test_a_save_writes_only_the_rows_added_since_the_last(tmp_path):
    from diffpolicy.rl.storage.chunks import ChunkedRing, read_ring

    ring, buf = ChunkedRing(tmp_path / "replay"), _filled(1000, 300)
    _save(ring, buf)
    first = (tmp_path / "replay" / "000000000000-000000000300.pt").stat().st_size
    _add(buf, 300, 330)
    manifest = _save(ring, buf)
    assert _ring_files(tmp_path / "replay") == [
        "000000000000-000000000300.pt",
        "000000000300-000000000330.pt",
    ]
    new = torch.load(tmp_path / "replay" / "000000000300-000000000330.pt", weights_only=True)
    assert new["obs"].shape == (30, 3) and new["obs"][:, 0].tolist() == list(range(300, 330))
    assert (tmp_path / "replay" / "000000000000-000000000300.pt").stat().st_size == first
    _assert_same(read_ring(tmp_path, manifest), buf.state_dict())


@pytest.mark.parametrize("saves", [(40, 90, 130), (130,), (10, 11, 200)])
def test_a_wrapped_ring_restores_exactly_and_drops_overwritten_chunks(tmp_path, saves):
    from diffpolicy.rl.storage.chunks import ChunkedRing, read_ring

    ring, buf, added = ChunkedRing(tmp_path / "replay", max_rows=32), ReplayBuffer(3, 2, 50), 0
    for upto in saves:
        _add(buf, added, upto)
        added = upto
        manifest = _save(ring, buf)
    state = read_ring(tmp_path, manifest)
    _assert_same(state, buf.state_dict())
    fresh = ReplayBuffer(3, 2, 50)
    fresh.load_state_dict(state)
    for a, b in zip(
        fresh.sample(64, torch.Generator().manual_seed(0)),
        buf.sample(64, torch.Generator().manual_seed(0)),
        strict=True,
    ):
        assert torch.equal(a, b)
    # Only chunks holding rows still in the ring are kept, each at most max_rows long.
    for chunk in manifest["chunks"]:
        assert chunk["end"] > added - 50 and chunk["end"] - chunk["start"] <= 32
    assert _ring_files(tmp_path / "replay") == sorted(c["file"] for c in manifest["chunks"])


def test_a_corrupt_or_missing_chunk_is_refused(tmp_path):
    from diffpolicy.rl.storage.chunks import ChunkedRing, read_ring

    manifest = _save(ChunkedRing(tmp_path / "replay"), _filled(100, 60))
    chunk = tmp_path / "replay" / manifest["chunks"][0]["file"]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 1
    chunk.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        read_ring(tmp_path, manifest)
    chunk.unlink()
    with pytest.raises(CheckpointError, match="cannot read"):
        read_ring(tmp_path, manifest)


def test_a_failed_save_leaves_the_committed_chunks_and_no_debris(tmp_path, monkeypatch):
    from diffpolicy.rl.storage import chunks
    from diffpolicy.rl.storage.files import RunDirError

    ring, buf = chunks.ChunkedRing(tmp_path / "replay", max_rows=20), _filled(100, 30)
    committed = _save(ring, buf)
    _add(buf, 30, 80)
    real_write, calls = chunks.atomic_write, []

    def fails_on_the_second(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise RunDirError(f"cannot write {path}: No space left on device")
        real_write(path, data)

    monkeypatch.setattr(chunks, "atomic_write", fails_on_the_second)
    with pytest.raises(RunDirError):
        ring.write(buf.storage(), buf.position, buf.size, buf.added)
    ring.clean()
    assert _ring_files(tmp_path / "replay") == sorted(c["file"] for c in committed["chunks"])
    assert len(chunks.read_ring(tmp_path, committed)["obs"]) == 30


def test_state_dict_of_a_partly_filled_buffer_saves_the_filled_part_only(tmp_path):
    small, big = tmp_path / "small.pt", tmp_path / "big.pt"
    torch.save(_filled(100, 10).state_dict(), small)
    torch.save(_filled(100_000, 10).state_dict(), big)
    assert big.stat().st_size < small.stat().st_size + 1000  # not the 100k-row storage
