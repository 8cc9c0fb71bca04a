"""Mixed precision (`AgentConfig.precision = "bfloat16"`): the update's network passes run under
autocast, while parameters, optimiser state, batch-renorm statistics, network outputs and losses
stay float32, and one update agrees with the float32 update to bfloat16's precision."""

from __future__ import annotations

import warnings

import pytest
import torch

from diffpolicy.nets import CriticEnsemble, Denoiser, EnsembleBatchRenorm
from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer
from diffpolicy.rl.run.validation import ConfigError

TINY = {"actor_hidden": (32, 32), "critic_hidden": (32, 32), "batch_size": 64}
CONFIGS = {
    "reference": {},
    "langevin-layer-norm": {"sampler": "langevin", "critic_layer_norm": True},
    "crossq": {"critic_batch_renorm": True, "critic_target_network": False},
}


def _batch(size: int = 64):
    buffer = ReplayBuffer(5, 2, size)
    g = torch.Generator().manual_seed(0)
    for i in range(size):
        obs, next_obs = torch.randn(5, generator=g), torch.randn(5, generator=g)
        buffer.add(obs, torch.rand(2, generator=g) * 2 - 1, 1.0, next_obs, i % 9 == 0, False)
    return buffer.sample(size, torch.Generator().manual_seed(1))


def _updated(precision: str, options: dict) -> tuple[Agent, dict]:
    """A freshly seeded agent after one update on the fixed batch, with the update's random
    draws (target actions, noise levels) seeded alike."""
    torch.manual_seed(0)
    agent = Agent(5, 2, AgentConfig(**TINY, **options, precision=precision))
    torch.manual_seed(1)
    return agent, agent.update(_batch())


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.mark.parametrize("name", CONFIGS)
def test_one_bfloat16_update_agrees_with_float32(name):
    """Tolerance: bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2% per value),
    so losses are held to 3% and every parameter's gradient to a cosine of 0.99 with float32's."""
    full, full_metrics = _updated("float32", CONFIGS[name])
    half, half_metrics = _updated("bfloat16", CONFIGS[name])
    for key in ("critic_loss", "qsm_loss"):
        assert half_metrics[key].dtype == torch.float32
        assert half_metrics[key].item() == pytest.approx(full_metrics[key].item(), rel=0.03)
    for (pname, p_full), p_half in zip(full.named_parameters(), half.parameters(), strict=True):
        if p_full.grad is not None and p_full.grad.abs().sum() > 0:
            assert _cosine(p_full.grad, p_half.grad) > 0.99, pname


def test_bfloat16_differs_from_float32_at_all():
    """The switch reaches the networks: bfloat16's rounding shows in the critic loss."""
    _, full = _updated("float32", {})
    _, half = _updated("bfloat16", {})
    assert half["critic_loss"].item() != full["critic_loss"].item()


def test_bfloat16_keeps_parameters_optimiser_state_and_statistics_float32():
    agent, _ = _updated("bfloat16", CONFIGS["crossq"])
    assert all(p.dtype == torch.float32 for p in agent.parameters())
    assert all(b.dtype in (torch.float32, torch.long) for b in agent.buffers())
    for opt in (agent.actor_opt, agent.critic_opt):
        for state in opt.state.values():
            assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    renorm = [m for m in agent.critic.modules() if isinstance(m, EnsembleBatchRenorm)]
    assert renorm and all(m.running_var.dtype == torch.float32 for m in renorm)


def test_networks_under_autocast_compute_in_bfloat16_and_return_float32():
    critic, denoiser = CriticEnsemble(3, 2, hidden=(8,)), Denoiser(3, 2, (8,), num_levels=5)
    seen = []
    critic.net[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    obs, act, t = torch.randn(4, 3), torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    with torch.autocast("cpu", torch.bfloat16):
        q, eps = critic(obs, act), denoiser(act, t, obs)
        bound = denoiser.bind(obs)(act, t, obs)
    assert seen == [torch.bfloat16]
    assert q.dtype == eps.dtype == bound.dtype == torch.float32


def test_an_unknown_precision_is_one_line():
    with pytest.raises(ConfigError, match=r"agent\.precision.*float32, bfloat16") as err:
        AgentConfig(precision="float16")
    assert "\n" not in str(err.value)


def test_bfloat16_warns_once_where_the_cpu_emulates_it(monkeypatch):
    import diffpolicy.rl.agent.agent as agent_module

    agent_module.warn_once.cache_clear()
    agent = Agent(5, 2, AgentConfig(**TINY, precision="bfloat16"))

    def warnings_of_an_update(native: bool) -> list[str]:
        monkeypatch.setattr(agent_module, "_cpu_has_bfloat16_matmuls", lambda: native)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            agent.update(_batch())
        return [str(w.message) for w in caught if w.category is RuntimeWarning]

    assert warnings_of_an_update(native=True) == []
    assert any("emulated" in w for w in warnings_of_an_update(native=False))
    assert warnings_of_an_update(native=False) == []  # once per process
