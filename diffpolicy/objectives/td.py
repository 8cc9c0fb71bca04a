"""The critic's temporal-difference loss, with targets from the policy's next actions."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def check_gamma(caller: str, gamma: float) -> None:
    """A discount outside [0, 1] makes the TD target grow without bound (or flip sign)."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"{caller}: gamma = {gamma}: must lie in [0, 1]")


def td_loss(
    critic: nn.Module,
    target_critic: nn.Module,
    next_action: Callable[[Tensor], Tensor],
    obs: Tensor,
    actions: Tensor,
    rewards: Tensor,
    next_obs: Tensor,
    terminated: Tensor,
    gamma: float = 0.99,
    target_subset: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over members of the mean squared error to y = r + gamma (1 - terminated) min_j Q'_j
    (of the HL-Gauss cross-entropy to y, for a critic with a value distribution).

    next_action(next_obs) -> (batch, act_dim) is called without autograd, so no gradient reaches
    the policy. Truncated transitions (time limits) are NOT terminal: they bootstrap from next_obs.
    target_subset=None takes the min over all target members (clipped double Q with 2); an int M
    takes the min over M members drawn at random (REDQ).
    rewards, terminated: (batch,); obs, next_obs: (batch, obs_dim); actions: (batch, act_dim).
    """
    check_gamma("td_loss", gamma)
    with torch.no_grad():
        q_next = target_critic(next_obs, next_action(next_obs))  # (members, batch)
        if target_subset is not None:
            if not 1 <= target_subset <= q_next.shape[0]:
                raise ValueError(f"target_subset must lie in [1, {q_next.shape[0]}]")
            # Drawn on the critics' device unless a generator says otherwise: a host-side draw
            # copied to a GPU would make every update wait for it.
            device = q_next.device if generator is None else generator.device
            pick = torch.randperm(q_next.shape[0], generator=generator, device=device)
            q_next = q_next[pick[:target_subset].to(q_next.device)]
        target = rewards + gamma * (1.0 - terminated.to(rewards.dtype)) * q_next.min(dim=0).values
    outputs = _outputs(critic, obs, actions)
    q, loss = _values(critic, outputs), _fit_loss(critic, outputs, target)  # q: (members, batch)
    # Tensors, not floats: reading them here would stall an accelerator every update.
    metrics = {
        "critic_loss": loss.detach(),
        "q_mean": q.mean().detach(),
        "target_mean": target.mean(),
    }
    return loss, metrics


# A critic may define what its loss fits (`CriticEnsemble.outputs`: values, or logits of a value
# distribution), how those read as Q values, and its loss against a target; a critic that only
# maps (obs, actions) to Q values (members, batch) is fitted by the squared error.


def _outputs(critic: nn.Module, obs: Tensor, actions: Tensor) -> Tensor:
    return critic.outputs(obs, actions) if hasattr(critic, "outputs") else critic(obs, actions)


def _values(critic: nn.Module, outputs: Tensor) -> Tensor:
    return critic.values(outputs) if hasattr(critic, "values") else outputs


def _fit_loss(critic: nn.Module, outputs: Tensor, target: Tensor) -> Tensor:
    if hasattr(critic, "fit_loss"):
        return critic.fit_loss(outputs, target)
    return (outputs - target.unsqueeze(0)).pow(2).mean(dim=1).sum()


def crossq_td_loss(
    critic: nn.Module,
    next_action: Callable[[Tensor], Tensor],
    obs: Tensor,
    actions: Tensor,
    rewards: Tensor,
    next_obs: Tensor,
    terminated: Tensor,
    gamma: float = 0.99,
) -> tuple[Tensor, dict[str, Tensor]]:
    """CrossQ's critic loss (Bhatt et al., ICLR 2024): no target network.

    (obs, actions) and (next_obs, next_action(next_obs)) go through the critic as ONE batch, so
    batch-normalising layers normalise both with the same statistics; the next half's values,
    detached, form y = r + gamma (1 - terminated) min_j Q_j(s', a'). Call it with the critic in
    training mode. Shapes as in `td_loss`.
    """
    check_gamma("crossq_td_loss", gamma)
    batch = obs.shape[0]
    with torch.no_grad():
        next_actions = next_action(next_obs)
    out_all = _outputs(critic, torch.cat([obs, next_obs]), torch.cat([actions, next_actions]))
    outputs, q_next = out_all[:, :batch], _values(critic, out_all[:, batch:].detach())
    target = rewards + gamma * (1.0 - terminated.to(rewards.dtype)) * q_next.min(dim=0).values
    q, loss = _values(critic, outputs), _fit_loss(critic, outputs, target)
    metrics = {
        "critic_loss": loss.detach(),
        "q_mean": q.mean().detach(),
        "target_mean": target.mean(),
    }
    return loss, metrics
