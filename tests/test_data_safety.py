"""Nothing is lost or run by accident: the data-loss cases of issue 16, each of which the code
before it failed (the killed log rewrite, overwritten foreign files, a full disk, corrupted tensor
data, a crafted SB3 replay buffer, a config.json that imports a module)."""

from __future__ import annotations

import builtins
import csv
import errno
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_runs import register_blow_up_env

from diffpolicy.rl import (
    Agent,
    AgentConfig,
    TrainConfig,
    load_checkpoint,
    load_policy,
    save_checkpoint,
    save_policy,
    train,
)
from diffpolicy.rl.run.divergence import DivergedError
from diffpolicy.rl.run.errors import one_line_errors
from diffpolicy.rl.run.validation import ConfigError
from diffpolicy.rl.storage.files import CheckpointError, RunDirError, atomic_write
from diffpolicy.rl.storage.lock import LOCK_FILE
from diffpolicy.rl.storage.logger import CSVLog

ROOT = Path(__file__).resolve().parents[1]
MARKER = "diffpolicy_test_unpickled"


def tiny(run_dir: Path, **overrides) -> TrainConfig:
    """A tiny run: 120 steps, of which 30 uniform warm-up (shorter than the 60-step runs too)."""
    fields = dict(
        env="Hopper-v5",
        steps=120,
        run_dir=run_dir,
        warmup_steps=30,
        eval_every=60,
        eval_episodes=1,
        checkpoint_every=60,
        log_every=60,
        progress=False,
        agent=AgentConfig(actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=16),
    )
    return TrainConfig(**{**fields, **overrides})


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- the killed log rewrite ---------------------------------------------------------------------
def _kill_while_writing_rows(monkeypatch):
    def killed(self, rows):
        raise KeyboardInterrupt  # the process dies in the middle of writing the kept rows

    monkeypatch.setattr(csv.DictWriter, "writerows", killed)


def _kill_before_rename(monkeypatch):
    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)


@pytest.mark.parametrize("kill", [_kill_while_writing_rows, _kill_before_rename])
def test_a_kill_during_the_resume_rewrite_of_a_log_loses_nothing(kill, tmp_path, monkeypatch):
    path = tmp_path / "train_episodes.csv"
    log = CSVLog(path, ["step", "return", "length"])
    for step in range(50, 350, 50):
        log.write({"step": step, "return": step / 10, "length": 50})
    before = path.read_bytes()
    with monkeypatch.context() as patch:
        kill(patch)
        with pytest.raises(KeyboardInterrupt):
            CSVLog(path, ["step", "return", "length"], resume_step=200)  # drops 250 and 300
    assert path.read_bytes() == before
    CSVLog(path, ["step", "return", "length"], resume_step=200)  # the next resume does it
    with open(path, newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [50, 100, 150, 200]


def test_a_row_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("step,return_mean\n100,1.5\n200,2.5\n30")  # the kill hit the third row
    log = CSVLog(path, None, resume_step=300)
    log.write({"step": 300, "return_mean": 3.5})
    assert path.read_text().splitlines() == ["step,return_mean", "100,1.5", "200,2.5", "300,3.5"]


# --- another run's files ------------------------------------------------------------------------
def test_a_new_run_does_not_overwrite_another_runs_logs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval.csv").write_text("step,return_mean\n5000,812.5\n")
    (run / "metrics.csv").write_text("step,sps\n5000,30.1\n")
    before = _files(run)
    with pytest.raises(RunDirError, match="eval.csv, metrics.csv"):
        train(tiny(run))
    assert _files(run) == before


# --- a full disk --------------------------------------------------------------------------------
def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """Writes of temporary files fail with ENOSPC once the first checkpoint (step 60) exists."""
    run = tmp_path / "run"
    real_open = builtins.open

    class NoSpace:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_disk_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        full = "w" in mode and str(file).endswith(".tmp") and (run / "checkpoint.pt").exists()
        return NoSpace(f) if full else f

    with monkeypatch.context() as patch:
        patch.setattr(builtins, "open", full_disk_open)
        with pytest.raises(RunDirError) as err:
            train(tiny(run))
    message = str(err.value)
    assert "No space left on device" in message and "step 60's is intact" in message
    assert "\n" not in message
    assert not list(run.rglob("*.tmp"))  # nothing left to keep the disk full
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 60
    train(tiny(run, resume=True))  # space is back: the run goes on from step 60
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 120


# --- a second Ctrl-C ----------------------------------------------------------------------------
def test_an_interrupt_during_an_atomic_write_leaves_the_old_file_and_no_temporary(
    tmp_path, monkeypatch
):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"old")

    def interrupted(fd):
        raise KeyboardInterrupt  # the second Ctrl-C, which StopFlag turns into one

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_an_interrupt_the_run_could_not_checkpoint_ends_in_one_line(capsys):
    with pytest.raises(SystemExit) as ended, one_line_errors():
        raise KeyboardInterrupt
    assert ended.value.code == 128 + signal.SIGINT
    assert capsys.readouterr().err.splitlines() == [
        "error: interrupted: stopped at once, without saving; the last checkpoint saved, if any, "
        "is intact"
    ]


