"""The recipes' command line: bad input ends the process with one `error: ...` line on stderr and
exit status 2, never a traceback or a multi-line box.

tyro reports its parse errors (a value that is not a number, an unknown choice or flag, a value a
config's checks refuse) in a box of many lines. Its parse-error hook (`tyro._errors`, private in
tyro 1.0) lets us print one line instead; where a tyro version lacks the hook, tyro's own box
stays, which is still no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import tyro

from diffpolicy.rl.agent.presets import preset_list
from diffpolicy.rl.run.config import TrainConfig
from diffpolicy.rl.run.errors import exit_with, one_line_errors
from diffpolicy.rl.run.loop import train_from_cli
from diffpolicy.rl.run.resume import check_named_env
from diffpolicy.rl.run.validation import ConfigError

try:
    from tyro import _errors as tyro_errors
except ImportError:  # pragma: no cover - tyro before the hook existed
    tyro_errors = None

T = TypeVar("T")


class _Rejected(Exception):
    pass


def _one_line(event) -> str | None:
    """The one-line message of a tyro parse failure (None: one we do not know, tyro's box)."""
    argument = getattr(event, "argument", None)
    # Name the field as config errors do: --agent.actor-hidden is agent.actor_hidden.
    flag = argument.lowered.name_or_flags[0].lstrip("-").replace("-", "_") if argument else None
    if isinstance(event, tyro_errors.InstantiationFailure):
        # QSMConfig, a layer below the run config, names its fields qsm.*; here they are agent.qsm.*
        message = "agent." + event.message if event.message.startswith("qsm.") else event.message
        return f"{flag}: {message}" if flag else message
    if isinstance(event, tyro_errors.InvalidChoice):
        return f"{flag} = {event.value!r}: must be one of: {', '.join(event.choices)}"
    if isinstance(event, tyro_errors.UnrecognizedArgs):
        return f"unrecognized arguments: {' '.join(event.tokens)} (see --help)"
    return None


def _raise_one_line(event) -> None:
    message = _one_line(event)
    if message is not None:
        raise _Rejected(message.replace("\n", " "))


def parse(cls: type[T], default: T | None = None, description: str | None = None, args=None) -> T:
    """`tyro.cli(cls, ...)`, exiting with one `error: ...` line (status 2) on bad input."""
    hook = tyro_errors.on_parse_error(_raise_one_line) if tyro_errors else contextlib.nullcontext()
    try:
        with hook:
            return tyro.cli(cls, default=default, description=description, args=args)
    except (_Rejected, ConfigError) as err:
        exit_with(str(err), 2)


def run_recipe(default: TrainConfig | None = None, description: str | None = None, args=None):
    """Parse a `TrainConfig` from the command line (starting from `default`) and train it."""
    args = sys.argv[1:] if args is None else args
    cfg = parse(TrainConfig, default, description, args)
    _check_env_on_resume(cfg, args)
    return train_from_cli(cfg, defaults=default)


def _check_env_on_resume(cfg: TrainConfig, args: list[str]) -> None:
    """`--env` given on --resume must name the saved run's env, whatever its value."""
    if cfg.resume and any(arg == "--env" or arg.startswith("--env=") for arg in args):
        with one_line_errors():
            check_named_env(cfg)


def parse_with_preset(
    presets: dict[str, Callable[[str], TrainConfig]],
    default_preset: str,
    default_env: str,
    description: str | None = None,
    args: list[str] | None = None,
) -> tuple[TrainConfig, TrainConfig]:
    """A `TrainConfig` from the command line, starting from the preset `--preset NAME` names
    (built for the `--env` given), and that preset itself. `--preset` is not a config field, so it
    is read first and the rest is parsed against the preset; --help lists the presets."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=default_preset)
    pre.add_argument("--env", default=default_env)
    args = sys.argv[1:] if args is None else args
    known, rest = pre.parse_known_args(args)
    if known.preset not in presets:
        exit_with(f"preset = {known.preset!r}: must be one of: {', '.join(presets)}")
    try:
        preset = presets[known.preset](known.env)
    except ValueError as err:
        exit_with(str(err))
    description = "\n\n".join(filter(None, [description, preset_list(presets, default_preset)]))
    cfg = parse(TrainConfig, preset, description, [*rest, "--env", known.env])
    _check_env_on_resume(cfg, args)
    return cfg, preset


def run_preset_recipe(
    presets: dict[str, Callable[[str], TrainConfig]],
    default_preset: str,
    default_env: str,
    description: str | None = None,
) -> Path:
    """`parse_with_preset`, then train (a recipe's whole main)."""
    cfg, preset = parse_with_preset(presets, default_preset, default_env, description)
    return train_from_cli(cfg, defaults=preset)
