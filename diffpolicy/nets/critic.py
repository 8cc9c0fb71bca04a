"""An ensemble of N Q-networks evaluated in one batched call."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from diffpolicy.nets.batch_renorm import EnsembleBatchRenorm
from diffpolicy.nets.layers import Activation, activation
from diffpolicy.nets.value_distribution import HLGauss

Reduction = Literal["min", "mean"]
REDUCTIONS: tuple[str, ...] = get_args(Reduction)


class EnsembleLinear(nn.Module):
    """N independent Linear layers applied together: (N, batch, in) -> (N, batch, out)."""

    def __init__(self, members: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim))
        # nn.Linear's default initialisation, member by member.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, batch, in_dim) -> (N, batch, out_dim)."""
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleResidualBlock(nn.Module):
    """BRO's residual block (Nauman et al., "Bigger, Regularized, Optimistic", NeurIPS 2024) for
    an ensemble: x + LN(W2 act(LN(W1 x))), each member with its own W1, W2; (N, batch, width)."""

    def __init__(self, members: int, width: int, act: Activation = "relu") -> None:
        super().__init__()
        self.branch = nn.Sequential(
            EnsembleLinear(members, width, width),
            nn.LayerNorm(width, elementwise_affine=False),
            activation(act),
            EnsembleLinear(members, width, width),
            nn.LayerNorm(width, elementwise_affine=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)


class CriticEnsemble(nn.Module):
    """N Q-networks Q_i(s, a) = MLP_i(concat[s, a]), independently initialised.

    forward returns every member's value; `reduce` takes the min (pessimistic, clipped double Q)
    or the mean over members.

    layer_norm: LayerNorm after each hidden Linear (before the activation).
    batch_renorm: CrossQ's arrangement, batch renormalisation of the input and after each hidden
    activation (`EnsembleBatchRenorm`); such a critic is meant to be trained without a target
    network, on current and next state-actions in one batch (`crossq_td_loss`), and read in
    evaluation mode (running statistics) everywhere else.
    input_renorm: batch renormalisation of the input alone (the per-feature scale of the
    observation-action pairs), combinable with layer_norm; trained and read as batch_renorm.
    residual_blocks: BRO's critic (BroNet): one hidden Linear of width hidden[0] with LayerNorm,
    then this many `EnsembleResidualBlock`s of that width; needs one width in `hidden` and no
    batch_renorm.
    value_distribution: each member outputs logits over this support's bins instead of one
    value; Q is their expectation and `fit_loss` the HL-Gauss cross-entropy (`HLGauss`).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        members: int = 2,
        hidden: Sequence[int] = (512, 512),
        act: Activation = "relu",
        layer_norm: bool = False,
        batch_renorm: bool = False,
        renorm_warmup_steps: int = 100_000,
        input_renorm: bool = False,
        value_distribution: HLGauss | None = None,
        residual_blocks: int = 0,
    ) -> None:
        super().__init__()
        if members < 2:
            raise ValueError(f"a critic ensemble needs >= 2 members, got {members}")
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden widths must be a non-empty list of ints >= 1, got {hidden}")
        if layer_norm and batch_renorm:
            raise ValueError("choose one of layer_norm and batch_renorm")
        if input_renorm and batch_renorm:
            raise ValueError("batch_renorm renormalises the input already; drop input_renorm")
        if residual_blocks and (len(hidden) != 1 or batch_renorm):
            raise ValueError("residual blocks need one hidden width and no batch_renorm")
        self.members = members
        width = obs_dim + act_dim

        def renorm(features: int) -> list[nn.Module]:
            return [EnsembleBatchRenorm(members, features, warmup_steps=renorm_warmup_steps)]

        layers: list[nn.Module] = renorm(width) if batch_renorm or input_renorm else []
        for h in hidden:
            layers.append(EnsembleLinear(members, width, h))
            if layer_norm or residual_blocks:
                # No affine: an affine LayerNorm here would share parameters across members.
                layers.append(nn.LayerNorm(h, elementwise_affine=False))
            layers.append(activation(act))
            if batch_renorm:
                layers += renorm(h)
            width = h
        layers += [EnsembleResidualBlock(members, width, act) for _ in range(residual_blocks)]
        self.value_distribution = value_distribution
        outputs = 1 if value_distribution is None else value_distribution.bins
        layers.append(EnsembleLinear(members, width, outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        """obs: (batch, obs_dim); action: (batch, act_dim) -> Q values (members, batch)."""
        return self.values(self.outputs(obs, action))

    def outputs(self, obs: Tensor, action: Tensor) -> Tensor:
        """What the critic's loss fits: Q values (members, batch), or with a value distribution
        its logits (members, batch, bins)."""
        x = repeat(torch.cat([obs, action], dim=-1), "b d -> m b d", m=self.members)
        # In the input's dtype: under autocast the layers compute in bfloat16, outputs do not.
        out = self.net(x).to(x.dtype)
        return rearrange(out, "m b 1 -> m b") if self.value_distribution is None else out

    def values(self, outputs: Tensor) -> Tensor:
        """`outputs` -> Q values (members, batch)."""
        if self.value_distribution is None:
            return outputs
        return self.value_distribution.expectation(outputs)

    def fit_loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """The sum over members of the batch mean of each member's loss against target (batch,):
        the squared error, or with a value distribution the HL-Gauss cross-entropy."""
        if self.value_distribution is None:
            per_sample = (outputs - target.unsqueeze(0)).pow(2)
        else:
            per_sample = self.value_distribution.cross_entropy(outputs, target.unsqueeze(0))
        return per_sample.mean(dim=1).sum()

    @staticmethod
    def reduce(q: Tensor, how: str) -> Tensor:
        """(members, batch) -> (batch,) by "min" or "mean"; other names raise ValueError."""
        if how == "min":
            return q.min(dim=0).values
        if how == "mean":
            return q.mean(dim=0)
        raise ValueError(f"unknown critic reduction {how!r}; valid: {', '.join(REDUCTIONS)}")
