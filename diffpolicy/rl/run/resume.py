"""Which config a run uses, and whether its run directory can take it.

A new run refuses a folder that holds run files. A resume reads the saved config, reports flags
that conflict with it, refuses to import a module the saved config names unless the command line
names it too, and checks the checkpoint against the config; all before anything is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from diffpolicy.rl.run.config import TrainConfig, config_from_json, flat_fields
from diffpolicy.rl.run.validation import ConfigError
from diffpolicy.rl.storage.files import CheckpointError, RunDirError

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
REPLAY = "replay"
"""The folder of the replay buffer's chunk files (diffpolicy.rl.storage.chunks)."""
RUN_FILES = (
    CONFIG,
    CHECKPOINT,
    "eval.csv",
    "value_bias.csv",
    "train_episodes.csv",
    "metrics.csv",
    "tensorboard",
    REPLAY,
)
DEFAULT_STEPS = 100_000
MAY_CHANGE_ON_RESUME = ("steps", "device", "threads", "progress", "resume", "run_dir")


def check_new_run_dir(run_dir: Path, run_files=RUN_FILES, checkpoint: str = CHECKPOINT) -> None:
    """A new run starts only in a folder that holds none of a run's files."""
    present = [name for name in run_files if (Path(run_dir) / name).exists()]
    if checkpoint in present:
        raise RunDirError(
            f"{run_dir} already holds a run; pass --resume to continue it, "
            "or choose another --run-dir"
        )
    if present:
        raise RunDirError(
            f"{run_dir} already holds run files ({', '.join(present)}) but no {checkpoint} to "
            "resume from; move them aside or choose another --run-dir"
        )


def run_dir_of(cfg: TrainConfig) -> Path:
    """The run directory `cfg` names, or its default."""
    return Path(cfg.run_dir) if cfg.run_dir is not None else cfg.default_run_dir()


def resolve_config(cfg: TrainConfig, defaults: TrainConfig | None = None) -> TrainConfig:
    """The config a run uses. A new run: `cfg` with the default budget and run directory filled
    in. On resume: the directory's saved config, with device, threads and progress from `cfg`,
    and steps if `cfg` gives them. `defaults` is the config the command line started from (the
    recipe's preset): a field of `cfg` that differs from it was given, and must then equal the
    saved value."""
    run_dir = run_dir_of(cfg)
    if not cfg.resume:
        check_new_run_dir(run_dir)
        resolved = dataclasses.replace(cfg, run_dir=run_dir, steps=cfg.steps or DEFAULT_STEPS)
        check_warmup(resolved)
        return resolved
    saved = read_saved_config(run_dir)
    check_given_flags(cfg, saved, defaults or TrainConfig(), run_dir)
    check_env_import(cfg.env, saved.env, run_dir)
    return dataclasses.replace(
        saved,
        steps=cfg.steps or saved.steps,
        device=cfg.device,
        threads=cfg.threads,
        progress=cfg.progress,
        resume=True,
        run_dir=run_dir,
    )


def check_warmup(cfg: TrainConfig) -> None:
    """A new run's warm-up must end before its budget does: otherwise it never updates and
    trains nothing, which is refused rather than run for nothing."""
    if cfg.warmup_steps >= cfg.steps:
        raise ConfigError(
            f"warmup_steps = {cfg.warmup_steps}: must be below steps = {cfg.steps}, or the run "
            f"never updates the agent (pass --warmup-steps {cfg.steps // 5}, for example)"
        )


