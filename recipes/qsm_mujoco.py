"""Train a QSM diffusion policy on a gymnasium MuJoCo task.

    python recipes/qsm_mujoco.py --env Hopper-v5 --steps 100000 --seed 0
    python recipes/qsm_mujoco.py --preset reference --env Hopper-v5    # the paper's settings
    python recipes/qsm_mujoco.py --run-dir runs/Hopper-v5/qsm/seed0 --resume

A run starts from a named preset (`diffpolicy.rl.agent.presets`, listed below); every other flag
overrides it. Bad input ends with one `error: ...` line (docs/bad_input.md).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # offscreen rendering; set before mujoco is imported

from diffpolicy.rl.agent.presets import MUJOCO_PRESETS  # noqa: E402
from diffpolicy.rl.run.cli import run_preset_recipe  # noqa: E402


def main() -> None:
    run_preset_recipe(MUJOCO_PRESETS, "best", "Hopper-v5", __doc__)


if __name__ == "__main__":
    main()
