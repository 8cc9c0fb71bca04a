"""Every kind of bad input listed in docs/bad_input.md gives exactly the one-line message the table
shows, and writes nothing into the run directory.

Each case below produces its message (the recipe's `error: ...` line, or a library exception);
the table's row with the same id must show that message, with the run directory written RUN.
"""

from __future__ import annotations

import builtins
import errno
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tiny_runs import register_faulty_env, tiny_config

from diffpolicy.rl import ReplayBuffer, TrainConfig, train
from diffpolicy.rl.agent.agent import AgentConfig
from diffpolicy.rl.run.cli import run_recipe

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bad_input.md"
TINY = [
    "--warmup-steps", "60", "--eval-every", "60", "--eval-episodes", "1",
    "--checkpoint-every", "60", "--agent.actor-hidden", "16", "16",
    "--agent.critic-hidden", "16", "16", "--agent.batch-size", "16", "--no-progress",
]  # fmt: skip
SHORT = ["--steps", "120", *TINY]  # where a case, had it not been refused, would train


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A finished 120-step Hopper run with tiny networks (checkpoints at 60 and 120)."""
    run = tmp_path_factory.mktemp("base") / "run"
    run_recipe(args=["--env", "Hopper-v5", "--steps", "120", "--run-dir", str(run), *TINY])
    return run


class Ctx:
    """What a case needs: a scratch folder, a copy of the base run, and stderr."""

    def __init__(self, tmp_path: Path, base: Path, capsys) -> None:
        self.tmp, self.base, self.capsys = tmp_path, base, capsys
        self.run = tmp_path / "run"

    def copy_run(self) -> Path:
        shutil.copytree(self.base, self.run)
        return self.run

    def edit_config(self, **changes) -> None:
        path = self.run / "config.json"
        data = json.loads(path.read_text())
        for dotted, value in changes.items():
            *parents, last = dotted.split(".")
            target = data
            for key in parents:
                target = target[key]
            target[last] = value
        path.write_text(json.dumps(data))

    def recipe(
        self,
        *args: str,
        main: Callable | None = None,
        unchanged: bool = True,
        status: tuple[int, ...] = (1, 2),
    ) -> str:
        """Run the recipe with `args`; it must end with exactly one `error: ...` line and an exit
        status in `status`, and (if `unchanged`) leave the run directory as it was."""
        before = _snapshot(self.run) if unchanged else None
        with pytest.raises(SystemExit) as ended:
            (main or (lambda: run_recipe(args=list(args))))()
        assert ended.value.code in status
        err = self.capsys.readouterr().err
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, err
        if unchanged:
            assert _snapshot(self.run) == before, "the run directory changed"
        return lines[0]

    def new_run(self, *args: str, unchanged: bool = True) -> str:
        return self.recipe("--run-dir", str(self.run), *args, unchanged=unchanged)

    def resume(self, *args: str) -> str:
        return self.recipe("--run-dir", str(self.run), "--resume", "--no-progress", *args)


def _snapshot(folder: Path) -> dict | None:
    if not folder.exists():
        return None
    if folder.is_file():
        return {"": folder.read_bytes()}
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _raises(call: Callable, error: type = ValueError) -> str:
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message
    return message


CASES: dict[str, Callable[[Ctx], str]] = {}


def case(name: str):
    def register(fn):
        CASES[name] = fn
        return fn

    return register


# --- values on the command line (recipes/qsm_mujoco.py) ------------------------------------------
# The default (best) preset reads the Langevin score in the diffusion convention, a Langevin
# option that another sampler refuses: set back to its default where a case changes the sampler.
_SCORE_TRAINED = ["--agent.langevin-score", "trained"]
FLAG_CASES = {
    "tau-above-one": ["--agent.tau", "2"],
    "tau-zero": ["--agent.tau", "0"],
    "gamma-above-one": ["--agent.gamma", "5"],
    "alpha-infinite": ["--agent.qsm.alpha", "inf"],
    "alpha-zero": ["--agent.qsm.alpha", "0"],
    "actor-lr-negative": ["--agent.actor-lr", "-1"],
    "critic-lr-nan": ["--agent.critic-lr", "nan"],
    "actor-width-zero": ["--agent.actor-hidden", "0", "0"],
    "critic-width-zero": ["--agent.critic-hidden", "0"],
    "actor-no-layers": ["--agent.actor-hidden"],
    "one-critic": ["--agent.critic-members", "1"],
    "layer-norm-with-batch-renorm": ["--agent.critic-layer-norm", "--agent.critic-batch-renorm"],
    "input-renorm-with-batch-renorm": [
        "--agent.critic-input-renorm",
        "--agent.critic-batch-renorm",
    ],
    "precision-unknown": ["--agent.precision", "float16"],
    "reward-scale-zero": ["--reward-scale", "0"],
    "value-bins-one": ["--agent.critic-value-bins", "1"],
    "reward-bound-without-bins": ["--agent.critic-reward-bound", "1"],
    "batch-zero": ["--agent.batch-size", "0"],
    "ddim-eta-above-one": ["--agent.sampler", "ddim", "--agent.ddim-eta", "2"],
    "ddim-eta-unused": ["--agent.ddim-eta", "2"],
    "target-subset-too-big": ["--agent.target-subset", "3"],
    "sample-steps-above-levels": ["--agent.sample-steps", "9"],
    "ema-decay-one": ["--agent.ema-decay", "1"],
    "alpha-target-std-zero": ["--agent.alpha-target-std", "0"],
    "alpha-spread-states-zero": ["--agent.alpha-spread-states", "0"],
    "alpha-control-without-target": ["--agent.alpha-control", "chain"],
    "alpha-max-without-target": ["--agent.alpha-max", "100"],
    "alpha-max-below-start": ["--agent.alpha-target-std", "0.1", "--agent.alpha-max", "10"],
    "alpha-control-chain-with-ddim": [
        "--agent.sampler",
        "ddim",
        "--agent.alpha-target-std",
        "0.1",
        "--agent.alpha-control",
        "chain",
    ],
    "noise-negative": ["--agent.exploration-noise", "-0.1"],
    "dql-with-langevin": ["--agent.objective", "dql", "--agent.sampler", "langevin"],
    "dacer-with-langevin": ["--agent.objective", "dacer", "--agent.sampler", "langevin"],
    "dime-with-ddim": ["--agent.objective", "dime", "--agent.sampler", "ddim", *_SCORE_TRAINED],
    "dime-small-variance": [
        "--agent.objective",
        "dime",
        "--agent.sampler",
        "ddpm",
        *_SCORE_TRAINED,
        "--agent.ddpm-variance",
        "small",
    ],  # fmt: skip
    "dacer-exploration-noise": [
        "--agent.objective",
        "dacer",
        "--agent.sampler",
        "ddpm",
        *_SCORE_TRAINED,
        "--agent.exploration-noise",
        "0.2",
    ],  # fmt: skip
    "qvpo-one-sample": ["--agent.objective", "qvpo", "--agent.qvpo-samples", "1"],
    "unknown-sampler": ["--agent.sampler", "euler"],
    "not-a-number": ["--agent.tau", "abc"],
    "unknown-flag": ["--agent.taux", "0.1"],
    "steps-zero": ["--steps", "0"],
    "seed-negative": ["--seed", "-1"],
    "no-eval-episodes": ["--eval-episodes", "0"],
    "eval-episodes-absurd": ["--eval-episodes", "100000"],
    "warmup-negative": ["--warmup-steps", "-5"],
    "device-unknown": ["--device", "gpu"],
    "env-unknown": ["--env", "NoSuchEnv-v0"],
    "env-discrete": ["--env", "CartPole-v1"],
    "env-task-typo": ["--env", "cheetah-runn"],
    "action-repeat-gymnasium": ["--action-repeat", "2"],
}
for _name, _flags in FLAG_CASES.items():
    case(_name)(lambda ctx, flags=_flags: ctx.new_run(*flags))


@case("device-without-cuda")
def _(ctx: Ctx) -> str:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    return ctx.new_run("--device", "cuda")


@case("dmc-recipe-unknown-task")
def _(ctx: Ctx) -> str:
    recipe = _load_recipe("qsm_dmc")
    old = sys.argv
    sys.argv = ["qsm_dmc.py", "--env", "cheetah-walk", "--run-dir", str(ctx.run)]
    try:
        return ctx.recipe(main=recipe.main).split(";")[0]  # the list of valid tasks is long
    finally:
        sys.argv = old


@case("bandit-alpha-infinite")
def _(ctx: Ctx) -> str:
    from diffpolicy.rl.run.cli import parse

    bandit = _load_recipe("qsm_bandit")
    return ctx.recipe(main=lambda: parse(bandit.BanditConfig, args=["--alpha", "inf"]))


def _load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# --- environments and sizes, checked before the run directory is written -----------------------
FAULTY_ENV_CASES = {
    "env-2d-observations": "DiffpolicyTest2DObs-v0",
    "env-nan-observation": "DiffpolicyTestNaNObs-v0",
    "env-nan-reward": "DiffpolicyTestNaNReward-v0",
}
for _name, _env in FAULTY_ENV_CASES.items():
    case(_name)(lambda ctx, env=_env: ctx.new_run("--env", register_faulty_env(env), *SHORT))


def _with_memory(ctx: Ctx, *args: str) -> str:
    """A new run on a machine with 16 GiB of memory available."""
    from diffpolicy.rl.run import memory

    real = memory.available_memory
    memory.available_memory = lambda device: 16 * 2**30
    try:
        return ctx.new_run(*TINY, *args)
    finally:
        memory.available_memory = real


case("batch-beyond-memory")(lambda ctx: _with_memory(ctx, "--agent.batch-size", str(2 * 10**7)))
case("batch-absurd")(lambda ctx: _with_memory(ctx, "--agent.batch-size", str(10**20)))


# --- run directories ----------------------------------------------------------------------------
def _in_scratch(ctx: Ctx, run_dir: str) -> str:
    """A new run whose --run-dir is relative to the scratch folder, which must stay empty."""
    cwd = os.getcwd()
    os.chdir(ctx.tmp)
    try:
        message = ctx.recipe("--run-dir", run_dir, "--steps", "60", *TINY)
    finally:
        os.chdir(cwd)
    assert os.listdir(ctx.tmp) == []
    return message


case("run-dir-empty")(lambda ctx: _in_scratch(ctx, ""))  # would be the current folder
case("run-dir-name-too-long")(lambda ctx: _in_scratch(ctx, "a" * 300))
case("run-dir-path-too-long")(lambda ctx: _in_scratch(ctx, "/".join(["b" * 200] * 25)))
case("run-dir-not-utf8")(lambda ctx: _in_scratch(ctx, os.fsdecode(b"run\xff")))


@case("run-exists")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    return ctx.new_run("--steps", "120", *TINY)


@case("foreign-run-files")
def _(ctx: Ctx) -> str:
    ctx.run.mkdir()
    (ctx.run / "eval.csv").write_text("step,return_mean\n5000,12.5\n")
    (ctx.run / "metrics.csv").write_text("step,sps\n5000,30\n")
    return ctx.new_run(*TINY)


@case("foreign-value-bias")
def _(ctx: Ctx) -> str:
    ctx.run.mkdir()
    (ctx.run / "value_bias.csv").write_text("step,q_mean\n5000,12.5\n")
    return ctx.new_run(*SHORT)


@case("run-dir-is-a-file")
def _(ctx: Ctx) -> str:
    ctx.run.write_text("not a folder")
    return ctx.new_run("--steps", "120", *TINY)


@case("resume-nothing")
def _(ctx: Ctx) -> str:
    return ctx.resume()


@case("training-diverges")
def _(ctx: Ctx) -> str:
    from tiny_runs import register_blow_up_env

    env = register_blow_up_env(after=0)  # rewards of 1e30 from the start
    return ctx.new_run("--env", env, "--steps", "120", *TINY, unchanged=False)


@case("run-dir-in-use")
def _(ctx: Ctx) -> str:
    from diffpolicy.rl.storage.lock import RunDirLock

    ctx.copy_run()
    with RunDirLock(ctx.run):  # as another process's run holds it
        message = ctx.resume()
    return message.replace(f"process {os.getpid()}", "process PID")


@case("resume-conflicting-flag")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    return ctx.resume("--agent.tau", "0.01", "--seed", "3")


@case("resume-other-env")
def _(ctx: Ctx) -> str:
    """The preset recipe builds its preset for the --env given, so the flag never differed from
    its "default" and the saved env won in silence."""
    ctx.copy_run()
    recipe = _load_recipe("qsm_mujoco")
    old = sys.argv
    sys.argv = ["qsm_mujoco.py", "--env", "Walker2d-v5", "--run-dir", str(ctx.run), "--resume"]
    try:
        return ctx.recipe(main=recipe.main)
    finally:
        sys.argv = old


@case("resume-below-progress")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    return ctx.resume("--steps", "50")


@case("config-number-as-string")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    ctx.edit_config(**{"agent.gamma": "0.99"})
    return ctx.resume()


@case("config-batch-zero")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    ctx.edit_config(**{"agent.batch_size": 0})
    return ctx.resume()


@case("config-alpha-negative")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    ctx.edit_config(**{"agent.qsm.alpha": -1})
    return ctx.resume()


@case("config-unknown-field")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    ctx.edit_config(**{"agent.learning_rate": 0.001})
    return ctx.resume()


@case("config-not-json")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    (ctx.run / "config.json").write_text('{"env": "Hopper-v5",')
    return ctx.resume()


@case("config-imports-module")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    ctx.edit_config(env="evil_module:Evil-v0")
    return ctx.resume()


@case("checkpoint-other-env")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    ctx.edit_config(env="Walker2d-v5")
    return ctx.resume()


@case("checkpoint-other-widths")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    ctx.edit_config(**{"agent.actor_hidden": [32, 32]})
    return ctx.resume()


@case("checkpoint-bit-rot")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    path = ctx.run / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    weight = torch.load(path, weights_only=True)["state"]["agent"]["modules"]
    first = next(v for v in weight.values() if v.numel() >= 64)
    at = data.find(first.reshape(-1)[:16].numpy().tobytes())
    data[at + 8 : at + 16] = bytes(8)  # 8 bytes of a weight become zeros
    path.write_bytes(bytes(data))
    return ctx.resume()


@case("checkpoint-truncated")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    path = ctx.run / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])
    return ctx.resume()


@case("checkpoint-pickle-payload")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    torch.save({"step": 1, "payload": _Payload()}, ctx.run / "checkpoint.pt")
    return ctx.resume()


class _Payload:
    def __reduce__(self):
        return (print, ("payload ran",))


def _re_sign(ctx: Ctx, edit: Callable[[dict], None]) -> None:
    """Change the copied run's checkpoint and recompute its checksum (no signature stops that)."""
    from diffpolicy.rl import load_checkpoint, save_checkpoint

    path = ctx.run / "checkpoint.pt"
    state = load_checkpoint(path, read_chunks=False)
    edit(state)
    save_checkpoint(state, path)


