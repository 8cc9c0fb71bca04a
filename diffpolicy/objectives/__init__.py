"""Objectives: functions that RETURN (loss, metrics); none owns an optimizer, target or EMA."""

from diffpolicy.objectives.bc import bc_loss
from diffpolicy.objectives.dql import dql_loss
from diffpolicy.objectives.qsm import QSMConfig, action_gradient, qsm_loss
from diffpolicy.objectives.reward_scale import RunningRewardScale
from diffpolicy.objectives.td import crossq_td_loss, td_loss
from diffpolicy.objectives.temperature import AdaptiveTemperature, paired_spread

__all__ = [
    "AdaptiveTemperature",
    "QSMConfig",
    "RunningRewardScale",
    "action_gradient",
    "bc_loss",
    "crossq_td_loss",
    "dql_loss",
    "paired_spread",
    "qsm_loss",
    "td_loss",
]
