"""How far a trained run's critic is from the returns its policy gets.

    python benchmarks/critic_bias.py RUN_DIR [RUN_DIR ...] [--episodes 10] [--seed 0]

For each diffpolicy run directory (config.json and checkpoint.pt), loads the last checkpoint,
runs --episodes evaluation episodes as the training loop evaluates (env k reset with --seed + k,
the diffusion sample without exploration noise) and prints one CSV row: the evaluation return
and length, the critic's mean Q over the visited state-actions, their mean discounted
return-to-go, the bias (Q minus return-to-go), the bias over |return-to-go| and the number of
states counted (`diffpolicy.rl.value_bias`: all states of terminated episodes, those at least
the horizon before a truncation). Runs of this version log the same figures at every evaluation
(value_bias.csv); this reads runs that predate it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
import tyro
from action_saturation import load_agent

from diffpolicy.rl import evaluate, make_env


@dataclass
class Args:
    run_dirs: Annotated[tuple[Path, ...], tyro.conf.Positional]
    """Run directories to read."""
    episodes: int = 10
    """Evaluation episodes per run."""
    seed: int = 0
    """Env k is reset with seed + k; the policy's sample is seeded with it too."""


def measure(run_dir: Path, episodes: int, seed: int) -> dict:
    """`evaluate`'s result, with its "value" figures, for the run's last checkpoint."""
    agent, _, env = load_agent(run_dir)
    envs = [make_env(env) for _ in range(episodes)]
    gen = torch.Generator().manual_seed(seed)
    try:
        return evaluate(
            envs,
            lambda o: agent.act(o, False, gen),
            seed,
            value=agent.q_estimate,
            gamma=agent.cfg.gamma,
        )
    finally:
        for e in envs:
            e.close()


def main(args: Args) -> None:
    torch.set_num_threads(1)
    print("run_dir,return,length,q_mean,return_to_go_mean,bias,normalised_bias,states")
    for run_dir in args.run_dirs:
        result = measure(Path(run_dir), args.episodes, args.seed)
        v = result["value"]
        print(
            f"{run_dir},{result['return_mean']:.1f},{result['length_mean']:.1f},"
            f"{v['q_mean']:.1f},{v['return_to_go_mean']:.1f},{v['bias']:.1f},"
            f"{v['normalised_bias']:.3f},{v['states']}",
            flush=True,
        )


if __name__ == "__main__":
    main(tyro.cli(Args))
