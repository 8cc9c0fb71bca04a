"""The command line of the benchmark programs (learning.py, speed.py, probe.py): one subcommand per
task (`PROGRAM COMMAND --flags`, `PROGRAM --help` for the list, `PROGRAM COMMAND --help` for
its flags), and bad input ending the process with one `error: ...` line on stderr and exit status
2, never a traceback (docs/bad_input.md).

tyro reports a parse error (an unknown flag or subcommand, a value that is not a number, a choice
not offered) in a box of many lines; its parse-error hook (`tyro._errors`, private in tyro 1.0)
lets us print one line instead (where a tyro version lacks the hook, its box stays, which is still
no traceback). What parsing cannot check, a command refuses by raising `BadInput`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import tyro

try:
    from tyro import _errors as tyro_errors
except ImportError:  # pragma: no cover - tyro before the hook existed
    tyro_errors = None


class BadInput(ValueError):
    """Input a command refuses: one `error: ...` line and exit status 2."""


def check_listed(flag: str, values: Sequence) -> None:
    """BadInput unless `values` (a list flag's) holds at least one value and none twice."""
    if not values:
        raise BadInput(f"{flag}: give at least one")
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    if twice:
        raise BadInput(f"{flag} {' '.join(twice)}: given twice")


def check_at_least(flag: str, values: Sequence[int], low: int) -> None:
    bad = [v for v in values if v < low]
    if bad:
        raise BadInput(f"{flag} {' '.join(map(str, bad))}: must be >= {low}")


class Command(NamedTuple):
    args: type
    """The dataclass of its flags."""
    main: Callable[[Any], None]
    """Runs the command with an instance of `args`."""
    help: str | None = None
    """Its --help text (default: the dataclass's docstring)."""


def _one_line(event) -> str | None:
    """The one-line message of a tyro parse failure (None: one we do not know, tyro's box)."""
    argument = getattr(event, "argument", None)
    flag = argument.lowered.name_or_flags[0] if argument is not None else None
    if isinstance(event, tyro_errors.UnrecognizedArgs):
        return f"unrecognized arguments: {' '.join(event.tokens)} (see --help)"
    if isinstance(event, tyro_errors.MissingArgs):
        missing = [a.arg.lowered.name_or_flags[0] for a in event.missing_arguments]
        return f"missing: {', '.join(missing)} (see --help)"
    if isinstance(event, tyro_errors.InvalidChoice):
        return f"{flag} {event.value}: must be one of: {', '.join(event.choices)}"
    if isinstance(event, tyro_errors.BadValue) and flag:
        return (
            f"{flag}: needs a value" if event.offending_value is None else f"{flag}: takes no value"
        )
    if isinstance(event, tyro_errors.InstantiationFailure):
        return f"{flag}: {event.message}" if flag else event.message
    return None


def _raise_one_line(event) -> None:
    message = _one_line(event)
    if message is not None:
        raise BadInput(message.replace("\n", " "))


def run_commands(
    commands: dict[str, Command], description: str | None, args: Sequence[str] | None = None
) -> None:
    """Run the subcommand that `args` (default: sys.argv[1:]) names with the flags that follow it;
    `--help` alone prints `description`. Bad input ends the process with one `error: ...` line
    and exit status 2."""
    args = list(sys.argv[1:] if args is None else args)
    hook = tyro_errors.on_parse_error(_raise_one_line) if tyro_errors else contextlib.nullcontext()
    try:
        if args[:1] in (["-h"], ["--help"]):
            print(description)
            return
        if not args or args[0] not in commands:
            given = f"unknown command {args[0]!r}" if args else "a command is needed"
            raise BadInput(f"{given}, one of: {', '.join(commands)} (see --help)")
        command = commands[args[0]]
        prog = f"{sys.argv[0]} {args[0]}"
        with hook:
            cfg = tyro.cli(command.args, description=command.help, args=args[1:], prog=prog)
        command.main(cfg)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