# --- corrupted tensor data ----------------------------------------------------------------------
def test_flipped_bytes_in_tensor_data_are_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    weight = torch.linspace(-1, 1, 4096)
    save_checkpoint({"step": 1, "weight": weight}, path)
    data = bytearray(path.read_bytes())
    at = data.find(weight[:16].numpy().tobytes())
    assert at > 0
    data[at + 400 : at + 408] = bytes(range(1, 9))  # 8 bytes inside the tensor's data
    path.write_bytes(bytes(data))
    torch.load(path, weights_only=True)  # torch's zip reader does not notice
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


# --- a crafted SB3 replay buffer ----------------------------------------------------------------
class _Payload:
    def __reduce__(self):
        return (os.mkdir, (os.environ[MARKER],))


def test_an_old_sac_run_directory_with_a_crafted_pickle_runs_nothing(tmp_path, monkeypatch):
    """A run directory in the old SAC baseline's layout (SB3 .zip and a pickled replay buffer,
    here a payload) is refused on --resume; nothing in it is unpickled."""
    pytest.importorskip("stable_baselines3")
    import pickle

    from stable_baselines3 import SAC

    sac = _sac_baseline()
    run, marker = tmp_path / "run", tmp_path / "payload-ran"
    monkeypatch.setenv(MARKER, str(marker))
    run.mkdir()
    model = SAC("MlpPolicy", sac.make_train_env("Pendulum-v1"), buffer_size=100, device="cpu")
    model.save(run / "sac_model-100.zip")
    (run / "sac_replay_buffer-100.pkl").write_bytes(pickle.dumps(_Payload()))
    manifest = {
        "step": 100,
        "model": "sac_model-100.zip",
        "replay_buffer": "sac_replay_buffer-100.pkl",
    }
    (run / "sac_checkpoint.json").write_text(json.dumps(manifest))
    cfg = sac.SACConfig(env="Pendulum-v1", steps=200, run_dir=run, progress=False)
    (run / "config.json").write_text(sac._config_to_json(cfg))
    with pytest.raises(CheckpointError, match="pickle"):
        sac.train(sac.SACConfig(env="Pendulum-v1", steps=200, run_dir=run, resume=True))
    assert not marker.exists()


