"""Networks: time embeddings, MLP blocks, the obs-conditioned denoiser, critic ensembles, and
parameter averaging (soft_update, EMA)."""

from diffpolicy.nets.averaging import EMA, frozen, soft_update, training
from diffpolicy.nets.batch_renorm import EnsembleBatchRenorm
from diffpolicy.nets.critic import (
    REDUCTIONS,
    CriticEnsemble,
    EnsembleLinear,
    EnsembleResidualBlock,
    Reduction,
)
from diffpolicy.nets.denoiser import Denoiser
from diffpolicy.nets.layers import ACTIVATIONS, Activation, ResidualBlock, ResidualMLP, mlp
from diffpolicy.nets.mish import Mish, mish
from diffpolicy.nets.time_embedding import (
    TIME_EMBEDDINGS,
    FourierFeatures,
    SinusoidalEmbedding,
    time_embedding,
)
from diffpolicy.nets.value_distribution import HLGauss

__all__ = [
    "ACTIVATIONS",
    "EMA",
    "REDUCTIONS",
    "TIME_EMBEDDINGS",
    "Activation",
    "CriticEnsemble",
    "Denoiser",
    "EnsembleBatchRenorm",
    "EnsembleLinear",
    "EnsembleResidualBlock",
    "FourierFeatures",
    "HLGauss",
    "Mish",
    "Reduction",
    "ResidualBlock",
    "ResidualMLP",
    "SinusoidalEmbedding",
    "frozen",
    "mish",
    "mlp",
    "soft_update",
    "time_embedding",
    "training",
]
