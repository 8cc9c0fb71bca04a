"""How bang-bang a trained policy is: the share of action coordinates at the bounds.

    python benchmarks/action_saturation.py /work/runs/mujoco/Hopper-v5/qsm-reference/seed0 [...]

For each run directory (a diffpolicy run with config.json and checkpoint.pt), loads the agent,
draws --observations states uniformly from its replay buffer, acts on them as evaluation does
(explore=False: the diffusion sample without the exploration noise) and prints the share of
coordinates with |a| >= --bound, the mean |a| and the mean per-coordinate std of the sampled
actions at one state (how much the diffusion sample itself varies), one line per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
import tyro
from einops import rearrange, repeat

from diffpolicy.rl import Agent, ReplayBuffer, config_from_json, load_checkpoint


@dataclass
class Args:
    run_dirs: Annotated[tuple[Path, ...], tyro.conf.Positional]
    """Run directories to inspect."""
    observations: int = 2000
    """Replay states to act on."""
    samples_per_state: int = 16
    """Diffusion samples per state for the spread figure."""
    bound: float = 0.99
    """|a| at or above this counts as at the bound."""
    seed: int = 0


@torch.no_grad()
def saturation(run_dir: Path, args: Args) -> dict[str, float]:
    cfg = config_from_json((run_dir / "config.json").read_text())
    state = load_checkpoint(run_dir / "checkpoint.pt")
    buffer_state = state["buffer"]
    obs_dim, act_dim = buffer_state["obs"].shape[1], buffer_state["actions"].shape[1]
    agent = Agent(obs_dim, act_dim, cfg.agent)
    agent.load_training_state(state["agent"])
    buffer = ReplayBuffer(obs_dim, act_dim, buffer_state["capacity"])
    buffer.load_state_dict(buffer_state)
    gen = torch.Generator().manual_seed(args.seed)
    obs = buffer.sample(args.observations, gen).obs
    actions = agent.act(obs, explore=False, generator=gen)
    spread_obs = repeat(obs[:200], "b d -> (b n) d", n=args.samples_per_state)
    spread = rearrange(
        agent.act(spread_obs, explore=False, generator=gen),
        "(b n) d -> b n d",
        n=args.samples_per_state,
    )
    return {
        "step": state["step"],
        "at_bound": (actions.abs() >= args.bound).float().mean().item(),
        "mean_abs": actions.abs().mean().item(),
        "sample_std": spread.std(dim=1).mean().item(),
    }


def main(args: Args) -> None:
    torch.set_num_threads(1)
    print("run_dir,step,at_bound,mean_abs,sample_std")
    for run_dir in args.run_dirs:
        r = saturation(Path(run_dir), args)
        print(
            f"{run_dir},{r['step']},{r['at_bound']:.3f},{r['mean_abs']:.3f},{r['sample_std']:.3f}"
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
