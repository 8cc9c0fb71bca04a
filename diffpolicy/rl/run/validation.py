"""Checks of run configs: a bad value is refused when the config is built (from the command line,
from config.json or in code), in one line that names the field, the value and the valid range:

    agent.tau = 2.0: must lie in (0, 1]
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, NoReturn

import torch


class ConfigError(ValueError):
    """A config value outside its valid range, or a config that cannot run; one-line message."""


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str | Path) else str(value)


def fail(field: str, value: Any, rule: str) -> NoReturn:
    raise ConfigError(f"{field} = {_show(value)}: {rule}")


# --- types ---------------------------------------------------------------------------------------
def check_types(obj: Any, prefix: str = "") -> None:
    """Every field of the dataclass `obj` holds a value of its annotated type (an int is a valid
    float; a list is a valid tuple). Catches hand-edited config.json values such as "0.99"."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if not _matches(value, hint):
            fail(prefix + f.name, value, f"must be {_describe(hint)}")


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin is tuple:  # tuple[int, ...] or tuple[float, float]
        if not isinstance(value, tuple | list):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(map(_matches, value, args))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is Path:
        return isinstance(value, str | Path)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin is tuple and args[-1] is Ellipsis:
        return f"a list of {_describe(args[0]).split(' ', 1)[1]}s"
    if origin is tuple:
        return f"a list of {len(args)} values: " + ", ".join(_describe(a) for a in args)
    names = {type(None): "None", float: "a number", int: "an integer", bool: "true or false"}
    return names.get(hint, f"a {getattr(hint, '__name__', hint)}")


# --- ranges --------------------------------------------------------------------------------------
def at_least(field: str, value: int | float, low: int | float) -> None:
    if not value >= low:
        fail(field, value, f"must be >= {low}")


