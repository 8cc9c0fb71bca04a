"""The update and the samplers never read a tensor on the host.

On an accelerator each such read (`.item()`, `.tolist()`, `int(t)`, `float(t)`, `bool(t)`) stalls
until the device has caught up. Here those methods are made to raise while an update and the
samplers run: any host read in the hot path fails the test.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from diffpolicy.objectives import bc_loss
from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer
from diffpolicy.samplers import Clipping, DDIMSampler, DDPMSampler, LangevinSampler
from diffpolicy.schedules import make_schedule

TINY = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 8}
CONFIGS = {
    "reference": AgentConfig(**TINY),
    "langevin-t2": AgentConfig(**TINY, sampler="langevin", target_sampler_steps=2),
    "adaptive-alpha": AgentConfig(**TINY, sampler="langevin", alpha_target_std=0.1),
    "adaptive-chain-temperature": AgentConfig(
        **TINY,
        sampler="langevin",
        alpha_target_std=0.1,
        alpha_control="chain",
        eval_temperature=0.5,
    ),
    "ddim-ema-best-of": AgentConfig(**TINY, sampler="ddim", ema_decay=0.99, eval_best_of=3),
    "crossq": AgentConfig(
        **TINY, critic_batch_renorm=True, critic_target_network=False, actor_every=2
    ),
    "qsm-normalised": AgentConfig(**TINY, critic_layer_norm=True, target_subset=1),
    "bro-hl-gauss-reward-normalised": AgentConfig(
        **{**TINY, "critic_hidden": (16,)},
        critic_residual_blocks=2,
        critic_input_renorm=True,
        critic_value_bins=11,
        reward_normalization=True,
    ),
    "crossq-bfloat16": AgentConfig(
        **TINY, critic_batch_renorm=True, critic_target_network=False, precision="bfloat16"
    ),
}


@contextlib.contextmanager
def host_reads_raise():
    def refuse(self, *args, **kwargs):
        raise AssertionError("host read of a tensor in the hot path")

    names = ("item", "tolist", "__int__", "__float__", "__bool__", "__index__")
    saved = {name: getattr(torch.Tensor, name) for name in names}
    for name in names:
        setattr(torch.Tensor, name, refuse)
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


def test_the_guard_catches_a_host_read():
    with host_reads_raise(), pytest.raises(AssertionError, match="host read"):
        torch.ones(2).sum().item()
    with host_reads_raise(), pytest.raises(AssertionError, match="host read"):
        int(torch.tensor(3))


def _buffer(device: str = "cpu") -> ReplayBuffer:
    buffer = ReplayBuffer(3, 2, 32, device)
    g = torch.Generator().manual_seed(0)
    for i in range(32):
        obs, next_obs = torch.randn(3, generator=g), torch.randn(3, generator=g)
        buffer.add(obs, torch.rand(2, generator=g) * 2 - 1, 1.0, next_obs, i % 7 == 0, False)
    return buffer


@pytest.mark.parametrize("name", CONFIGS)
def test_update_and_acting_make_no_host_read(name):
    torch.manual_seed(0)
    agent = Agent(3, 2, CONFIGS[name])
    batches = [_buffer().sample(8, torch.Generator().manual_seed(k)) for k in range(3)]
    obs = torch.randn(4, 3)
    with host_reads_raise():
        for batch in batches:
            metrics = agent.update(batch)
        agent.act(obs, explore=True)
        agent.act(obs, explore=False)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in metrics.values())


@pytest.mark.parametrize(
    "sampler",
    [
        DDPMSampler(make_schedule("vp", 5), timesteps=[0, 2, 4], clipping=Clipping(x0=True)),
        DDIMSampler(make_schedule("cosine", 10), eta=0.5),
        LangevinSampler(make_schedule("vp", 5), num_steps=4, clipping=Clipping()),
        LangevinSampler(make_schedule("vp", 5), num_steps=4, clipping=Clipping(x0=True)),
        LangevinSampler(make_schedule("vp", 5), "v", num_steps=4, score_units="unit"),
        LangevinSampler(make_schedule("vp", 5), "x0", num_steps=4),
    ],
)
def test_samplers_make_no_host_read(sampler):
    def denoise(x, t, cond):
        return x * 0.5 + cond

    cond, x_T = torch.randn(6, 2), torch.randn(6, 2)
    with host_reads_raise():
        out = sampler.sample(denoise, cond, x_T, torch.Generator().manual_seed(0))
    assert out.shape == (6, 2)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
def test_bc_loss_makes_no_host_read(prediction):
    schedule, actions = make_schedule("vp", 5), torch.rand(8, 2) * 2 - 1
    with host_reads_raise():
        loss, _ = bc_loss(lambda a_t, t, obs: a_t, schedule, None, actions, prediction)
    assert loss.shape == ()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", CONFIGS)
def test_update_and_acting_make_no_cuda_sync(name):
    """On a GPU, torch itself reports every synchronisation (implicit ones too: a boolean mask, a
    nonzero, a copy to the host), which the guard above cannot see."""
    torch.manual_seed(0)
    agent = Agent(3, 2, CONFIGS[name]).to("cuda")
    buffer = _buffer("cuda")
    obs = torch.randn(4, 3, device="cuda")
    agent.update(buffer.sample(8))  # the first calls initialise CUDA libraries, which may sync
    agent.act(obs, explore=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            metrics = agent.update(buffer.sample(8))
        agent.act(obs, explore=True)
        agent.act(obs, explore=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in metrics.values())
