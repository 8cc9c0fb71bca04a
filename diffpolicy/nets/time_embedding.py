"""Embeddings of the integer diffusion timestep, so a network never sees t as a raw float."""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor, nn

TimeEmbeddingName = Literal["sinusoidal", "fourier"]
TIME_EMBEDDINGS: tuple[str, ...] = get_args(TimeEmbeddingName)


class SinusoidalEmbedding(nn.Module):
    """Transformer-style fixed features [sin(t w_k), cos(t w_k)], w_k = max_period^(-k / half)."""

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"embedding dim must be even and >= 2, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        """t: (batch,) integer or float timesteps -> (batch, dim)."""
        angles = t.to(self.freqs.dtype)[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class FourierFeatures(nn.Module):
    """Random Fourier features [cos(2 pi t W), sin(2 pi t W)] with learnable W ~ N(0, std^2),
    as the QSM reference embeds time (32 frequencies -> 64 features)."""

    def __init__(self, dim: int, std: float = 0.2, learnable: bool = True) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"embedding dim must be even and >= 2, got {dim}")
        weight = torch.randn(dim // 2) * std
        self.weight = nn.Parameter(weight, requires_grad=learnable)
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        """t: (batch,) timesteps -> (batch, dim)."""
        angles = 2 * math.pi * t.to(self.weight.dtype)[:, None] * self.weight[None, :]
        return torch.cat([angles.cos(), angles.sin()], dim=-1)


def time_embedding(name: str, dim: int) -> nn.Module:
    """A time embedding by name; unknown names raise ValueError listing the valid ones."""
    if name == "sinusoidal":
        return SinusoidalEmbedding(dim)
    if name == "fourier":
        return FourierFeatures(dim)
    raise ValueError(f"unknown time embedding {name!r}; valid: {', '.join(TIME_EMBEDDINGS)}")
