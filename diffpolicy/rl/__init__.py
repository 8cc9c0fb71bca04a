"""The off-policy machinery shared by all recipes, in four folders: `agent/` (the algorithm, its
components and presets), `envs/` (environments), `run/` (a training run: config, loop, resume,
command line) and `storage/` (replay, checkpoints, logs, files, the run lock). The names users
need are exported here."""

from diffpolicy.rl.agent.agent import Agent, AgentConfig, make_sampler
from diffpolicy.rl.agent.components import register_critic, register_objective, register_sampler
from diffpolicy.rl.agent.policy import DiffusionPolicy
from diffpolicy.rl.envs.adapters import BoxActionAdapter, make_env
from diffpolicy.rl.run.config import TrainConfig, config_from_json, config_to_json
from diffpolicy.rl.run.evaluate import evaluate
from diffpolicy.rl.run.loop import train, train_from_cli
from diffpolicy.rl.run.pretrained import TrainedPolicy, load_policy, save_policy
from diffpolicy.rl.storage.buffer import Batch, ReplayBuffer
from diffpolicy.rl.storage.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

__all__ = [
    "Agent",
    "AgentConfig",
    "Batch",
    "BoxActionAdapter",
    "CheckpointError",
    "DiffusionPolicy",
    "ReplayBuffer",
    "TrainConfig",
    "TrainedPolicy",
    "config_from_json",
    "config_to_json",
    "evaluate",
    "load_checkpoint",
    "load_policy",
    "make_env",
    "make_sampler",
    "register_critic",
    "register_objective",
    "register_sampler",
    "save_checkpoint",
    "save_policy",
    "train",
    "train_from_cli",
]