def read_saved_config(run_dir: Path) -> TrainConfig:
    if not (run_dir / CONFIG).is_file():
        raise CheckpointError(f"cannot resume: no {CONFIG} in {run_dir}")
    if not (run_dir / CHECKPOINT).is_file():
        raise CheckpointError(
            f"cannot resume: {run_dir} has no {CHECKPOINT} (the run stopped before its first "
            "checkpoint); move the directory aside and start again"
        )
    try:
        return config_from_json((run_dir / CONFIG).read_text())
    except (ConfigError, OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot resume from {run_dir / CONFIG}: {err}") from err


def check_given_flags(cfg, saved, defaults, run_dir: Path, may_change=MAY_CHANGE_ON_RESUME):
    """A field of `cfg` that differs from `defaults` was given on the command line; on resume it
    must equal the saved value unless it is one of `may_change`."""
    given, old, default = flat_fields(cfg), flat_fields(saved), flat_fields(defaults)
    conflicts = [
        f"--{name.replace('_', '-')} {value} (saved: {old.get(name)})"
        for name, value in given.items()
        if name not in may_change and value != default.get(name) and value != old.get(name)
    ]
    if conflicts:
        _refuse(run_dir, conflicts, may_change)


def _refuse(run_dir: Path, conflicts: list[str], may_change=MAY_CHANGE_ON_RESUME) -> None:
    allowed = ", ".join(f"--{n}" for n in may_change if n not in ("resume", "run_dir"))
    raise ConfigError(
        f"cannot resume {run_dir} with other settings than it was started with: "
        f"{'; '.join(conflicts)} (on --resume only {allowed} may change)"
    )


def check_named_env(cfg: TrainConfig) -> None:
    """On --resume, an env named on the command line must be the saved run's. (`check_given_flags`
    cannot tell an env equal to the recipe's default, or the one a preset was built for, from an
    absent flag.) A run directory that cannot be resumed is left to `train` to report."""
    run_dir = run_dir_of(cfg)
    try:
        saved = read_saved_config(run_dir)
    except (ConfigError, CheckpointError):
        return
    if cfg.env != saved.env:
        _refuse(run_dir, [f"--env {cfg.env} (saved: {saved.env})"])


def imports_module(env: str, given: str | None) -> str | None:
    """Why an env id read from a file must not be built, or None: gymnasium imports the module of
    an id "module:Id", and a file may come from anywhere, so it may name one only if the user
    names the same id (`given`)."""
    if ":" not in env or env == given:
        return None
    return f"names env {env!r}, which imports the module {env.split(':')[0]!r}"


def check_env_import(given: str, saved: str, run_dir: Path) -> None:
    """A saved config may name an env that imports a module only if the command line names it."""
    reason = imports_module(saved, given)
    if reason:
        raise ConfigError(
            f"cannot resume {run_dir}: its {CONFIG} {reason}; pass --env {saved} if you trust it"
        )


SAVED_VALUES = {"step": int, "ep_length": int, "ep_return": float, "last_eval": float}
"""The plain values a checkpoint of the loop holds, and their types (an int is a valid float)."""


def check_saved_values(state: dict, path: Path) -> None:
    """The checkpoint's plain values are of their types, the counts >= 0: a crafted (re-signed)
    file gets one line, not a traceback later."""
    for key, kind in SAVED_VALUES.items():
        value = state.get(key)
        valid = isinstance(value, int if kind is int else int | float) and type(value) is not bool
        if not valid or (kind is int and value < 0):
            raise CheckpointError(f"checkpoint {path} holds an invalid {key}: {value!r}")


def check_fits(state: dict, cfg: TrainConfig, agent: nn.Module, path: Path) -> None:
    """The checkpoint `state` was saved by a run of `cfg`'s environment and network shapes."""
    run = state.get("run")  # absent in checkpoints written before issue 16
    if run is not None and run["env"] != cfg.env:
        raise ConfigError(
            f"cannot resume: {path} was saved by a run on {run['env']}, but its {CONFIG} says "
            f"{cfg.env}"
        )
    saved, built = state["agent"]["modules"], agent.state_dict()
    wrong = [k for k in built if k in saved and saved[k].shape != built[k].shape]
    missing = [k for k in built if k not in saved]
    extra = [k for k in saved if k not in built]
    if not (wrong or missing or extra):
        return
    if wrong:
        k = wrong[0]
        first = f"{k} is {tuple(saved[k].shape)} there, {tuple(built[k].shape)} for the config"
    elif missing:
        first = f"the config builds {missing[0]}, which the checkpoint lacks"
    else:
        first = f"the checkpoint holds {extra[0]}, which the config does not build"
    count = len(wrong) + len(missing) + len(extra)
    more = f" ({count} tensors differ)" if count > 1 else ""
    raise ConfigError(f"cannot resume: {path} does not fit its {CONFIG}: {first}{more}")
