"""Refusing a run whose replay buffer and batches cannot fit in memory, before it writes anything.

A batch size of 2 * 10**7 passes every range check, yet its first update asks for tens of GiB and
the process is killed (or the allocation fails) after the run directory was written. The estimate
below is a lower bound, so a run that fits is not refused: the replay buffer's rows, one batch's
rows, and the inputs of every layer of one forward pass of the denoiser or of the critic members
(the larger: an update trains them one after the other), which their backward pass must keep. An
update holds about twice that, or more.
"""

from __future__ import annotations

import torch

from diffpolicy.rl.agent.agent import make_denoiser
from diffpolicy.rl.run.validation import fail

FLOAT = 4
"""Bytes of a float32."""


def row_bytes(obs_dim: int, act_dim: int) -> int:
    """One transition in the replay buffer: obs, action, reward, next obs, two flags."""
    return FLOAT * (2 * obs_dim + act_dim + 1) + 2


def activation_floats(cfg, obs_dim: int, act_dim: int) -> int:
    """Floats one sample's forward pass feeds into the layers of the denoiser, or of the critic
    members, whichever is more."""
    with torch.device("meta"):  # shapes only: no weights allocated
        denoiser = make_denoiser(obs_dim, act_dim, cfg)
    actor = sum(m.in_features for m in denoiser.modules() if isinstance(m, torch.nn.Linear))
    critic = obs_dim + act_dim + sum(cfg.critic_hidden)
    return max(actor, cfg.critic_members * critic)


def available_memory(device: torch.device) -> int | None:
    """Bytes free on a CUDA device, or available in the host's memory (None: unknown)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux: the check is skipped
        return None


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def check_memory(train_cfg, obs_dim: int, act_dim: int, device: torch.device) -> None:
    """ConfigError, naming the larger of batch_size and buffer_size, if the replay buffer and one
    update's batch need more than the memory available on `device`."""
    available = available_memory(device)
    if available is None:
        return
    cfg = train_cfg.agent
    replay = min(train_cfg.buffer_size, train_cfg.steps) * row_bytes(obs_dim, act_dim)
    per_sample = row_bytes(obs_dim, act_dim) + FLOAT * activation_floats(cfg, obs_dim, act_dim)
    batch = cfg.batch_size * per_sample
    if replay + batch <= available:
        return
    field, value = (
        ("agent.batch_size", cfg.batch_size)
        if batch >= replay
        else ("buffer_size", train_cfg.buffer_size)
    )
    fail(
        field,
        value,
        f"the replay buffer ({_size(replay)}) and one update's batch (at least {_size(batch)}) "
        f"need more than the {_size(available)} of memory available on {device.type}",
    )