def _sac_baseline():
    spec = importlib.util.spec_from_file_location(
        "sac_baseline", ROOT / "benchmarks" / "sac_baseline.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["sac_baseline"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# --- a config.json that imports a module --------------------------------------------------------
MODULE = """
import os
import gymnasium as gym

open(os.environ["{marker}"], "w").close()
gym.register("Imported-v0", entry_point="gymnasium.envs.classic_control:PendulumEnv",
             max_episode_steps=50)
"""


def test_a_resumed_config_imports_a_module_only_if_the_command_line_names_it(tmp_path, monkeypatch):
    folder, marker, run = tmp_path / "modules", tmp_path / "imported", tmp_path / "run"
    folder.mkdir()
    (folder / "diffpolicy_test_env_module.py").write_text(MODULE.format(marker=MARKER))
    monkeypatch.setenv(MARKER, str(marker))
    monkeypatch.syspath_prepend(str(folder))
    env = "diffpolicy_test_env_module:Imported-v0"
    train(tiny(run, env=env, steps=60))  # named on the command line: imported
    assert marker.exists()
    marker.unlink()
    sys.modules.pop("diffpolicy_test_env_module")
    # A config.json naming a module may come from anywhere: --resume alone does not import it.
    with pytest.raises(ConfigError, match="imports the module"):
        train(TrainConfig(run_dir=run, resume=True, steps=120, progress=False))
    assert not marker.exists() and "diffpolicy_test_env_module" not in sys.modules
    train(TrainConfig(env=env, run_dir=run, resume=True, steps=120, progress=False))
    assert marker.exists() and load_checkpoint(run / "checkpoint.pt")["step"] == 120
    sys.modules.pop("diffpolicy_test_env_module", None)


def _re_signed_policy(run: Path, path: Path, env: str) -> Path:
    """The policy file of `run`, its env changed to `env` and its checksum recomputed: a checksum
    is not a signature, so anyone can do this."""
    state = load_checkpoint(save_policy(run, path))
    config = json.loads(state["config"])
    config["env"] = env
    state["config"] = json.dumps(config)
    save_checkpoint(state, path)
    return path


def test_a_policy_naming_a_module_env_is_refused_by_load_policy_and_video(
    tmp_path, monkeypatch, capsys
):
    folder, marker = tmp_path / "modules", tmp_path / "imported"
    folder.mkdir()
    (folder / "diffpolicy_test_env_module.py").write_text(MODULE.format(marker=MARKER))
    monkeypatch.setenv(MARKER, str(marker))
    monkeypatch.syspath_prepend(str(folder))
    env = "diffpolicy_test_env_module:Imported-v0"
    run = train(tiny(tmp_path / "run", env="Pendulum-v1", steps=60))
    path = _re_signed_policy(run, tmp_path / "policy.pt", env)
    message = (
        f"cannot load the policy in {path}: it names env {env!r}, which imports the module "
        f"'diffpolicy_test_env_module'; pass --env {env} (load_policy's env) if you trust it"
    )
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    assert str(err.value) == message
    from diffpolicy import video

    with pytest.raises(SystemExit) as ended:
        video.main([str(path), "--out", str(tmp_path / "policy.mp4")])
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {message}"]
    (run / "config.json").write_text((run / "config.json").read_text().replace("Pendulum-v1", env))
    with pytest.raises(ConfigError, match="imports the module"):
        load_policy(run)
    assert not marker.exists() and "diffpolicy_test_env_module" not in sys.modules
    assert load_policy(path, env=env).config.env == env  # named by the user: trusted


# --- two processes on one run directory ---------------------------------------------------------
RECIPE = "import sys; from diffpolicy.rl.run.cli import run_recipe; run_recipe(args=sys.argv[1:])"
TINY_FLAGS = [
    "--env", "Pendulum-v1", "--steps", "120", "--warmup-steps", "60", "--eval-every", "60",
    "--eval-episodes", "1", "--checkpoint-every", "60", "--agent.actor-hidden", "16", "16",
    "--agent.critic-hidden", "16", "16", "--agent.batch-size", "16", "--no-progress",
]  # fmt: skip


def _recipe(run: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", RECIPE, "--run-dir", str(run), *TINY_FLAGS, *args]


def _wait_for_lock(proc: subprocess.Popen, lock: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not (lock.is_file() and lock.read_text().strip() == str(proc.pid)):
        assert proc.poll() is None, "the first run ended before it took the lock"
        assert time.monotonic() < deadline, "the first run never took the lock"
        time.sleep(0.05)


def test_a_second_process_on_a_run_directory_exits_2_and_leaves_the_run_alone(tmp_path):
    """The first run is paused while it holds the lock; a second new run and a --resume on the
    same folder each end with one line naming its pid; the first then finishes and resumes."""
    run = tmp_path / "run"
    env = {**os.environ, "MUJOCO_GL": "egl"}
    first = subprocess.Popen(_recipe(run), cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lock(first, run / LOCK_FILE)
        first.send_signal(signal.SIGSTOP)
        before = _files(run)
        for args in ([], ["--resume"]):
            second = subprocess.run(
                _recipe(run, *args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
            )
            assert second.returncode == 2, second.stderr
            assert second.stderr.splitlines() == [
                f"error: {run} is in use by process {first.pid}, which holds its {LOCK_FILE}; "
                "wait for that run to end or choose another --run-dir"
            ]
            assert _files(run) == before
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        first.kill()
        first.wait()
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 120
    train(TrainConfig(run_dir=run, resume=True, steps=180, progress=False))
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 180


# --- divergence ---------------------------------------------------------------------------------
def test_a_run_whose_losses_turn_non_finite_stops_in_one_line_and_keeps_its_last_checkpoint(
    tmp_path,
):
    """Rewards of 1e30 from step 131 overflow the critic's loss: the run stops at the next
    boundary that reads it (the checkpoint at 180) without saving, and step 120's stays."""
    run = tmp_path / "run"
    cfg = tiny(run, env=register_blow_up_env(after=130), steps=240, eval_every=240)
    with pytest.raises(DivergedError) as err:
        train(cfg)
    assert str(err.value) == (
        "training diverged at step 180: critic_loss is not finite "
        "(no checkpoint written from it; step 120's is intact)"
    )
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 120
    assert all(torch.isfinite(v).all() for v in state["agent"]["modules"].values())


class _NaNActions(Agent):
    """Finite losses and weights, but every action it samples is NaN."""

    def act(self, obs, explore, generator=None):
        return torch.full_like(super().act(obs, explore, generator), float("nan"))


@pytest.mark.parametrize(("eval_every", "quantity"), [(60, "evaluation action"), (120, "action")])
def test_a_non_finite_action_stops_the_run_before_the_env_sees_it(eval_every, quantity, tmp_path):
    """Step 60, the first after warm-up, evaluates (eval_every 60) or checkpoints and then acts."""
    run = tmp_path / "run"
    with pytest.raises(DivergedError) as err:
        train(
            tiny(run, env="Pendulum-v1", eval_every=eval_every, warmup_steps=60), agent=_NaNActions
        )
    kept = "no checkpoint yet" if eval_every == 60 else "step 60's is intact"
    assert str(err.value) == (
        f"training diverged at step 60: {quantity} is not finite "
        f"(no checkpoint written from it; {kept})"
    )


# --- symbolic links in a run directory ----------------------------------------------------------
@pytest.mark.parametrize("name", ["checkpoint.pt.tmp", "config.json.tmp", "replay/CHUNK.tmp"])
def test_a_link_planted_where_a_temporary_file_goes_is_replaced_not_followed(name, tmp_path):
    run, target = tmp_path / "run", tmp_path / "precious.txt"
    train(tiny(run, steps=60))
    target.write_text("precious")
    next_chunk = "000000000060-000000000120.pt"  # the chunk the resume writes
    link = run / name.replace("CHUNK", next_chunk)
    link.symlink_to(target)
    train(tiny(run, steps=120, resume=True))
    assert target.read_text() == "precious"
    assert not link.is_symlink() and not link.exists()
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 120


def test_a_log_that_is_a_link_is_refused_before_anything_is_written(tmp_path):
    run, target = tmp_path / "run", tmp_path / "precious.csv"
    train(tiny(run, steps=60))
    (run / "eval.csv").rename(target)
    (run / "eval.csv").symlink_to(target)
    before = target.read_bytes()
    with pytest.raises(RunDirError) as err:
        train(tiny(run, steps=120, resume=True))
    assert str(err.value) == (
        f"cannot write {run / 'eval.csv'}: it is a symbolic link, which a run never writes through"
    )
    assert target.read_bytes() == before
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 60


def test_replay_cleanup_deletes_only_the_runs_own_files(tmp_path):
    """A user's stray files in replay/, a chunk-like name included, survive the checkpoints of a
    resume; a replay folder that is a link is refused, and the folder it points to kept."""
    run = tmp_path / "run"
    train(tiny(run, steps=60))
    strays = {"notes.tmp": b"mine", "000000000500-000000000600.pt": b"also mine"}
    for stray, data in strays.items():
        (run / "replay" / stray).write_bytes(data)
    train(tiny(run, steps=120, resume=True))
    assert all((run / "replay" / n).read_bytes() == data for n, data in strays.items())

    elsewhere = tmp_path / "elsewhere"
    (run / "replay").rename(elsewhere)
    (run / "replay").symlink_to(elsewhere)
    before = _files(elsewhere)
    with pytest.raises(RunDirError, match="replay: it is a symbolic link"):
        train(tiny(run, steps=180, resume=True))
    assert _files(elsewhere) == before
