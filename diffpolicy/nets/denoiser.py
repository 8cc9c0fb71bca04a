"""The observation-conditioned denoiser: (a_t, t, obs) -> prediction of a_t's shape."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from diffpolicy.nets.layers import Activation, ResidualMLP, mlp
from diffpolicy.nets.time_embedding import TimeEmbeddingName, time_embedding


class Denoiser(nn.Module):
    """MLP on concat[a_t, obs, embed(t)], the QSM reference's layout.

    The time embedding (Fourier by default) passes through a small MLP first. With
    `residual_blocks > 0` the trunk is IDQL's residual LayerNorm MLP of width hidden[0] instead.

    Two shortcuts give the same values to float rounding at a fraction of the cost:
    - `num_levels` = T: the time MLP runs once on the T levels and rows are gathered by t, instead
      of once per batch row; a timestep tensor that holds one value broadcast over the batch
      (stride 0, as the samplers pass it) is embedded once in any case.
    - `bind(obs)`: the observation's share of the first layer computed once for a whole sampling
      chain, which calls the denoiser K times on the same observations.
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
        num_levels: int | None = None,
    ) -> None:
        super().__init__()
        if obs_dim < 0 or act_dim < 1:
            raise ValueError(f"need obs_dim >= 0 and act_dim >= 1, got {obs_dim}, {act_dim}")
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden widths must be a non-empty list of ints >= 1, got {hidden}")
        if num_levels is not None and num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {num_levels}")
        self.obs_dim, self.act_dim, self.num_levels = obs_dim, act_dim, num_levels
        self.time_net = nn.Sequential(
            time_embedding(time_embedding_name, time_dim),
            mlp(time_dim, time_hidden[:-1], time_hidden[-1], act),
        )
        in_dim = act_dim + obs_dim + time_hidden[-1]
        if residual_blocks > 0:
            self.trunk: nn.Module = ResidualMLP(in_dim, hidden[0], residual_blocks, act_dim, act)
        else:
            self.trunk = mlp(in_dim, hidden, act_dim, act, layer_norm)

    def embed_time(self, t: Tensor) -> Tensor:
        """t (batch,) integer timesteps -> time features (batch, time_hidden[-1])."""
        if t.ndim == 1 and t.shape[0] > 1 and t.stride(0) == 0:
            return self.embed_time(t[:1]).expand(t.shape[0], -1)
        if self.num_levels is not None and t.shape[0] > self.num_levels:
            levels = torch.arange(self.num_levels, device=t.device)
            return self.time_net(levels)[t]
        return self.time_net(t)

    def forward(self, a_t: Tensor, t: Tensor, obs: Tensor | None) -> Tensor:
        """a_t: (batch, act_dim); t: (batch,) integer timesteps; obs: (batch, obs_dim) or None when
        obs_dim == 0.  Returns (batch, act_dim) in the parameterisation it was trained for."""
        self._check_obs(obs, a_t.shape[0])
        parts = [a_t, self.embed_time(t)]
        if self.obs_dim:
            parts.insert(1, obs)
        # In the input's dtype: under autocast the layers compute in bfloat16, the output does not.
        return self.trunk(torch.cat(parts, dim=-1)).to(a_t.dtype)

    def bind(self, obs: Tensor | None) -> Callable[[Tensor, Tensor, Tensor | None], Tensor]:
        """A denoise function for the samplers with `obs` fixed: equal to `self(a_t, t, obs)` to
        float rounding, with the first layer's obs term (and bias) computed here once. The
        returned function checks that it is called with this same `obs`."""
        first, rest = self._split_trunk()
        a, o = self.act_dim, self.obs_dim
        w_act, w_obs, w_time = (
            first.weight[:, :a],
            first.weight[:, a : a + o],
            first.weight[:, a + o :],
        )
        if self.obs_dim:
            if obs is None:
                raise ValueError(
                    f"bind: this denoiser is conditioned on observations of size {self.obs_dim}; "
                    "got obs=None"
                )
            self._check_obs(obs, obs.shape[0])
            base = torch.addmm(first.bias, obs, w_obs.T)
        else:
            base = first.bias

        # The time term of the last timestep tensor seen: Langevin passes one tensor every step.
        last: list[tuple[Tensor, Tensor]] = []

        def denoise(a_t: Tensor, t: Tensor, cond: Tensor | None) -> Tensor:
            if cond is not obs:
                raise ValueError("a bound denoiser must be called with the obs it was bound to")
            if not last or last[0][0] is not t:
                last[:] = [(t, self.embed_time(t) @ w_time.T)]
            return rest(torch.addmm(base, a_t, w_act.T) + last[0][1]).to(a_t.dtype)

        return denoise

    def _split_trunk(self) -> tuple[nn.Linear, Callable[[Tensor], Tensor]]:
        """The trunk's first Linear and the function that applies everything after it."""
        if isinstance(self.trunk, ResidualMLP):
            trunk = self.trunk
            return trunk.inp, lambda h: trunk.out(trunk.blocks(h))
        return self.trunk[0], self.trunk[1:]

    def _check_obs(self, obs: Tensor | None, batch: int) -> None:
        if self.obs_dim and (obs is None or obs.shape != (batch, self.obs_dim)):
            got = None if obs is None else tuple(obs.shape)
            raise ValueError(f"obs must have shape ({batch}, {self.obs_dim}), got {got}")
