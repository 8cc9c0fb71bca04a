"""A categorical value distribution on a fixed support, trained by HL-Gauss cross-entropy.

HL-Gauss (Farebrother et al., "Stop Regressing: Training Value Functions via Classification for
Scalable Deep RL", ICML 2024): the support [v_min, v_max] is cut into n equal bins of width w; a
scalar target y becomes the distribution that a Normal(y, sigma^2) puts on each bin,

    p_i(y) = (Phi((e_{i+1} - y) / sigma) - Phi((e_i - y) / sigma)) / Z(y),
    Z(y) = Phi((e_n - y) / sigma) - Phi((e_0 - y) / sigma),

with e_0 < ... < e_n the bin edges and Phi the standard normal CDF (renormalised to the support);
the network's logits z are trained by the cross-entropy -sum_i p_i(y) log softmax(z)_i, whose
gradient in z is softmax(z) - p(y); the value is the expectation sum_i softmax(z)_i c_i over the
bin centres c_i. sigma = 0.75 w, the paper's recommended ratio. Targets outside the support are
clamped to it first.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SIGMA_PER_BIN = 0.75
"""sigma / bin width (Farebrother et al. 2024, section 3.1)."""


class HLGauss(nn.Module):
    """The support and its three operations: `expectation`, `probabilities`, `cross_entropy`."""

    def __init__(self, v_min: float, v_max: float, bins: int) -> None:
        super().__init__()
        if not (math.isfinite(v_min) and math.isfinite(v_max) and v_min < v_max):
            raise ValueError(f"need finite v_min < v_max, got [{v_min}, {v_max}]")
        if bins < 2:
            raise ValueError(f"need at least 2 bins, got {bins}")
        self.v_min, self.v_max, self.bins = v_min, v_max, bins
        self.sigma = SIGMA_PER_BIN * (v_max - v_min) / bins
        edges = torch.linspace(v_min, v_max, bins + 1)
        self.register_buffer("edges", edges, persistent=False)
        self.register_buffer("centres", (edges[1:] + edges[:-1]) / 2, persistent=False)

    def expectation(self, logits: Tensor) -> Tensor:
        """logits (..., bins) -> the expected value (...), in the logits' dtype."""
        probs = torch.softmax(logits, dim=-1)
        return probs @ self.centres.to(probs.dtype)

    def probabilities(self, target: Tensor) -> Tensor:
        """target (...) -> the HL-Gauss distribution (..., bins) of each value, clamped to the
        support, in the target's dtype."""
        y = target.clamp(self.v_min, self.v_max).unsqueeze(-1)
        # erf((e - y) / (sigma sqrt 2)) = 2 Phi((e - y) / sigma) - 1 at every edge e: an affine
        # map of Phi, which the normalisation by the support's mass removes.
        erf = torch.erf((self.edges.to(y.dtype) - y) / (self.sigma * math.sqrt(2.0)))
        mass = erf[..., 1:] - erf[..., :-1]
        return mass / (erf[..., -1:] - erf[..., :1])

    def cross_entropy(self, logits: Tensor, target: Tensor) -> Tensor:
        """logits (..., bins), target (...) -> -sum_i p_i(target) log softmax(logits)_i, (...)."""
        log_probs = torch.log_softmax(logits, dim=-1)
        return -(self.probabilities(target).detach() * log_probs).sum(dim=-1)
