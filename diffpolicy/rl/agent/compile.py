"""Optional torch.compile of the agent's networks, with a fallback to eager where it fails."""

from __future__ import annotations

import warnings

import torch
from torch import nn


def compile_networks(agent: nn.Module, obs_dim: int, act_dim: int) -> bool:
    """Compile the denoiser's time MLP and trunk, and the critics, in place (`Module.compile`
    keeps parameter names, so checkpoints are the same as eager ones).

    A compiler that cannot run here (no C++ toolchain for the CPU backend, an unsupported
    platform) is found by one small forward pass now, not in the middle of training: the
    networks are then left eager and a warning says why. Returns whether compilation is on.
    """
    denoiser = agent.policy.denoiser
    modules = [denoiser.time_net, denoiser.trunk, agent.critic]
    if agent.target_critic is not None:
        modules.append(agent.target_critic)
    if agent.ema is not None:
        modules += [agent.ema.model.time_net, agent.ema.model.trunk]
    for module in modules:
        module.compile(dynamic=False)
    try:
        device = next(agent.parameters()).device
        with torch.no_grad():
            obs = torch.zeros(2, obs_dim, device=device)
            act = torch.zeros(2, act_dim, device=device)
            denoiser(act, torch.zeros(2, dtype=torch.long, device=device), obs)
            agent.critic(obs, act)
    except Exception as err:  # any backend failure means: run eager
        for module in modules:
            module._compiled_call_impl = None
        warnings.warn(
            f"torch.compile is unavailable here ({type(err).__name__}: {str(err)[:200]}); "
            "the agent runs eager",
            stacklevel=2,
        )
        return False
    return True
