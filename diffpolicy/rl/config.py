"""The typed run configuration shared by every recipe, and its JSON round trip."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from diffpolicy.objectives import QSMConfig
from diffpolicy.rl.agent import AgentConfig


@dataclass
class TrainConfig:
    """One training run: environment, budget, bookkeeping and the agent."""

    env: str = "Hopper-v5"
    """Gymnasium id (Hopper-v5, HalfCheetah-v5, ...) or DeepMind Control domain-task."""
    steps: int | None = None
    """Total environment steps (agent steps; with action repeat each is several sim steps).
    Default: 100000 for a new run; on --resume, the saved run's budget."""
    seed: int = 0
    """Seeds torch, numpy, the training env and (offset) the evaluation envs."""
    run_dir: Path | None = None
    """Where config, metrics and checkpoints go (default: runs/<env>/<objective>/seed<seed>)."""
    device: str = "cpu"
    """Torch device for networks and the replay buffer ("cpu", "cuda", "cuda:1")."""
    resume: bool = False
    """Continue the run in run_dir from its checkpoint. Its saved config is used, except steps
    (if given), device, threads and progress, which come from the command line."""
    threads: int = 1
    """torch.set_num_threads: one thread per run is the fastest use of a small CPU."""
    warmup_steps: int = 10_000
    """Uniform random actions (and no updates) for this many first steps."""
    updates_per_step: int = 1
    """Gradient updates per environment step after warm-up."""
    eval_every: int = 5_000
    """Evaluate every this many env steps."""
    eval_episodes: int = 10
    """Episodes per evaluation, each on its own separately seeded env, without exploration noise."""
    checkpoint_every: int = 10_000
    """Save a checkpoint every this many steps (also at the end and on SIGINT/SIGTERM)."""
    log_every: int = 1_000
    """Write training metrics every this many steps."""
    buffer_size: int = 1_000_000
    """Replay capacity (allocated as min(buffer_size, steps))."""
    action_repeat: int = 1
    """Repeat each action this many simulator steps (DeepMind Control only)."""
    progress: bool = True
    """Show a progress bar."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """The agent and its actor objective."""

    def __post_init__(self) -> None:
        for name in (
            "threads",
            "updates_per_step",
            "eval_every",
            "eval_episodes",
            "checkpoint_every",
            "log_every",
            "buffer_size",
            "action_repeat",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.run_dir is not None:
            self.run_dir = Path(self.run_dir)

    def default_run_dir(self) -> Path:
        return Path("runs") / self.env / self.agent.objective / f"seed{self.seed}"


def config_to_json(cfg: TrainConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, default=str)


def config_from_json(text: str) -> TrainConfig:
    """Inverse of `config_to_json`; ValueError if the text is not a config of this version."""
    try:
        data = json.loads(text)
        agent = dict(data.pop("agent"))
        agent["qsm"] = QSMConfig(**agent["qsm"])
        for key in ("actor_hidden", "critic_hidden"):
            agent[key] = tuple(agent[key])
        return TrainConfig(**data, agent=AgentConfig(**agent))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"not a diffpolicy run config ({type(err).__name__}: {err})") from err
