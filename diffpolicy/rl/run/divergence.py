"""Stopping a run whose training diverged: a non-finite loss, Q value, weight or action ends the run
at once, and nothing is written from the diverged state (the last checkpoint stays as it was).

The checks read tensors on the host, so the loop runs them only where it reads anyway: on each
action it takes (acting already copies the action to the host), and at log, evaluation and
checkpoint boundaries; never inside the update, which keeps its metrics on the device.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DivergedError(RuntimeError):
    """Training produced a non-finite value; the one-line message names it and the step."""


def check_finite(step: int, values: dict[str, Tensor | float]) -> None:
    """DivergedError naming the first of `values` that holds a NaN or an infinity."""
    for name, value in values.items():
        if not torch.isfinite(torch.as_tensor(value)).all():
            raise DivergedError(f"training diverged at step {step}: {name} is not finite")


def check_actions(step: int, actions: Tensor, metrics: dict, name: str = "action") -> None:
    """`actions` (on the host) are finite. If not, the error names the last update's first
    non-finite metric, where the divergence most likely began, or else the actions."""
    if not torch.isfinite(actions).all():
        check_finite(step, {**metrics, name: actions})


def check_agent(step: int, agent: nn.Module, metrics: dict) -> None:
    """The last update's metrics and every weight and buffer of `agent` are finite."""
    check_finite(step, {**metrics, **agent.state_dict()})
