"""diffpolicy: diffusion-model policy building blocks for off-policy RL, built around Q-score
matching (Psenka et al., ICML 2024).

The main names are exported here (`from diffpolicy import Agent, make_schedule`); the rest lives
in the subpackages: schedules, samplers, nets, objectives and rl. The exports are imported on
first use, so `import diffpolicy.schedules` does not pull in gymnasium and MuJoCo.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "diffpolicy.schedules": ("NoiseSchedule", "make_schedule"),
    "diffpolicy.samplers": ("Clipping", "DDIMSampler", "DDPMSampler", "LangevinSampler", "Sampler"),
    "diffpolicy.nets": ("CriticEnsemble", "Denoiser", "EMA", "soft_update"),
    "diffpolicy.objectives": ("QSMConfig", "bc_loss", "dql_loss", "qsm_loss", "td_loss"),
    "diffpolicy.rl": (
        "Agent",
        "AgentConfig",
        "DiffusionPolicy",
        "ReplayBuffer",
        "TrainConfig",
        "TrainedPolicy",
        "load_policy",
        "make_env",
        "register_critic",
        "register_objective",
        "register_sampler",
        "save_policy",
        "train",
    ),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'diffpolicy' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]
