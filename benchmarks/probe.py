"""Probes of trained runs, one subcommand each; each reads diffpolicy run directories (config.json
and checkpoint.pt) and prints one CSV row per run (and sampler):

    python benchmarks/probe.py saturation RUN_DIR [RUN_DIR ...] [--samplers trained langevin]
    python benchmarks/probe.py bias RUN_DIR [RUN_DIR ...] [--episodes 10]
    python benchmarks/probe.py greed RUN_DIR [RUN_DIR ...] [--temperatures 1 0.5 0] [--best-of 1]

`saturation`: how bang-bang a trained policy is, and how the same weights act under another
sampler. `bias`: how far the critic is from the returns its policy gets. `greed`: how the
evaluation return of the same weights depends on the evaluation temperature and best-of-N.
`python benchmarks/probe.py COMMAND --help` says more. Bad input ends with one `error: ...` line
and exit status 2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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
from diffpolicy.rl.agent.agent import make_sampler
from harness.cli import BadInput, Command, check_listed, run_commands

RunDirs = Annotated[tuple[Path, ...], tyro.conf.Positional]


@dataclass
class Saturation:
    """How bang-bang a trained policy is, and how the same weights act under another sampler.

    For each run directory and each sampler (the agent's denoiser and critic as trained; only the
    acting chain swapped: "ddpm" and "langevin" with the AgentConfig settings of the run, i.e.
    its DDPM/DDIM chain or its Langevin steps/step size, falling back to the AgentConfig
    defaults), draws --observations states uniformly from the run's replay buffer, acts on them
    as evaluation does (explore=False: the diffusion sample without exploration noise) and prints
    one CSV row: at_bound, the share of action coordinates with |a| >= --bound; mean_abs, the
    mean |a|; sample_std, the mean per-coordinate std of --samples-per-state actions at one state
    (how much the sample itself varies); return, the mean evaluation return over --episodes
    episodes (0: skipped), env k reset with seed --seed + k, as the training loop's evaluation
    does."""

    run_dirs: RunDirs
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


@dataclass
class Bias:
    """How far a trained run's critic is from the returns its policy gets.

    For each run directory, loads the last checkpoint, runs --episodes evaluation episodes as the
    training loop evaluates (env k reset with --seed + k, the diffusion sample without
    exploration noise) and prints one CSV row: the evaluation return and length, the critic's
    mean Q over the visited state-actions, their mean discounted return-to-go, the bias (Q minus
    return-to-go), the bias over |return-to-go| and the number of states counted
    (`diffpolicy.rl.run.value_bias`: all states of terminated episodes, those at least the horizon
    before a truncation). Runs of this version log the same figures at every evaluation
    (value_bias.csv); this reads runs that predate it."""

    run_dirs: RunDirs
    """Run directories to read."""
    episodes: int = 10
    """Evaluation episodes per run."""
    seed: int = 0
    """Env k is reset with seed + k; the policy's sample is seeded with it too."""


@dataclass
class Greed:
    """How the evaluation return of a trained run depends on how greedily it acts.

    For each run directory (its last checkpoint), each --temperatures T and each --best-of N,
    runs --episodes evaluation episodes as the training loop evaluates (env k reset with --seed +
    k, no exploration noise) with `eval_temperature` T and `eval_best_of` N, and prints one CSV
    row: the mean, std and min of the returns. The weights are the same in every row; only the
    acting changes (T = 1, N = 1: the policy as trained; T = 0: no sampling noise after the
    chain's initial draw; N > 1: the best of N samples by the critic's mean Q)."""

    run_dirs: RunDirs
    """Run directories to read."""
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.0)
    """Evaluation temperatures to try (each >= 0)."""
    best_of: tuple[int, ...] = (1,)
    """Samples per state to pick the best of by Q (each >= 1)."""
    episodes: int = 10
    """Evaluation episodes per row."""
    seed: int = 0
    """Env k is reset with seed + k; the policy's sample is seeded with it too."""


def check_run_dirs(run_dirs: Sequence[Path]) -> None:
    """BadInput unless each is a diffpolicy run directory with a checkpoint."""
    check_listed("RUN_DIRS", run_dirs)
    for run_dir in run_dirs:
        for name in ("config.json", "checkpoint.pt"):
            if not (Path(run_dir) / name).is_file():
                raise BadInput(f"{run_dir}: no {name} (not a diffpolicy run directory)")


