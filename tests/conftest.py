"""Shared test configuration: one torch thread and a reproducible hypothesis profile."""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, Phase, settings

# The CI machine has few cores shared between jobs; torch's default thread pool would oversubscribe.
torch.set_num_threads(1)

# "ci": deterministic example generation (derandomize) so a red CI run reproduces locally, no
# example database, no per-example deadline (the first torch call in a process is slow).
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=30,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# "noshrink": like "ci" but reports the first failing example without shrinking it; shrinking the
# statistical tests is slow, so use this when checking that a deliberate bug is caught.
settings.register_profile(
    "noshrink",
    parent=settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
# "mutation": `make mutate` runs the maths tests once per mutant; fewer examples and no shrinking
# keep that affordable (a mutant only needs one failing example). Not for `make test`.
settings.register_profile(
    "mutation",
    parent=settings.get_profile("noshrink"),
    max_examples=10,
)
# "dev": random exploration for local bug hunting: HYPOTHESIS_PROFILE=dev pytest ...
settings.register_profile("dev", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