@case("checkpoint-step-string")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    _re_sign(ctx, lambda state: state.update(step="120"))
    return ctx.resume()


@case("replay-manifest-bad-dtype")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    _re_sign(ctx, lambda state: state["buffer"]["fields"]["obs"].__setitem__(0, "torch.float99"))
    return ctx.resume()


@case("replay-manifest-huge-ring")
def _(ctx: Ctx) -> str:
    """A ring of 10^12 rows would allocate terabytes before reading a chunk."""
    ctx.copy_run()

    def huge(state: dict) -> None:
        ring = state["buffer"]
        ring.update(capacity=10**12, size=10**12, added=10**12, position=0)
        ring["chunks"] = [{**ring["chunks"][0], "start": 0, "end": 10**12}]

    _re_sign(ctx, huge)
    chunk = (ctx.run / "checkpoint.pt").parent / "replay"
    name = sorted(p.name for p in chunk.iterdir())[0]
    return ctx.resume().replace(name, "CHUNK")


@case("replay-chunk-corrupt")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    chunk = sorted((ctx.run / "replay").iterdir())[0]
    data = bytearray(chunk.read_bytes())
    data[-300] ^= 0xFF
    chunk.write_bytes(bytes(data))
    return ctx.resume().replace(chunk.name, "CHUNK")


