"""The observation-conditioned denoiser: (a_t, t, obs) -> prediction of a_t's shape."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from diffpolicy.nets.layers import Activation, ResidualMLP, mlp
from diffpolicy.nets.time_embedding import TimeEmbeddingName, time_embedding


class Denoiser(nn.Module):
    """MLP on concat[a_t, obs, embed(t)], the QSM reference's layout.

    The time embedding (Fourier by default) passes through a small MLP first. With
    `residual_blocks > 0` the trunk is IDQL's residual LayerNorm MLP of width hidden[0] instead.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (512, 512),
        act: Activation = "mish",
        time_embedding_name: TimeEmbeddingName = "fourier",
        time_dim: int = 64,
        time_hidden: Sequence[int] = (128, 128),
        residual_blocks: int = 0,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        if obs_dim < 0 or act_dim < 1:
            raise ValueError(f"need obs_dim >= 0 and act_dim >= 1, got {obs_dim}, {act_dim}")
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.time_net = nn.Sequential(
            time_embedding(time_embedding_name, time_dim),
            mlp(time_dim, time_hidden[:-1], time_hidden[-1], act),
        )
        in_dim = act_dim + obs_dim + time_hidden[-1]
        if residual_blocks > 0:
            self.trunk: nn.Module = ResidualMLP(in_dim, hidden[0], residual_blocks, act_dim, act)
        else:
            self.trunk = mlp(in_dim, hidden, act_dim, act, layer_norm)

    def forward(self, a_t: Tensor, t: Tensor, obs: Tensor | None) -> Tensor:
        """a_t: (batch, act_dim); t: (batch,) integer timesteps; obs: (batch, obs_dim) or None when
        obs_dim == 0.  Returns (batch, act_dim) in the parameterisation it was trained for."""
        parts = [a_t, self.time_net(t)]
        if self.obs_dim:
            if obs is None or obs.shape != (a_t.shape[0], self.obs_dim):
                got = None if obs is None else tuple(obs.shape)
                raise ValueError(f"obs must have shape ({a_t.shape[0]}, {self.obs_dim}), got {got}")
            parts.insert(1, obs)
        return self.trunk(torch.cat(parts, dim=-1))
