"""Train a QSM diffusion policy on a DeepMind Control task (named domain-task).

    python recipes/qsm_dmc.py --env cheetah-run --steps 100000 --seed 0
    python recipes/qsm_dmc.py --env cheetah-run --run-dir runs/cheetah-run/qsm/seed0 --resume

Same agent, loop, flags and run directory as recipes/qsm_mujoco.py. Defaults are the QSM reference
preset (`--preset reference`, the only one for DMC so far), with alpha = 120 on quadruped and
humanoid tasks (as the reference suggests); any flag overrides the preset. DMC's 1000-step episode
end is a time-limit truncation, not a terminal.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering; set before mujoco is imported

from diffpolicy.rl.cli import run_preset_recipe  # noqa: E402
from diffpolicy.rl.presets import qsm_dmc  # noqa: E402


def main() -> None:
    run_preset_recipe({"reference": qsm_dmc}, "reference", "cheetah-run", __doc__)


if __name__ == "__main__":
    main()
