"""Speed of the agents and of the training loop, one subcommand per measurement:

    python benchmarks/speed.py update        # QSM presets against SB3 SAC: update and act ms
    python benchmarks/speed.py algorithms    # the crossq-critic preset with t1 / d2 / d3 switches
    python benchmarks/speed.py revisions --base REV   # this checkout against a git revision
    python benchmarks/speed.py critic        # the critic alone: plain against batch renorm
    python benchmarks/speed.py profile       # where one update's time goes
    python benchmarks/speed.py flops         # one update against this CPU's matmul throughput
    python benchmarks/speed.py loop          # whole-loop env steps/s, QSM against SAC
    python benchmarks/speed.py checkpoint    # what one replay-buffer checkpoint costs

`python benchmarks/speed.py COMMAND --help` says what each one measures and how. The agents are
timed side by side in one process on Hopper-v5 sizes (benchmarks/timing/common.py); the figures
are on docs/speed.md. Bad input ends with one `error: ...` line and exit status 2.
`python benchmarks/update_speed.py` is `speed.py update`.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.cli import Command, run_commands
from timing import algorithms, checkpoint, critic, flops, loop, profile, revisions, update

MEASUREMENTS = {
    "update": update,
    "algorithms": algorithms,
    "revisions": revisions,
    "critic": critic,
    "profile": profile,
    "flops": flops,
    "loop": loop,
    "checkpoint": checkpoint,
}


def main(args: Sequence[str] | None = None) -> None:
    commands = {name: Command(m.Args, m.main, m.__doc__) for name, m in MEASUREMENTS.items()}
    run_commands(commands, __doc__, args)


if __name__ == "__main__":
    main()
