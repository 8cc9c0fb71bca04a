"""The methods a sweep can run, and the command line of one run."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

REPO = Path(__file__).resolve().parents[2]


class Method(NamedTuple):
    prefix: tuple[str, ...]
    """Script (relative to the repository root; "{suite}" is replaced) and leading arguments."""
    flags: tuple[str, ...] = ()
    """Flags after the common ones."""
    family: Literal["diffpolicy", "sac"] = "diffpolicy"
    """Which pass-through list it gets: --extra (diffpolicy) or --sac-extra (sac)."""


_QSM_RECIPE = ("recipes/qsm_{suite}.py",)
_SB3_BASELINE = ("benchmarks/sac_baseline.py",)
_WIDTH_256 = ("--agent.actor-hidden", "256", "256", "--agent.critic-hidden", "256", "256")
# Batch-mean gradient normalisation, the gradient taken at clipped actions, LayerNorm critics:
# three fixes later work uses for the bounds-seeking policy of the QSM reference (its actions sit
# on the box's bounds: docs/experiments/2026-11-21-reference-hopper.md).
_NORMALISED = (
    "--agent.qsm.grad-normalization",
    "batch_mean",
    "--agent.qsm.clip-actions-for-grad",
    "--agent.critic-layer-norm",
)
# The chain reads the score in the diffusion convention (AgentConfig.langevin_score), as the best
# variant was first run: the sampled law is exp(alpha / sqrt(1 - abar_0) Q), 2.26x alpha = 50.
_LANGEVIN_AS_FIRST_RUN = ("--agent.sampler", "langevin", "--agent.langevin-score", "schedule")

_DDPM = ("--agent.sampler", "ddpm", "--agent.langevin-score", "trained")

# Every variant is stated against the reference preset, whatever the recipe's default preset is.
_REFERENCE = ("--preset", "reference")
# CrossQ's critic (Bhatt et al., ICLR 2024): batch renormalisation, current and next state-actions
# in one batch, no target network, Adam betas (0.5, 0.999) and lr 1e-3; 3 Langevin steps for the
# critic's target actions.
_CROSSQ_T3 = (
    "--agent.target-sampler-steps", "3", "--agent.critic-batch-renorm",
    "--agent.no-critic-target-network", "--agent.critic-betas", "0.5", "0.999",
    "--agent.critic-lr", "1e-3",
)  # fmt: skip

# The preset that was `best` when the issue-14 screens below ran (`presets.qsm_crossq_critic`);
# the `qsm-best-*` screens are variants of it, and "qsm-best" in their comments means it.
_CROSSQ_CRITIC = ("--preset", "crossq-critic")

# What sb3-contrib CrossQ's critic has beyond the crossq-critic preset: 1024-wide layers and the
# policy delay of 3.
_CROSSQ_EXACT = ("--agent.critic-hidden", "1024", "1024", "--agent.actor-every", "3")

METHODS: dict[str, Method] = {
    "qsm-reference": Method(_QSM_RECIPE, _REFERENCE),
    # The recipe's default preset, `diffpolicy.rl.presets.qsm_best` (README, "Results"); its
    # 100k runs ran as `qsm-polyak-ln-crossq-adam` (benchmarks/results/mujoco/PROVENANCE.md).
    "qsm-best": Method(_QSM_RECIPE, ("--preset", "best")),
    # Screening variants (one seed, short budget; README "Variant screen"). 256-wide nets as SAC's.
    "qsm-w256": Method(_QSM_RECIPE, _REFERENCE + _WIDTH_256),
    "qsm-w256-norm": Method(_QSM_RECIPE, _REFERENCE + _WIDTH_256 + _NORMALISED),
    # Acts, and draws TD-target actions, by Langevin dynamics on the learned lowest-level score
    # instead of the DDPM chain.
    "qsm-w256-langevin": Method(_QSM_RECIPE, _REFERENCE + _WIDTH_256 + _LANGEVIN_AS_FIRST_RUN),
    # The same with 3 Langevin steps (instead of 10) for the critic's target actions.
    "qsm-w256-langevin-t3": Method(
        _QSM_RECIPE,
        _REFERENCE + _WIDTH_256 + _LANGEVIN_AS_FIRST_RUN + ("--agent.target-sampler-steps", "3"),
    ),
    # Issue 14's screen: CrossQ's critic under that actor (the AgentConfig of
    # `presets.qsm_crossq_critic`, the best preset until the 100k confirmation, whose runs are
    # filed here); then with CrossQ's policy delay (the actor steps every 3rd update).
    "qsm-crossq-t3": Method(
        _QSM_RECIPE, _REFERENCE + _WIDTH_256 + _LANGEVIN_AS_FIRST_RUN + _CROSSQ_T3
    ),
    "qsm-crossq-t3-d3": Method(
        _QSM_RECIPE,
        _REFERENCE
        + _WIDTH_256
        + _LANGEVIN_AS_FIRST_RUN
        + _CROSSQ_T3
        + ("--agent.actor-every", "3"),
    ),
    # Issue 14 point 3: the best preset with alpha tuned online so that the acting chain's
    # per-dimension action std approaches 0.089, a Gaussian's std at SAC's target entropy (-1 nat
    # per dimension); diffpolicy.objectives.temperature.
    "qsm-best-adaptive": Method(
        _QSM_RECIPE, (*_CROSSQ_CRITIC, "--agent.alpha-target-std", "0.089")
    ),
    # The best preset's Langevin chain reads the score in the diffusion convention, so its law is
    # exp(113 Q) at alpha = 50 and its steps grow with grad Q's scale (h * |score| of order 1 by
    # 20k steps on HalfCheetah). Two ways to keep the chain's temperature from following the
    # critic's scale, and the issue-14 reading that makes alpha mean exp(alpha Q):
    "qsm-best-gradnorm": Method(
        _QSM_RECIPE, (*_CROSSQ_CRITIC, "--agent.qsm.grad-normalization", "batch_mean")
    ),
    "qsm-best-trained": Method(_QSM_RECIPE, (*_CROSSQ_CRITIC, "--agent.langevin-score", "trained")),
    # The same controller aiming at a wide policy (spread 0.3): does more exploration free Hopper?
    "qsm-best-adaptive-wide": Method(
        _QSM_RECIPE, (*_CROSSQ_CRITIC, "--agent.alpha-target-std", "0.3")
    ),
    # The 0.089 controller with the tuned alpha as the chains' temperature (alpha_control
    # "chain"), the fix for the loss-scaled controller's runaway.
    "qsm-best-adaptive-chain": Method(
        _QSM_RECIPE,
        (*_CROSSQ_CRITIC, "--agent.alpha-target-std", "0.089", "--agent.alpha-control", "chain"),
    ),
    # Issue 13: the only cheap switches that bring the best preset's update to SAC's cost
    # (benchmarks/algorithm_speed.py): 1 Langevin step for the target actions, policy delay 3.
    "qsm-best-t1-d3": Method(
        _QSM_RECIPE,
        (*_CROSSQ_CRITIC, "--agent.target-sampler-steps", "1", "--agent.actor-every", "3"),
    ),
    # Hopper: both Polyak-target variants (qsm-reference, qsm-w256-langevin) climb from 50k to
    # 100k while every qsm-best seed stays near 330. This is CrossQ's critic under exactly
    # qsm-w256-langevin's actor (10 target steps), to tell the critic from the target steps.
    "qsm-best-t10": Method(_QSM_RECIPE, (*_CROSSQ_CRITIC, "--agent.target-sampler-steps", "10")),
    # qsm-best-t10 left Hopper's 330 plateau only by standing still (1000 steps at about 1 reward
    # a step) and fell back; the Polyak-target critic's runs hop. CrossQ tunes its critic's Adam
    # (lr 1e-3, beta1 0.5) for 1024-wide critics; this is qsm-best with the reference critic's Adam
    # (lr 3e-4, betas (0.9, 0.999)) on its 256-wide CrossQ critic.
    "qsm-best-critic-adam": Method(
        _QSM_RECIPE,
        (*_CROSSQ_CRITIC, "--agent.critic-lr", "3e-4", "--agent.critic-betas", "0.9", "0.999"),
    ),
    # Every Hopper run on CrossQ's critic stays at 300-450 to 100k (qsm-crossq-t3's 3 seeds, -t10,
    # -critic-adam, -adaptive-wide), where the Polyak-target critic's runs hop. Which of CrossQ's
    # parts does HalfCheetah owe its lead to? The Polyak critic (presets.qsm_langevin_t3) with
    # CrossQ's Adam (lr 1e-3, betas (0.5, 0.999)); then with LayerNorm as well.
    "qsm-polyak-crossq-adam": Method(
        _QSM_RECIPE,
        (
            "--preset",
            "langevin-t3",
            "--agent.critic-lr",
            "1e-3",
            "--agent.critic-betas",
            "0.5",
            "0.999",
        ),
    ),
    # `presets.qsm_polyak_ln`, now `qsm_best`: its runs are filed under qsm-best.
    "qsm-polyak-ln-crossq-adam": Method(
        _QSM_RECIPE,
        (
            "--preset",
            "langevin-t3",
            "--agent.critic-layer-norm",
            "--agent.critic-lr",
            "1e-3",
            "--agent.critic-betas",
            "0.5",
            "0.999",
        ),
    ),  # fmt: skip
    # The two critics split by env: CrossQ's (no target network, batch renorm) wins HalfCheetah,
    # the LayerNorm Polyak one Hopper and Walker2d. Which part does HalfCheetah owe to the missing
    # target network? The best preset's LayerNorm critic trained by CrossQ's loss (current and
    # next state-actions in one batch, no target network).
    "qsm-ln-no-target": Method(
        _QSM_RECIPE, ("--preset", "polyak-ln", "--agent.no-critic-target-network")
    ),
    # It was not: HalfCheetah stayed below the Polyak LayerNorm critic. What batch renorm does
    # that LayerNorm does not is standardise the critic's input, feature by feature (observation
    # features span a factor of about 100 in scale; nothing else in the agent normalises them).
    # The same critic with its input batch-renormalised.
    "qsm-ln-no-target-input-renorm": Method(
        _QSM_RECIPE,
        (
            "--preset",
            "polyak-ln",
            "--agent.no-critic-target-network",
            "--agent.critic-input-renorm",
        ),
    ),
    # The same input layer on the best preset's own critic (Polyak targets, which read it with
    # Polyak-averaged running statistics): one change from `qsm-best`.
    "qsm-polyak-ln-input-renorm": Method(
        _QSM_RECIPE, ("--preset", "polyak-ln", "--agent.critic-input-renorm")
    ),
    # Issue 29 point 2: the QSM actor on exactly sb3-contrib CrossQ's critic (its defaults, read
    # from sb3_contrib/crossq: 1024x1024 ReLU critics with batch renorm, momentum 0.01, eps 1e-3,
    # 100k renorm warm-up steps, no target network, Adam lr 1e-3 betas (0.5, 0.999), policy
    # delay 3); then the same in bfloat16 mixed precision, affordable where the CPU has bfloat16
    # matmuls (AVX512-BF16, AMX) or on a GPU.
    "qsm-crossq-exact": Method(_QSM_RECIPE, (*_CROSSQ_CRITIC, *_CROSSQ_EXACT)),
    # The width between: 512-wide CrossQ critics with the policy delay (the width ladder on Hopper,
    # where the 256-wide CrossQ critic stays near 330).
    "qsm-crossq-w512-d3": Method(
        _QSM_RECIPE,
        (*_CROSSQ_CRITIC, "--agent.critic-hidden", "512", "512", "--agent.actor-every", "3"),
    ),
    "qsm-crossq-exact-bf16": Method(
        _QSM_RECIPE, (*_CROSSQ_CRITIC, *_CROSSQ_EXACT, "--agent.precision", "bfloat16")
    ),
    # Issue 29 point 1: the best preset in bfloat16 mixed precision (learns as float32 does?).
    "qsm-best-bf16": Method(_QSM_RECIPE, ("--preset", "best", "--agent.precision", "bfloat16")),
    # Issue 29 point 3: the best preset's critic with a categorical value over 101 bins of
    # [-1000, 1000] (reward bound 10, gamma 0.99), fitted by HL-Gauss cross-entropy.
    "qsm-best-hlgauss": Method(
        _QSM_RECIPE, ("--preset", "best", "--agent.critic-value-bins", "101")
    ),
    # Issue 29 point 5: the best preset learning from rewards divided by their running mean |r|
    # (AgentConfig.reward_normalization), so that its fixed alpha means one temperature on every
    # env, whatever the reward's units.
    "qsm-best-rewnorm": Method(_QSM_RECIPE, ("--preset", "best", "--agent.reward-normalization")),
    # Issue 29 point 4: BRO's critic (one 512-wide layer with LayerNorm, then 2 residual blocks)
    # under the best preset's actor and Polyak targets.
    "qsm-best-bro": Method(
        _QSM_RECIPE,
        ("--preset", "best", "--agent.critic-hidden", "512", "--agent.critic-residual-blocks", "2"),
    ),
    # Issue 29 point 4: two critic updates per env step with every network reset each 25k
    # updates (four times in a 100k-step run), on the best preset.
    "qsm-best-utd2-reset": Method(
        _QSM_RECIPE,
        ("--preset", "best", "--updates-per-step", "2", "--agent.reset-every", "25000"),
    ),
    # Issue 30: the published online objectives on the best preset (docs/objectives/). DIME and
    # DACER backpropagate through the chain, so they act with DDPM instead of the preset's
    # Langevin chain (whose diffusion-convention score reading ddpm does not take).
    "dime-best": Method(_QSM_RECIPE, ("--preset", "best", "--agent.objective", "dime", *_DDPM)),
    "dacer-best": Method(_QSM_RECIPE, ("--preset", "best", "--agent.objective", "dacer", *_DDPM)),
    "qvpo-best": Method(_QSM_RECIPE, ("--preset", "best", "--agent.objective", "qvpo")),
    "sac": Method(_SB3_BASELINE, family="sac"),
    # sb3-contrib CrossQ with its defaults, by the same baseline script and protocol.
    "crossq": Method((*_SB3_BASELINE, "--algo", "crossq"), family="sac"),
}


def build_command(
    method: str,
    suite: str,
    env: str,
    seed: int,
    steps: int,
    run_dir: Path,
    extra: Sequence[str] = (),
    sac_extra: Sequence[str] = (),
    threads: int = 1,
) -> list[str]:
    """The argv of one new run (a resume appends --resume)."""
    spec = METHODS[method]
    script = REPO / spec.prefix[0].format(suite=suite)
    if not script.is_file():
        raise FileNotFoundError(f"method {method!r} on suite {suite!r} needs {script}")
    passthrough = sac_extra if spec.family == "sac" else extra
    cmd = [sys.executable, str(script), *spec.prefix[1:]]
    cmd += ["--env", env, "--steps", str(steps), "--seed", str(seed), "--run-dir", str(run_dir)]
    return cmd + ["--threads", str(threads), "--no-progress", *spec.flags, *passthrough]
