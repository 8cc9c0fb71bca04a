"""Train a QSM diffusion policy on a DeepMind Control task (named domain-task).

    python recipes/qsm_dmc.py --env cheetah-run --steps 100000 --seed 0
    python recipes/qsm_dmc.py --env cheetah-run --run-dir runs/cheetah-run/qsm/seed0 --resume

Same agent, loop, flags, presets and run directory as recipes/qsm_mujoco.py (`--preset best`,
`crossq-critic`, `fast`, `langevin-t3`, `polyak-ln`, `polyak-ln-rewnorm`, `reference`), with
action repeat 1 unless `--action-repeat N` says otherwise. The default is the best preset, as on
MuJoCo: it divides the rewards by their running mean |r|, so DeepMind Control's rewards (in [0, 1]
per step) meet the same temperature as MuJoCo's. The presets without that normalisation keep a
temperature set for MuJoCo's reward units, too cold here; `--preset reference` takes the
reference's alpha = 120 on quadruped and humanoid tasks, as the reference suggests. Any flag
overrides the preset.
DMC's 1000-step episode end is a time-limit truncation, not a terminal.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering; set before mujoco is imported

from diffpolicy.rl.agent.presets import DMC_PRESETS  # noqa: E402
from diffpolicy.rl.run.cli import run_preset_recipe  # noqa: E402


def main() -> None:
    run_preset_recipe(DMC_PRESETS, "best", "cheetah-run", __doc__)


if __name__ == "__main__":
    main()