def finite_positive(field: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        fail(field, value, "must be a finite number > 0")


def finite_at_least(field: str, value: float, low: float) -> None:
    if not (math.isfinite(value) and value >= low):
        fail(field, value, f"must be a finite number >= {low}")


def in_range(field: str, value: float, low: float, high: float, open_low=False, open_high=False):
    """`value` in the interval from low to high, each end closed unless said open."""
    above = value > low if open_low else value >= low
    below = value < high if open_high else value <= high
    if not (above and below):
        fail(
            field,
            value,
            f"must lie in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}",
        )


def up_to(field: str, value: int, limit_field: str, limit: int) -> None:
    """1 <= value <= limit, where another field sets the limit."""
    if not 1 <= value <= limit:
        fail(field, value, f"must lie in [1, {limit_field} = {limit}]")


def widths(field: str, value: tuple[int, ...]) -> None:
    if len(value) == 0 or min(value) < 1:
        fail(field, tuple(value), "must be one or more layer widths, each >= 1")


# --- the agent and the run -----------------------------------------------------------------------
def check_agent_config(cfg: Any) -> None:
    """All of `AgentConfig`'s rules (its `__post_init__` calls this)."""
    p = "agent."
    check_types(cfg, p)
    if cfg.sampler == "langevin" and cfg.objective == "dql":
        fail(
            p + "sampler",
            cfg.sampler,
            "objective dql backpropagates through the sampler: use ddpm or ddim",
        )
    if cfg.alpha_target_std is not None:
        finite_positive(p + "alpha_target_std", cfg.alpha_target_std)
    elif cfg.alpha_control != "loss":
        fail(p + "alpha_control", cfg.alpha_control, "needs alpha_target_std: alpha is fixed")
    elif cfg.alpha_max is not None:
        fail(p + "alpha_max", cfg.alpha_max, "needs alpha_target_std: alpha is fixed")
    if cfg.alpha_max is not None and not (
        math.isfinite(cfg.alpha_max) and cfg.alpha_max >= cfg.qsm.alpha
    ):
        rule = f"must be a finite number >= qsm.alpha ({cfg.qsm.alpha}), where alpha starts"
        fail(p + "alpha_max", cfg.alpha_max, rule)
    finite_positive(p + "alpha_lr", cfg.alpha_lr)
    at_least(p + "alpha_spread_states", cfg.alpha_spread_states, 1)
    finite_at_least(p + "dql_eta", cfg.dql_eta, 0)
    for name in ("dime_alpha", "dacer_alpha", "dacer_alpha_lr", "dacer_noise_scale"):
        finite_positive(p + name, getattr(cfg, name))
    for name in ("dime_target_entropy", "dacer_target_entropy"):
        value = getattr(cfg, name)
        if value is not None and not math.isfinite(value):
            fail(p + name, value, "must be a finite number")
    at_least(p + "dacer_entropy_every", cfg.dacer_entropy_every, 1)
    at_least(p + "dacer_entropy_samples", cfg.dacer_entropy_samples, 3)
    at_least(p + "qvpo_samples", cfg.qvpo_samples, 2)
    finite_at_least(p + "qvpo_entropy_weight", cfg.qvpo_entropy_weight, 0)
    at_least(p + "diffusion_steps", cfg.diffusion_steps, 1)
    at_least(p + "langevin_steps", cfg.langevin_steps, 1)
    finite_positive(p + "langevin_step_size", cfg.langevin_step_size)
    finite_at_least(p + "langevin_init_scale", cfg.langevin_init_scale, 0)
    if cfg.target_sampler_steps is not None:
        limit = "langevin_steps" if cfg.sampler == "langevin" else "diffusion_steps"
        up_to(p + "target_sampler_steps", cfg.target_sampler_steps, p + limit, getattr(cfg, limit))
    if cfg.sample_steps is not None:
        up_to(p + "sample_steps", cfg.sample_steps, p + "diffusion_steps", cfg.diffusion_steps)
    in_range(p + "ddim_eta", cfg.ddim_eta, 0, 1)
    widths(p + "actor_hidden", cfg.actor_hidden)
    widths(p + "critic_hidden", cfg.critic_hidden)
    at_least(p + "critic_members", cfg.critic_members, 2)
    at_least(p + "critic_renorm_warmup", cfg.critic_renorm_warmup, 0)
    if cfg.critic_batch_renorm and cfg.critic_layer_norm:
        fail(p + "critic_layer_norm", True, "choose one of it and critic_batch_renorm")
    if cfg.critic_batch_renorm and cfg.critic_input_renorm:
        fail(p + "critic_input_renorm", True, "critic_batch_renorm renormalises the input already")
    if not all(0 <= beta < 1 for beta in cfg.critic_betas):
        fail(p + "critic_betas", tuple(cfg.critic_betas), "each must lie in [0, 1)")
    at_least(p + "critic_residual_blocks", cfg.critic_residual_blocks, 0)
    if cfg.critic_residual_blocks and len(cfg.critic_hidden) != 1:
        rule = "needs one width in critic_hidden (the blocks' width)"
        fail(p + "critic_residual_blocks", cfg.critic_residual_blocks, rule)
    if cfg.critic_residual_blocks and cfg.critic_batch_renorm:
        rule = "the blocks normalise by LayerNorm: drop critic_batch_renorm"
        fail(p + "critic_residual_blocks", cfg.critic_residual_blocks, rule)
    if cfg.critic_value_bins != 0:
        if cfg.critic_value_bins < 2:
            fail(p + "critic_value_bins", cfg.critic_value_bins, "must be 0 (scalar Q) or >= 2")
        finite_positive(p + "critic_reward_bound", cfg.critic_reward_bound)
        if cfg.gamma >= 1:
            fail(p + "critic_value_bins", cfg.critic_value_bins, "needs gamma < 1 (bounded values)")
    elif cfg.critic_reward_bound != 10.0:
        fail(p + "critic_reward_bound", cfg.critic_reward_bound, "needs critic_value_bins >= 2")
    at_least(p + "actor_every", cfg.actor_every, 1)
    at_least(p + "reset_every", cfg.reset_every, 0)
    if cfg.target_subset is not None:
        up_to(p + "target_subset", cfg.target_subset, p + "critic_members", cfg.critic_members)
    finite_positive(p + "actor_lr", cfg.actor_lr)
    at_least(p + "actor_lr_decay_steps", cfg.actor_lr_decay_steps, 0)
    finite_positive(p + "critic_lr", cfg.critic_lr)
    at_least(p + "batch_size", cfg.batch_size, 1)
    in_range(p + "gamma", cfg.gamma, 0, 1)
    in_range(p + "tau", cfg.tau, 0, 1, open_low=True)
    finite_at_least(p + "exploration_noise", cfg.exploration_noise, 0)
    in_range(p + "ema_decay", cfg.ema_decay, 0, 1, open_high=True)
    at_least(p + "eval_best_of", cfg.eval_best_of, 1)
    finite_at_least(p + "eval_temperature", cfg.eval_temperature, 0)


MAX_SEED = 2**32 - 1
"""numpy's global seed must fit 32 bits."""
MAX_EVAL_EPISODES = 1000
"""Each evaluation episode has its own environment, all built before the run starts."""


def check_train_config(cfg: Any) -> None:
    """`TrainConfig`'s own fields (its agent checked itself when it was built)."""
    check_types(cfg)
    if not cfg.env:
        fail("env", cfg.env, "must name a gymnasium id or a DeepMind Control task")
    if cfg.steps is not None:
        at_least("steps", cfg.steps, 1)
    in_range("seed", cfg.seed, 0, MAX_SEED)
    at_least("warmup_steps", cfg.warmup_steps, 0)
    finite_positive("reward_scale", cfg.reward_scale)
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
        at_least(name, getattr(cfg, name), 1)
    if cfg.eval_episodes > MAX_EVAL_EPISODES:
        rule = f"must be <= {MAX_EVAL_EPISODES} (each runs on its own environment, built at start)"
        fail("eval_episodes", cfg.eval_episodes, rule)
    if cfg.run_dir is not None:
        check_run_dir(str(cfg.run_dir))


NAME_MAX = 255
"""Bytes in one file or folder name (ext4, APFS, NTFS and most other filesystems)."""
PATH_MAX = 4000
"""Bytes in a run directory's path: Linux takes 4096 in a path, less the run's own file names."""


def check_run_dir(path: str) -> None:
    """A folder name the run's files can be written under: not the current folder, UTF-8 text
    (config.json and TensorBoard record it), names and path within the filesystem's limits."""
    if Path(path) == Path("."):
        rule = "must name a folder; an empty --run-dir would put the run's files in the current one"
        fail("run_dir", path, rule)
    try:
        size = len(path.encode())
    except UnicodeEncodeError:
        fail("run_dir", path, "must be valid UTF-8 text: config.json and TensorBoard record it")
    longest = max(len(name.encode()) for name in Path(path).parts)
    if longest > NAME_MAX:
        rule = f"holds a name of {longest} bytes; a file or folder name has at most {NAME_MAX}"
        fail("run_dir", _cut(path), rule)
    if size > PATH_MAX:
        fail("run_dir", _cut(path), f"is {size} bytes long; it may have at most {PATH_MAX}")


def _cut(text: str, keep: int = 40) -> str:
    # A path of thousands of bytes would bury the message.
    return text if len(text) <= keep else text[:keep] + "..."


def check_device(name: str, field: str = "device") -> torch.device:
    """The torch device `name` names, if this machine has it."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        fail(field, name, "not a torch device (cpu, cuda, cuda:N or mps)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            fail(field, name, f"CUDA is not available on this machine (torch {torch.__version__})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            fail(field, name, f"this machine has {count} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            fail(field, name, "MPS is not available on this machine")
    elif device.type != "cpu":
        fail(field, name, "must be cpu, cuda, cuda:N or mps")
    return device
