"""Noise schedules: beta/alpha/abar tables, forward noising and prediction conversions."""

from diffpolicy.schedules.base import PREDICTIONS, NoiseSchedule, Prediction, check_prediction
from diffpolicy.schedules.named import SCHEDULES, ScheduleName, make_schedule

__all__ = [
    "PREDICTIONS",
    "SCHEDULES",
    "NoiseSchedule",
    "Prediction",
    "ScheduleName",
    "check_prediction",
    "make_schedule",
]