@case("replay-chunk-missing")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    chunk = sorted((ctx.run / "replay").iterdir())[0]
    chunk.unlink()
    return ctx.resume().replace(chunk.name, "CHUNK")


@case("disk-full")
def _(ctx: Ctx) -> str:
    """The disk fills up after the first checkpoint (step 60): the run stops at the second."""
    real_open = builtins.open

    def full_disk_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if "w" in mode and str(file).endswith(".tmp") and (ctx.run / "checkpoint.pt").exists():
            f.write = _no_space
        return f

    builtins.open = full_disk_open
    try:
        message = ctx.new_run("--steps", "120", *TINY, unchanged=False)
    finally:
        builtins.open = real_open
    assert not list(ctx.run.rglob("*.tmp"))
    return re.sub(r"\d{12}-\d{12}\.pt", "CHUNK", message)


def _no_space(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


# --- python -m diffpolicy.video -----------------------------------------------------------------
def _video(ctx: Ctx, *args: str, out: Path | None = None) -> str:
    from diffpolicy import video

    out = out or ctx.tmp / "policy.mp4"
    return ctx.recipe(main=lambda: video.main([*args, "--out", str(out)]))


@case("video-bad-width")
def _(ctx: Ctx) -> str:
    return _video(ctx, str(ctx.base), "--width", "100")


@case("video-no-run")
def _(ctx: Ctx) -> str:
    return _video(ctx, str(ctx.run))


@case("video-negative-seed")
def _(ctx: Ctx) -> str:
    return _video(ctx, str(ctx.base), "--seed", "-1")


@case("video-no-episodes")
def _(ctx: Ctx) -> str:
    return _video(ctx, str(ctx.base), "--episodes", "0")


@case("video-non-mujoco")
def _(ctx: Ctx) -> str:
    train(tiny_config(ctx.run, "Pendulum-v1", steps=60))
    return _video(ctx, str(ctx.run))


@case("video-other-env")
def _(ctx: Ctx) -> str:
    ctx.copy_run()
    return _video(ctx, str(ctx.run), "--env", "Walker2d-v5")


@case("video-out-unwritable")
def _(ctx: Ctx) -> str:
    ctx.run.write_text("a file, where the video's folder would go")
    return _video(ctx, str(ctx.base), out=ctx.run / "policy.mp4")


@case("video-without-imageio")
def _(ctx: Ctx) -> str:
    saved = {name: sys.modules.get(name) for name in ("imageio", "imageio.v2")}
    sys.modules.update(dict.fromkeys(saved))  # None in sys.modules: the import fails
    try:
        return _video(ctx, str(ctx.base))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = module


@case("video-policy-imports-module")
def _(ctx: Ctx) -> str:
    from diffpolicy.rl import load_checkpoint, save_checkpoint, save_policy

    ctx.run.mkdir()
    path = save_policy(ctx.base, ctx.run / "policy.pt")
    state = load_checkpoint(path)
    state["config"] = state["config"].replace('"Hopper-v5"', '"evil_module:Evil-v0"')
    save_checkpoint(state, path)  # re-signed: its checksum is no signature
    return _video(ctx, str(path))


# --- the benchmark harness (benchmarks/learning.py) ---------------------------------------------
def _harness(ctx: Ctx, *args: str) -> str:
    """benchmarks/learning.py with `args`: one `error:` line and status 2, RUN unchanged. A `run`
    also gets --dry-run, so that a case the harness failed to refuse would launch nothing."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import learning

    args = (*args, "--dry-run") if args[:1] == ("run",) else args
    return ctx.recipe(main=lambda: learning.main(list(args)), status=(2,))


HARNESS_CASES = {
    "harness-no-command": [],
    "harness-unknown-command": ["runs"],
    "harness-unknown-flag": ["run", "--seed", "0"],
    "harness-unknown-method": ["run", "--methods", "qsm-bset"],
    "harness-unknown-env": ["run", "--envs", "Hopper-v9"],
    "harness-env-of-another-suite": ["run", "--envs", "cheetah-run"],
    "harness-unknown-suite": ["run", "--suite", "atari"],
    "harness-no-method": ["run", "--methods"],
    "harness-negative-seed": ["run", "--seeds", "-1"],
    "harness-seed-twice": ["run", "--seeds", "0", "1", "0"],
    "harness-seed-not-a-number": ["run", "--seeds", "one"],
    "harness-steps-zero": ["run", "--steps", "0"],
    "harness-steps-not-an-integer": ["run", "--steps", "1e5"],
    "harness-threads-zero": ["run", "--threads", "0"],
    "harness-jobs-zero": ["run", "--jobs", "0"],
    "harness-address-without-ray": ["run", "--address", "auto"],
    "harness-extra-unbalanced-quote": ["run", '--extra=--agent.tau "0.5'],
    "harness-runs-root-under-a-file": ["run", "--runs-root", "{tmp}/file/runs"],
    "harness-results-root-a-file": ["run", "--results-root", "{tmp}/file"],
    "harness-aggregate-no-results-root": ["aggregate", "--results-root", "{run}"],
    "harness-aggregate-empty-suite": ["aggregate", "--results-root", "{tmp}", "--suites", "dmc"],
    "harness-table-unknown-method": ["table", "--methods", "qsm-best", "SAC"],
    "harness-table-step-zero": ["table", "--steps", "0", "100000"],
    "harness-table-no-results": ["table", "--suite", "dmcs"],
    "harness-plot-unknown-page": ["plot", "--screen", "2026-11-31-nothing"],
}


def _harness_case(args: list[str]):
    """The case of `args`, where {run} is the run directory (RUN, absent) and {tmp} the scratch
    folder (TMP), which holds a file `file` and an empty suite folder `dmc`."""

    def run(ctx: Ctx) -> str:
        (ctx.tmp / "file").write_text("")
        (ctx.tmp / "dmc").mkdir()
        given = [a.format(run=ctx.run, tmp=ctx.tmp) for a in args]
        return _harness(ctx, *given).replace(str(ctx.run), "RUN").replace(str(ctx.tmp), "TMP")

    return run


for _name, _args in HARNESS_CASES.items():
    case(_name)(_harness_case(_args))


# --- library calls -------------------------------------------------------------------------------
@case("qsm-loss-batch-mismatch")
def _(ctx: Ctx) -> str:
    from diffpolicy.nets import CriticEnsemble, Denoiser
    from diffpolicy.objectives import qsm_loss
    from diffpolicy.schedules import make_schedule

    return _raises(
        lambda: qsm_loss(
            Denoiser(3, 2, (8,)),
            CriticEnsemble(3, 2, 2, (8,)),
            make_schedule("vp", 5),
            torch.zeros(4, 3),
            torch.zeros(5, 2),
        )
    )


@case("predict-non-finite-obs")
def _(ctx: Ctx) -> str:
    import numpy as np

    from diffpolicy.rl import load_policy

    policy = load_policy(ctx.base)
    return _raises(lambda: policy.predict(np.full(policy.obs_dim, np.nan)))


@case("qsm-loss-empty-batch")
def _(ctx: Ctx) -> str:
    from diffpolicy.nets import CriticEnsemble, Denoiser
    from diffpolicy.objectives import qsm_loss
    from diffpolicy.schedules import make_schedule

    critic, schedule = CriticEnsemble(3, 2, 2, (8,)), make_schedule("vp", 5)
    empty = torch.zeros(0, 3), torch.zeros(0, 2)
    return _raises(lambda: qsm_loss(Denoiser(3, 2, (8,)), critic, schedule, *empty))


@case("td-loss-gamma-above-one")
def _(ctx: Ctx) -> str:
    from diffpolicy.nets import CriticEnsemble
    from diffpolicy.objectives import td_loss

    critic = CriticEnsemble(3, 2, 2, (8,))
    obs, actions, zeros = torch.zeros(4, 3), torch.zeros(4, 2), torch.zeros(4)
    return _raises(
        lambda: td_loss(
            critic, critic, lambda o: actions, obs, actions, zeros, obs, zeros, gamma=1.5
        )
    )


@case("buffer-wrong-shape")
def _(ctx: Ctx) -> str:
    buffer = ReplayBuffer(3, 2, 10)
    return _raises(lambda: buffer.add(torch.zeros(4), torch.zeros(2), 0.0, torch.zeros(3), 0, 0))


@case("config-in-code")
def _(ctx: Ctx) -> str:
    return _raises(lambda: TrainConfig(agent=AgentConfig(gamma="0.99")))


@case("train-in-code-unknown-env")
def _(ctx: Ctx) -> str:
    return _raises(lambda: train(TrainConfig(env="hopper-v5", run_dir=ctx.run)))


# --- the table ----------------------------------------------------------------------------------
def doc_rows() -> dict[str, str]:
    """id -> message, from the table in docs/bad_input.md (``message`` in the last column)."""
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `([a-z0-9-]+)` \|.*\| ``(.*)`` \|$", line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def test_every_case_has_a_row_and_every_row_a_case():
    assert sorted(doc_rows()) == sorted(CASES)
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(CASES))
def test_message(name: str, base_run: Path, tmp_path: Path, capsys):
    ctx = Ctx(tmp_path, base_run, capsys)
    message = CASES[name](ctx).replace(str(ctx.run), "RUN")
    if os.environ.get("BAD_INPUT_DUMP"):  # to write the table: the message each case gives
        with open(os.environ["BAD_INPUT_DUMP"], "a") as f:
            f.write(f"{name}\t{message}\n")
    assert message == doc_rows().get(name)


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("recipes/qsm_mujoco.py", ["--agent.tau", "2"]),
        ("recipes/qsm_mujoco.py", ["--env", "CartPole-v1"]),
        ("recipes/qsm_mujoco.py", ["--preset", "nope"]),
        ("recipes/qsm_dmc.py", ["--preset", "nope"]),
        ("benchmarks/sac_baseline.py", ["--algo", "ppo"]),
    ],
)
def test_a_real_process_ends_with_one_line_and_status_2(script, args, tmp_path):
    """Outside pytest too: stderr ends with the one `error:` line, no traceback, nothing written."""
    run = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, script, "--run-dir", str(run), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MUJOCO_GL": "egl"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not run.exists()


@pytest.mark.parametrize(
    "args", [[], ["run", "--methods", "qsm-bset"], ["aggregate", "--results-root", "{tmp}"]]
)
def test_the_harness_ends_with_one_line_and_status_2_in_a_real_process(args, tmp_path):
    """`benchmarks/learning.py` outside pytest: one `error:` line on stderr, nothing else."""
    args = [a.format(tmp=tmp_path / "nowhere") for a in args]
    proc = subprocess.run(
        [sys.executable, "benchmarks/learning.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: ")


def test_an_env_named_on_resume_is_compared_even_when_it_is_the_recipes_default(tmp_path, capsys):
    """The issue's case: `--env Hopper-v5` (the default) on --resume of a Pendulum run trained
    Pendulum and exited 0."""
    from tiny_runs import tiny_config

    run = tmp_path / "run"
    train(tiny_config(run, steps=60))
    with pytest.raises(SystemExit) as ended:
        run_recipe(args=["--run-dir", str(run), "--resume", "--env", "Hopper-v5", "--steps", "120"])
    assert ended.value.code == 2
    assert "--env Hopper-v5 (saved: Pendulum-v1)" in capsys.readouterr().err
