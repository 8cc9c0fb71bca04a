"""Named starting configurations. Each is a TrainConfig; every field stays overridable by flag."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from diffpolicy.rl.agent.agent import AgentConfig
from diffpolicy.rl.run.config import TrainConfig

# The QSM reference README suggests alpha (M_q) of about 120 for these DeepMind Control domains
# and 50 elsewhere.
_DMC_HIGH_ALPHA_DOMAINS = ("quadruped", "humanoid")


def qsm_reference(env: str = "Hopper-v5") -> TrainConfig:
    """The QSM paper's settings: vp, T = 5, alpha = 50, 512-wide nets, DDPM acting.

    AgentConfig's defaults, as in the QSM reference implementation."""
    return TrainConfig(env=env, agent=AgentConfig())


def qsm_langevin_t3(env: str = "Hopper-v5") -> TrainConfig:
    """The Langevin actor on the reference's critic (twin Q, Polyak targets, Adam lr 3e-4).

    256-wide actor and critics (SAC's width), acting by 10 Langevin steps on the learned
    lowest-level score and drawing the critic's target actions by 3. The chain reads the score
    in the diffusion convention (`langevin_score="schedule"`), as the measured runs did: it samples
    exp(alpha / sqrt(1 - abar_0) Q) = exp(113 Q) at alpha = 50, vp, T = 5."""
    agent = AgentConfig(
        actor_hidden=(256, 256),
        critic_hidden=(256, 256),
        sampler="langevin",
        langevin_score="schedule",
        target_sampler_steps=3,
    )
    return TrainConfig(env=env, agent=agent)


def qsm_crossq_critic(env: str = "Hopper-v5") -> TrainConfig:
    """The Langevin actor on CrossQ's critic: the best preset on HalfCheetah, stuck on Hopper.

    CrossQ (Bhatt et al., ICLR 2024): batch renormalisation, current and next state-actions in
    one batch, no target network, Adam betas (0.5, 0.999) and lr 1e-3 for the critics. It won the
    50k-step critic screen and was the best preset until the 100k confirmation; near 330 on
    Hopper-v5 (docs: Experiments). Harness method `qsm-crossq-t3`."""
    cfg = qsm_langevin_t3(env)
    agent = dataclasses.replace(
        cfg.agent,
        critic_batch_renorm=True,
        critic_target_network=False,
        critic_betas=(0.5, 0.999),
        critic_lr=1e-3,
    )
    return dataclasses.replace(cfg, agent=agent)


def qsm_polyak_ln(env: str = "Hopper-v5") -> TrainConfig:
    """The Langevin actor on twin LayerNorm critics with Polyak targets and CrossQ's Adam.

    LayerNorm after each critic hidden layer, critics trained with lr 1e-3 and betas (0.5, 0.999):
    ahead of `qsm_crossq_critic` on Hopper-v5 and Walker2d-v5, behind it on HalfCheetah-v5 (docs:
    Results). Harness method `qsm-polyak-ln-crossq-adam`."""
    cfg = qsm_langevin_t3(env)
    agent = dataclasses.replace(
        cfg.agent, critic_layer_norm=True, critic_betas=(0.5, 0.999), critic_lr=1e-3
    )
    return dataclasses.replace(cfg, agent=agent)


def qsm_polyak_ln_rewnorm(env: str = "Hopper-v5") -> TrainConfig:
    """`polyak-ln` learning from rewards divided by their running mean |r|: reward-scale free.

    `AgentConfig.reward_normalization`: the critic learns r / s, s a bias-corrected running mean
    of |r| over the replay batches, so the fixed QSM temperature meets Q-gradients of the same size
    whatever the env's reward units (DeepMind Control's rewards in [0, 1] as MuJoCo's; docs:
    Experiments, 2026-12-07). Harness method `qsm-best-rewnorm`."""
    cfg = qsm_polyak_ln(env)
    return dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, reward_normalization=True))


def qsm_best(env: str = "Hopper-v5") -> TrainConfig:
    """The best configuration measured, the default: `polyak-ln-rewnorm`.

    `qsm_polyak_ln_rewnorm` has the highest minimum over Hopper-v5, HalfCheetah-v5 and Walker2d-v5
    of (mean return / SB3 SAC's mean return) at 100k steps, 3 seeds each (docs: Results), and
    learns DeepMind Control's [0, 1] rewards. Harness method `qsm-best`."""
    return qsm_polyak_ln_rewnorm(env)


def qsm_fast(env: str = "Hopper-v5") -> TrainConfig:
    """`crossq-critic` at about SB3 SAC's cost per update, learning HalfCheetah more slowly.

    1 Langevin step for the critic's target actions instead of 3, and an actor step every 3rd
    critic step (CrossQ's policy delay) (docs: Speed). Harness method `qsm-best-t1-d3` (named
    when `qsm_crossq_critic` was the best preset)."""
    cfg = qsm_crossq_critic(env)
    agent = dataclasses.replace(cfg.agent, target_sampler_steps=1, actor_every=3)
    return dataclasses.replace(cfg, agent=agent)


def _check_dmc_task(env: str) -> None:
    """Raises ValueError listing the valid names for an unknown task."""
    from diffpolicy.rl.envs.dmc import DMC_TASKS

    if env not in DMC_TASKS:
        raise ValueError(f"unknown DeepMind Control task {env!r}; valid: {', '.join(DMC_TASKS)}")


def qsm_dmc(env: str = "cheetah-run") -> TrainConfig:
    """The reference preset on a DeepMind Control task, with alpha 120 on quadruped and humanoid.

    Raises ValueError listing the valid names for an unknown task.
    """
    _check_dmc_task(env)
    cfg = qsm_reference(env)
    if env.split("-")[0] in _DMC_HIGH_ALPHA_DOMAINS:
        qsm = dataclasses.replace(cfg.agent.qsm, alpha=120.0)
        cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, qsm=qsm))
    return cfg


MUJOCO_PRESETS = {
    "best": qsm_best,
    "crossq-critic": qsm_crossq_critic,
    "fast": qsm_fast,
    "langevin-t3": qsm_langevin_t3,
    "polyak-ln": qsm_polyak_ln,
    "polyak-ln-rewnorm": qsm_polyak_ln_rewnorm,
    "reference": qsm_reference,
}
"""The presets `recipes/qsm_mujoco.py --preset NAME` starts from (its --help lists them)."""


def _on_dmc(preset: Callable[[str], TrainConfig]) -> Callable[[str], TrainConfig]:
    """A MuJoCo preset on a DeepMind Control task, unchanged (action repeat 1)."""

    def build(env: str = "cheetah-run") -> TrainConfig:
        _check_dmc_task(env)
        return preset(env)

    build.__doc__ = f"`{preset.__name__}` on a DeepMind Control task (action repeat 1)."
    return build


DMC_PRESETS = {
    **{name: _on_dmc(preset) for name, preset in MUJOCO_PRESETS.items()},
    "reference": qsm_dmc,
}
"""The presets `recipes/qsm_dmc.py --preset NAME` starts from: every MuJoCo preset, unchanged and
with action repeat 1 (each step of the agent is one control step of the task), and the reference
with the reference's alpha of 120 on quadruped and humanoid tasks."""


def preset_list(presets: dict, default: str) -> str:
    """One line per preset, `name: the first line of its docstring`, for a recipe's --help."""
    lines = [f"  {name}: {build.__doc__.splitlines()[0]}" for name, build in presets.items()]
    return f"--preset NAME (default {default}) starts from one of:\n" + "\n".join(lines)
