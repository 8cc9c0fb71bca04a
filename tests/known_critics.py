"""A critic ensemble with known values, for checking objectives by hand."""

from __future__ import annotations

import torch
from torch import Tensor, nn

CENTRES = torch.tensor([[0.5, 0.5], [-0.5, 0.5]], dtype=torch.float64)


def min_q(actions: Tensor) -> Tensor:
    """min_i -||a - c_i||^2 over the two centres, written out: (batch, 2) -> (batch,)."""
    return torch.stack([-(actions - c).square().sum(-1) for c in CENTRES.to(actions)]).min(0).values


class TwoCentres(nn.Module):
    """Member i: Q_i(s, a) = -||a - c_i||^2 on 2-D actions. The members disagree, so their
    minimum and their mean rank actions differently."""

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        centres = CENTRES.to(actions)
        return -(actions.unsqueeze(0) - centres.unsqueeze(1)).square().sum(-1)

    @staticmethod
    def reduce(q: Tensor, how: str) -> Tensor:
        return q.min(0).values if how == "min" else q.mean(0)
