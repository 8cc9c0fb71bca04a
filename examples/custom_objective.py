"""A second published actor objective, defined and registered in this file alone, trained by the
library's own loop: DIPO (Yang et al., "Policy Representation via Diffusion Probability Model for
Reinforcement Learning", 2023, arXiv 2305.13122).

    python examples/custom_objective.py --env Pendulum-v1 --steps 5000
    python examples/custom_objective.py --agent.objective qsm      # the same run with QSM

DIPO improves the replay actions instead of differentiating Q through the policy: each action of
the batch is moved a few small steps up grad_a Q(s, a) (staying in the action box), and the
denoiser is fit to the moved actions by the ordinary denoising (behaviour-cloning) loss. The
policy is a plain diffusion model of better-than-replay actions, so DDPM samples it as trained.
Two simplifications against the paper's code: it takes Adam steps on the actions and writes the
moved actions back into a copy of the replay buffer (so moves accumulate over updates); here each
update takes `--dipo.gradient-steps` steps of fixed length `--dipo.step-size` along the gradient
direction, and nothing is written back.

Every other piece (critic, targets, optimisers, replay, evaluation, checkpoints, the command line)
is the library's. The DIPO settings below are this file's, not the run config's: config.json
does not record them, so resume a run with the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Annotated

import tyro
from torch import Tensor

from diffpolicy.objectives import action_gradient, bc_loss
from diffpolicy.rl import AgentConfig, TrainConfig, register_objective
from diffpolicy.rl.run.cli import parse
from diffpolicy.rl.run.loop import train_from_cli


@dataclass(frozen=True)
class DIPOConfig:
    """DIPO's action-gradient settings."""

    step_size: float = 0.1
    """Length of one move of an action along grad_a Q (actions live in [-1, 1])."""
    gradient_steps: int = 10
    """Moves per update (DIPO's code takes 20 Adam steps of rate 0.03 on the actions)."""

    def __post_init__(self) -> None:
        if not self.step_size > 0 or self.gradient_steps < 1:
            raise ValueError("dipo.step_size must be > 0 and dipo.gradient_steps >= 1")


def improve_actions(critic, obs: Tensor, actions: Tensor, dipo: DIPOConfig) -> Tensor:
    """DIPO's action gradient: `gradient_steps` moves of length `step_size` up grad_a Q (the
    smaller Q of the ensemble, as DIPO uses), each kept inside the action box [-1, 1]."""
    moved = actions
    for _ in range(dipo.gradient_steps):
        grad, _ = action_gradient(critic, obs, moved, reduction="min")  # no gradient to the critic
        direction = grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        moved = (moved + dipo.step_size * direction).clamp(-1.0, 1.0)
    return moved


def dipo_loss(agent, batch, dipo: DIPOConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """The actor loss the agent calls as `loss(agent, batch)`: move the replay actions, then fit
    the denoiser to them by denoising."""
    moved = improve_actions(agent.critic, batch.obs, batch.actions, dipo)
    schedule = agent.policy.sampler.schedule
    loss, metrics = bc_loss(agent.policy.denoiser, schedule, batch.obs, moved, agent.cfg.prediction)
    metrics["dipo_action_shift"] = (moved - batch.actions).norm(dim=-1).mean()
    return loss, metrics


def example_run(env: str = "Pendulum-v1") -> TrainConfig:
    """A small, quick run: 128-wide networks, learning rates 1e-3 (as RL Zoo uses on Pendulum),
    1000 warm-up steps, 5 evaluation episodes every 1000 steps."""
    agent = AgentConfig(
        objective="dipo",
        actor_hidden=(128, 128),
        critic_hidden=(128, 128),
        actor_lr=1e-3,
        critic_lr=1e-3,
    )
    return TrainConfig(
        env=env,
        steps=5000,
        warmup_steps=1000,
        eval_every=1000,
        eval_episodes=5,
        checkpoint_every=5000,
        log_every=500,
        agent=agent,
    )


@dataclass
class Args:
    run: Annotated[TrainConfig, tyro.conf.arg(name="")] = field(default_factory=example_run)
    """The run: every flag of the recipes (--env, --steps, --agent.*, ...)."""
    dipo: DIPOConfig = field(default_factory=DIPOConfig)


# From here on "dipo" is a valid `AgentConfig.objective` and `--agent.objective` value.
register_objective("dipo", partial(dipo_loss, dipo=DIPOConfig()), replace=True)


def main(args: list[str] | None = None):
    defaults = Args()
    parsed = parse(Args, defaults, description=__doc__, args=args)
    # Register again with the settings the command line chose.
    register_objective("dipo", partial(dipo_loss, dipo=parsed.dipo), replace=True)
    return train_from_cli(parsed.run, defaults=defaults.run)


if __name__ == "__main__":
    main()
