"""How many times a diffusion agent's update and action evaluate its denoiser."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from diffpolicy.nets import Denoiser
from timing.common import BATCH


@contextmanager
def counting_denoiser_calls() -> Iterator[Counter]:
    """Counts every Denoiser evaluation ("calls", and the "rows" they evaluate) while open, by
    its two entry points: forward and the function `bind` returns (the samplers' chains)."""
    counts: Counter = Counter()
    forward, bind = Denoiser.forward, Denoiser.bind

    def count(a_t):
        counts["calls"] += 1
        counts["rows"] += a_t.shape[0]

    def counted_forward(self, a_t, t, obs):
        count(a_t)
        return forward(self, a_t, t, obs)

    def counted_bind(self, obs):
        denoise = bind(self, obs)

        def counted(a_t, t, cond):
            count(a_t)
            return denoise(a_t, t, cond)

        return counted

    Denoiser.forward, Denoiser.bind = counted_forward, counted_bind
    try:
        yield counts
    finally:
        Denoiser.forward, Denoiser.bind = forward, bind


def denoiser_calls(tasks: dict[str, Callable[[], object]], updates: int = 6) -> tuple[float, ...]:
    """(calls per update, rows per update in batches, calls per action) of a diffusion agent's
    tasks: the mean over `updates` updates after a first one (which may do more: DACER's first
    estimates its entropy)."""
    tasks["update"]()
    with counting_denoiser_calls() as update:
        for _ in range(updates):
            tasks["update"]()
    with counting_denoiser_calls() as act:
        tasks["act"]()
    return update["calls"] / updates, update["rows"] / updates / BATCH, act["calls"]
