"""How bang-bang a trained policy is, and how the same weights act under another sampler.

    python benchmarks/action_saturation.py RUN_DIR [RUN_DIR ...] [--samplers ddpm langevin]
        [--episodes 5]

For each run directory (a diffpolicy run with config.json and checkpoint.pt) and each sampler
(the agent's denoiser and critic as trained; only the acting chain swapped: "ddpm" and "langevin"
with the AgentConfig settings of the run, i.e. its DDPM/DDIM chain or its Langevin steps/step size,
falling back to the AgentConfig defaults), draws --observations states uniformly from the run's
replay buffer, acts on them as evaluation does (explore=False: the diffusion sample without
exploration noise) and prints one CSV row:

- at_bound: share of action coordinates with |a| >= --bound;
- mean_abs: mean |a|;
- sample_std: mean per-coordinate std of --samples-per-state actions at one state (how much the
  sample itself varies);
- return: mean evaluation return over --episodes episodes (0: skipped), env k reset with seed
  --seed + k, as the training loop's evaluation does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
import tyro
from einops import rearrange, repeat

from diffpolicy.rl import (
    Agent,
    ReplayBuffer,
    config_from_json,
    evaluate,
    load_checkpoint,
    make_env,
)
from diffpolicy.rl.agent import make_sampler


@dataclass
class Args:
    run_dirs: Annotated[tuple[Path, ...], tyro.conf.Positional]
    """Run directories to inspect."""
    samplers: tuple[Literal["trained", "ddpm", "langevin"], ...] = ("trained",)
    """Acting chains to try: the run's own ("trained"), DDPM, Langevin."""
    observations: int = 2000
    """Replay states to act on."""
    samples_per_state: int = 16
    """Diffusion samples per state for the spread figure (on the first 200 states)."""
    bound: float = 0.99
    """|a| at or above this counts as at the bound."""
    episodes: int = 0
    """Evaluation episodes per sampler (0: no evaluation)."""
    seed: int = 0


def load_agent(run_dir: Path) -> tuple[Agent, ReplayBuffer, str]:
    """The run's agent and replay buffer at its last checkpoint, and its env name."""
    cfg = config_from_json((run_dir / "config.json").read_text())
    state = load_checkpoint(run_dir / "checkpoint.pt")
    saved = state["buffer"]
    obs_dim, act_dim = saved["obs"].shape[1], saved["actions"].shape[1]
    agent = Agent(obs_dim, act_dim, cfg.agent)
    agent.load_training_state(state["agent"])
    buffer = ReplayBuffer(obs_dim, act_dim, saved["capacity"])
    buffer.load_state_dict(saved)
    return agent, buffer, cfg.env


@torch.no_grad()
def probe(agent: Agent, buffer: ReplayBuffer, env: str, args: Args) -> dict[str, float]:
    gen = torch.Generator().manual_seed(args.seed)
    obs = buffer.sample(args.observations, gen).obs
    actions = agent.act(obs, explore=False, generator=gen)
    spread_obs = repeat(obs[:200], "b d -> (b n) d", n=args.samples_per_state)
    spread = rearrange(
        agent.act(spread_obs, explore=False, generator=gen),
        "(b n) d -> b n d",
        n=args.samples_per_state,
    )
    result = {
        "at_bound": (actions.abs() >= args.bound).float().mean().item(),
        "mean_abs": actions.abs().mean().item(),
        "sample_std": spread.std(dim=1).mean().item(),
        "return": float("nan"),
    }
    if args.episodes > 0:
        envs = [make_env(env) for _ in range(args.episodes)]
        result["return"] = evaluate(envs, lambda o: agent.act(o, False, gen), args.seed)[
            "return_mean"
        ]
        for e in envs:
            e.close()
    return result


def main(args: Args) -> None:
    torch.set_num_threads(1)
    print("run_dir,sampler,at_bound,mean_abs,sample_std,return")
    for run_dir in args.run_dirs:
        agent, buffer, env = load_agent(Path(run_dir))
        trained = agent.policy.sampler
        for name in args.samplers:
            agent.policy.sampler = (
                trained
                if name == "trained"
                else make_sampler(dataclasses.replace(agent.cfg, sampler=name))
            )
            r = probe(agent, buffer, env, args)
            print(
                f"{run_dir},{name},{r['at_bound']:.3f},{r['mean_abs']:.3f},"
                f"{r['sample_std']:.3f},{r['return']:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main(tyro.cli(Args))