def load_agent(run_dir: Path, **acting) -> tuple[Agent, ReplayBuffer, str]:
    """The run's agent and replay buffer at its last checkpoint, and its env name; `acting`
    replaces AgentConfig fields that only change how it acts (eval_temperature, eval_best_of)."""
    cfg = config_from_json((run_dir / "config.json").read_text())
    cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, **acting))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    saved = state["buffer"]
    obs_dim, act_dim = saved["obs"].shape[1], saved["actions"].shape[1]
    agent = Agent(obs_dim, act_dim, cfg.agent)
    agent.load_training_state(state["agent"])
    buffer = ReplayBuffer(obs_dim, act_dim, saved["capacity"])
    buffer.load_state_dict(saved)
    return agent, buffer, cfg.env


def _evaluate(agent: Agent, env: str, episodes: int, seed: int, gen, **value) -> dict:
    """`evaluate` on `episodes` fresh envs, the agent acting without exploration noise."""
    envs = [make_env(env) for _ in range(episodes)]
    try:
        return evaluate(envs, lambda o: agent.act(o, False, gen), seed, **value)
    finally:
        for e in envs:
            e.close()


@torch.no_grad()
def saturation_row(agent: Agent, buffer: ReplayBuffer, env: str, args: Saturation) -> dict:
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
        result["return"] = _evaluate(agent, env, args.episodes, args.seed, gen)["return_mean"]
    return result


def saturation(args: Saturation) -> None:
    check_run_dirs(args.run_dirs)
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
            r = saturation_row(agent, buffer, env, args)
            print(
                f"{run_dir},{name},{r['at_bound']:.3f},{r['mean_abs']:.3f},"
                f"{r['sample_std']:.3f},{r['return']:.1f}",
                flush=True,
            )


def measure_bias(run_dir: Path, episodes: int, seed: int) -> dict:
    """`evaluate`'s result, with its "value" figures, for the run's last checkpoint."""
    agent, _, env = load_agent(run_dir)
    gen = torch.Generator().manual_seed(seed)
    return _evaluate(agent, env, episodes, seed, gen, value=agent.q_estimate, gamma=agent.cfg.gamma)


def bias(args: Bias) -> None:
    check_run_dirs(args.run_dirs)
    torch.set_num_threads(1)
    print("run_dir,return,length,q_mean,return_to_go_mean,bias,normalised_bias,states")
    for run_dir in args.run_dirs:
        result = measure_bias(Path(run_dir), args.episodes, args.seed)
        v = result["value"]
        print(
            f"{run_dir},{result['return_mean']:.1f},{result['length_mean']:.1f},"
            f"{v['q_mean']:.1f},{v['return_to_go_mean']:.1f},{v['bias']:.1f},"
            f"{v['normalised_bias']:.3f},{v['states']}",
            flush=True,
        )


def greed(args: Greed) -> None:
    if not all(t >= 0 for t in args.temperatures):
        raise BadInput(f"--temperatures must each be >= 0, got {args.temperatures}")
    if not all(n >= 1 for n in args.best_of):
        raise BadInput(f"--best-of must each be >= 1, got {args.best_of}")
    if args.episodes < 1:
        raise BadInput(f"--episodes must be >= 1, got {args.episodes}")
    check_run_dirs(args.run_dirs)
    torch.set_num_threads(1)
    print("run_dir,temperature,best_of,return_mean,return_std,return_min")
    for run_dir in args.run_dirs:
        for temperature in args.temperatures:
            for best_of in args.best_of:
                agent, _, env = load_agent(
                    Path(run_dir), eval_temperature=temperature, eval_best_of=best_of
                )
                gen = torch.Generator().manual_seed(args.seed)
                r = _evaluate(agent, env, args.episodes, args.seed, gen)
                print(
                    f"{run_dir},{temperature:g},{best_of},{r['return_mean']:.1f},"
                    f"{r['return_std']:.1f},{r['return_min']:.1f}",
                    flush=True,
                )


def main(args: Sequence[str] | None = None) -> None:
    commands = {
        "saturation": Command(Saturation, saturation),
        "bias": Command(Bias, bias),
        "greed": Command(Greed, greed),
    }
    run_commands(commands, __doc__, args)


if __name__ == "__main__":
    main()
