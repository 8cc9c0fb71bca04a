"""Train a QSM diffusion policy on a gymnasium MuJoCo task.

    python recipes/qsm_mujoco.py --env Hopper-v5 --steps 100000 --seed 0
    python recipes/qsm_mujoco.py --preset reference --env Hopper-v5    # the paper's settings
    python recipes/qsm_mujoco.py --run-dir runs/Hopper-v5/qsm/seed0 --resume

--preset best (the default) starts from `diffpolicy.rl.presets.qsm_best`, the best configuration
measured (README, "Results": the Langevin actor on twin LayerNorm critics with Polyak targets);
--preset crossq-critic from the same actor on CrossQ's critic (best on HalfCheetah); --preset
reference from the QSM reference implementation's settings (vp schedule, T = 5, alpha = 50,
512x512 networks, DDPM acting, Polyak target critics); --preset fast (`presets.qsm_fast`) from
the CrossQ-critic preset at about SB3 SAC's cost per update. Every other
flag overrides the preset. Bad input ends with one `error: ...` line (docs/bad_input.md).
"""

from diffpolicy.rl.cli import run_preset_recipe
from diffpolicy.rl.presets import MUJOCO_PRESETS


def main() -> None:
    run_preset_recipe(MUJOCO_PRESETS, "best", "Hopper-v5", __doc__)


if __name__ == "__main__":
    main()
