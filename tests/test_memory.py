"""The memory check before a run (diffpolicy.rl.run.memory) refuses what cannot fit and never what
fits: its estimate of one update is below what the update takes. The refusals' messages are
checked in tests/test_bad_input.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffpolicy.rl import TrainConfig
from diffpolicy.rl.run.memory import available_memory, check_memory

# One update's peak memory per sample, in a fresh process, against the estimate: the peak RSS
# (VmHWM, reset to the current RSS just before the update) minus the RSS before it. Tiny networks:
# the estimate is tightest there (about 0.75 of the peak).
MEASURE = """
import torch
from diffpolicy.rl.agent.agent import Agent, AgentConfig
from diffpolicy.rl.storage.buffer import ReplayBuffer
from diffpolicy.rl.run.memory import activation_floats, row_bytes

torch.set_num_threads(1)
cfg, batch = AgentConfig(actor_hidden=(16, 16), critic_hidden=(16, 16)), 100_000
agent, buffer = Agent(11, 3, cfg), ReplayBuffer(11, 3, 1000)
for _ in range(1000):
    buffer.add(torch.randn(11), torch.rand(3) * 2 - 1, 0.1, torch.randn(11), False, False)
def kib(field):
    status = open("/proc/self/status").read().splitlines()
    return int(next(line for line in status if line.startswith(field)).split()[1])
agent.update(buffer.sample(16))
sample = buffer.sample(batch)
with open("/proc/self/clear_refs", "w") as f:  # "5" resets the peak (VmHWM) to the current RSS
    f.write("5")
before = kib("VmRSS:")
agent.update(sample)
peak = (kib("VmHWM:") - before) * 1024 / batch
print(peak, row_bytes(11, 3) + 4 * activation_floats(cfg, 11, 3))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads and resets Linux's /proc/self peak RSS")
def test_the_estimate_of_an_update_is_below_what_it_takes():
    done = subprocess.run(
        [sys.executable, "-c", MEASURE], capture_output=True, text=True, timeout=300, check=True
    )
    peak, estimate = map(float, done.stdout.split())
    assert 0 < estimate < peak


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="reads Linux's /proc/meminfo")
def test_the_memory_available_is_read_and_a_default_run_fits():
    assert 0 < available_memory(torch.device("cpu"))
    check_memory(TrainConfig(steps=100_000), 376, 17, torch.device("cpu"))  # Humanoid's sizes
