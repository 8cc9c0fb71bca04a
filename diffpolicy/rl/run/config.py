"""The typed run configuration shared by every recipe, and its JSON round trip."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from diffpolicy.objectives import QSMConfig
from diffpolicy.rl.agent.agent import AgentConfig
from diffpolicy.rl.run.validation import ConfigError, check_train_config


@dataclass
class TrainConfig:
    """One training run: environment, budget, bookkeeping and the agent."""

    env: str = "Hopper-v5"
    """Gymnasium id (Hopper-v5, HalfCheetah-v5, ...) or DeepMind Control domain-task."""
    steps: int | None = None
    """Total environment steps (agent steps; with action repeat each is several sim steps).
    None: 100000 for a new run; on --resume, the saved run's budget."""
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
    """Uniform random actions (and no updates) for this many first steps. Must be below steps: a
    new run whose warm-up would use its whole budget is refused with one error line."""
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
    reward_scale: float = 1.0
    """The agent learns from the env's rewards times this (a check that an agent does not depend
    on the reward's units). Training and evaluation returns are logged in the env's own units."""
    progress: bool = True
    """Show a progress bar."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """The agent and its actor objective."""

    def __post_init__(self) -> None:
        if isinstance(self.run_dir, str):
            self.run_dir = Path(self.run_dir)
        check_train_config(self)

    def default_run_dir(self) -> Path:
        return Path("runs") / self.env / self.agent.objective / f"seed{self.seed}"


def config_to_json(cfg: TrainConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, default=str)


def config_from_json(text: str) -> TrainConfig:
    """Inverse of `config_to_json`. Fields missing from the text (written by an older version)
    take their defaults; an unknown field, a value of the wrong type or out of range raises a
    one-line ConfigError naming it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"not valid JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("agent", {}), dict):
        raise ConfigError("not a diffpolicy run config (expected a JSON object with an agent)")
    agent = _known(AgentConfig, data.pop("agent", {}), "agent.")
    qsm = agent.pop("qsm", {})
    if not isinstance(qsm, dict):
        raise ConfigError(f"agent.qsm = {qsm!r}: must be an object of QSM settings")
    try:
        agent["qsm"] = QSMConfig(**_known(QSMConfig, qsm, "agent.qsm."))
    except ValueError as err:  # QSMConfig, a layer below, names its fields qsm.*
        raise ConfigError(f"agent.{err}") from err
    return TrainConfig(**_known(TrainConfig, data, ""), agent=AgentConfig(**agent))


def _known(cls: type, values: dict, prefix: str) -> dict:
    """`values` as keyword arguments of `cls`; ConfigError for a field `cls` does not have."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown field {prefix}{unknown[0]}")
    # JSON has lists where the config has tuples (network widths, Adam betas).
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def flat_fields(cfg) -> dict[str, object]:
    """A config's leaf values by dotted name ("agent.qsm.alpha"), for comparing two configs."""
    flat: dict[str, object] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            flat.update({f"{f.name}.{k}": v for k, v in flat_fields(value).items()})
        else:
            flat[f.name] = value
    return flat
