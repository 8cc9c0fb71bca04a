"""Agent switches: the critic-target chain length, CrossQ's critic arrangement, the actor delay,
torch.compile (compiled and eager agree), and options the chosen parts would ignore (refused)."""

from __future__ import annotations

import warnings

import pytest
import torch

from diffpolicy.nets import CriticEnsemble, EnsembleBatchRenorm
from diffpolicy.objectives import QSMConfig, crossq_td_loss
from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer
from diffpolicy.samplers import DDPMSampler, LangevinSampler

TINY = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 8}


def _batch(seed: int = 0, size: int = 8):
    buffer = ReplayBuffer(3, 2, 32)
    g = torch.Generator().manual_seed(seed)
    for i in range(32):
        obs, next_obs = torch.randn(3, generator=g), torch.randn(3, generator=g)
        buffer.add(obs, torch.rand(2, generator=g) * 2 - 1, 1.0, next_obs, i % 5 == 0, False)
    return buffer.sample(size, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("sampler", "kind", "acting"), [("langevin", LangevinSampler, 10), ("ddpm", DDPMSampler, 5)]
)
def test_target_actions_use_the_shorter_chain(sampler, kind, acting):
    agent = Agent(3, 2, AgentConfig(**TINY, sampler=sampler, target_sampler_steps=2))
    assert isinstance(agent.target_sampler, kind)
    assert agent.policy.sampler.num_steps == acting
    assert agent.target_sampler.num_steps == 2
    calls = []
    denoiser = agent.policy.denoiser
    denoiser.register_forward_hook(lambda *args: calls.append(1))
    bound = denoiser.bind
    denoiser.bind = lambda obs: lambda a, t, c: (calls.append(1), bound(obs)(a, t, c))[1]
    agent.target_actions(torch.randn(4, 3))
    assert len(calls) == 2
    calls.clear()
    agent.act(torch.randn(4, 3), explore=True)
    assert len(calls) == acting


def test_target_sampler_steps_is_bounded_by_the_acting_chain():
    with pytest.raises(ValueError, match="target_sampler_steps"):
        AgentConfig(sampler="langevin", langevin_steps=5, target_sampler_steps=6)
    with pytest.raises(ValueError, match="target_sampler_steps"):
        AgentConfig(diffusion_steps=5, target_sampler_steps=0)


def test_crossq_loss_is_td_on_one_joint_batch():
    torch.manual_seed(0)
    critic = CriticEnsemble(3, 2, 2, (16, 16), batch_renorm=True).train()
    b = _batch()
    next_actions = torch.rand(8, 2) * 2 - 1
    reference = CriticEnsemble(3, 2, 2, (16, 16), batch_renorm=True).train()
    reference.load_state_dict(critic.state_dict())
    loss, metrics = crossq_td_loss(
        critic, lambda s: next_actions, b.obs, b.actions, b.rewards, b.next_obs, b.terminated, 0.9
    )
    q_all = reference(torch.cat([b.obs, b.next_obs]), torch.cat([b.actions, next_actions]))
    q, q_next = q_all[:, :8], q_all[:, 8:]
    y = b.rewards + 0.9 * (1 - b.terminated.float()) * q_next.min(dim=0).values
    torch.testing.assert_close(loss, (q - y.detach()).pow(2).mean(dim=1).sum())
    torch.testing.assert_close(metrics["target_mean"], y.detach().mean())
    # One batch-statistics update per loss (both halves together), none from the target.
    assert int(critic.net[0].steps) == 1
    # No gradient flows through the next-state half: the target is a constant.
    loss.backward()
    grads = [p.grad.clone() for p in critic.parameters()]
    critic.zero_grad()
    q_only = critic(torch.cat([b.obs, b.next_obs]), torch.cat([b.actions, next_actions]))
    ((q_only[:, :8] - y.detach()).pow(2).mean(dim=1).sum()).backward()
    for g, h in zip(grads, critic.parameters(), strict=True):
        torch.testing.assert_close(g, h.grad)


def test_crossq_agent_has_no_target_network_and_keeps_critics_in_eval_mode():
    cfg = AgentConfig(**TINY, critic_batch_renorm=True, critic_target_network=False, actor_every=3)
    agent = Agent(3, 2, cfg)
    assert agent.target_critic is None
    assert not agent.critic.training
    agent.train()
    assert not agent.critic.training
    actor_before = [p.clone() for p in agent.policy.denoiser.parameters()]
    steps_before = int(agent.critic.net[0].steps)
    metrics = agent.update(_batch(1))
    assert "qsm_loss" in metrics  # update 1 of 3: the actor steps
    assert not agent.critic.training
    assert int(agent.critic.net[0].steps) == steps_before + 1
    changed = [p.clone() for p in agent.policy.denoiser.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, changed, strict=True))
    for k in (2, 3):
        metrics = agent.update(_batch(k))
        assert "qsm_loss" not in metrics  # updates 2 and 3: critic only
    for a, b in zip(changed, agent.policy.denoiser.parameters(), strict=True):
        assert torch.equal(a, b)
    assert "qsm_loss" in agent.update(_batch(4))
    assert agent.training_state()["num_updates"] == 4


def test_input_renorm_critic_trains_its_input_statistics_once_per_update_and_acts_in_eval():
    # The LayerNorm critic with its input batch-renormalised, trained by CrossQ's loss: the
    # agent builds that network, steps the input layer's statistics once per critic step (one
    # joint batch) and keeps the critic in evaluation mode for grad-Q and acting.
    cfg = AgentConfig(**TINY, critic="crossq", critic_layer_norm=True, critic_input_renorm=True)
    agent = Agent(3, 2, cfg)
    layers = list(agent.critic.net)
    assert isinstance(layers[0], EnsembleBatchRenorm)
    assert sum(isinstance(m, EnsembleBatchRenorm) for m in layers) == 1
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in layers) == len(TINY["critic_hidden"])
    agent.train()
    mean_before = layers[0].running_mean.clone()
    for k in range(3):
        agent.update(_batch(k))
        assert not agent.critic.training
    assert int(layers[0].steps) == 3
    assert not torch.equal(layers[0].running_mean, mean_before)


def test_input_renorm_with_target_networks_averages_the_input_statistics_into_the_targets():
    # With the TD critic the targets read the input layer with Polyak-averaged running
    # statistics: after one update, target = (1 - tau) * before + tau * online's new value.
    cfg = AgentConfig(**TINY, critic_layer_norm=True, critic_input_renorm=True, tau=0.25)
    agent = Agent(3, 2, cfg)
    online, target = agent.critic.net[0], agent.target_critic.net[0]
    assert isinstance(target, EnsembleBatchRenorm) and not target.training
    before = target.running_mean.clone()
    agent.update(_batch(0))
    assert not torch.equal(online.running_mean, before)
    torch.testing.assert_close(target.running_mean, 0.75 * before + 0.25 * online.running_mean)
    assert not agent.target_critic.training


@pytest.mark.slow
def test_compiled_agent_agrees_with_eager():
    torch.manual_seed(0)
    eager = Agent(3, 2, AgentConfig(**TINY, sampler="langevin", langevin_steps=3))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        # A fallback to eager would make this test vacuous: it must not warn about one.
        warnings.filterwarnings("error", message="torch.compile is unavailable")
        compiled = Agent(
            3, 2, AgentConfig(**TINY, sampler="langevin", langevin_steps=3, compile=True)
        )
    assert compiled.policy.denoiser.trunk._compiled_call_impl is not None
    for k in range(3):
        batch = _batch(k)
        torch.manual_seed(k)
        m_eager = eager.update(batch)
        torch.manual_seed(k)
        m_compiled = compiled.update(batch)
        for key in ("critic_loss", "qsm_loss"):
            torch.testing.assert_close(m_compiled[key], m_eager[key], rtol=1e-4, atol=1e-5)
    for p, q in zip(eager.parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    obs = torch.randn(5, 3)
    a = eager.act(obs, False, torch.Generator().manual_seed(9))
    b = compiled.act(obs, False, torch.Generator().manual_seed(9))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(self, *args, **kwargs):
        self._compiled_call_impl = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no cc"))

    monkeypatch.setattr(torch.nn.Module, "compile", broken_compile)
    with pytest.warns(UserWarning, match="torch.compile is unavailable"):
        agent = Agent(3, 2, AgentConfig(**TINY, compile=True))
    assert agent.policy.denoiser.trunk._compiled_call_impl is None
    assert agent.act(torch.randn(2, 3), explore=False).shape == (2, 2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"sampler": "langevin", "sample_steps": 3},
            "agent.sample_steps = 3: read only by samplers ddpm, ddim, not by agent.sampler = "
            "'langevin'",
        ),
        ({"ddim_eta": 0.5}, "agent.ddim_eta = 0.5: read only by sampler ddim"),
        ({"sampler": "ddim", "ddpm_variance": "small"}, "agent.ddpm_variance = 'small'"),
        ({"langevin_steps": 4}, "agent.langevin_steps = 4: read only by sampler langevin"),
        ({"langevin_score": "schedule"}, "agent.langevin_score = 'schedule'"),
        ({"dql_eta": 2.0}, "agent.dql_eta = 2.0: read only by objective dql"),
        (
            {"critic": "crossq", "target_subset": 1},
            "agent.target_subset = 1: read only by critic td",
        ),
        ({"critic_target_network": False, "tau": 0.01}, "agent.tau = 0.01: critic crossq has"),
        (
            {"sampler": "ddim", "eval_temperature": 0.0},
            "agent.eval_temperature = 0.0: sampler ddim has no temperature: use ddpm or langevin",
        ),
        ({"objective": "dql", "sampler": "langevin"}, "objective dql backpropagates"),
        ({"critic": "sac"}, "agent.critic = 'sac': must be one of: td, crossq"),
    ],
)
def test_options_the_chosen_parts_ignore_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        AgentConfig(**overrides)


def test_options_of_the_chosen_parts_are_accepted():
    AgentConfig(sampler="langevin", langevin_steps=4, langevin_score="schedule")
    AgentConfig(sampler="ddim", ddim_eta=0.5, sample_steps=3)
    AgentConfig(objective="dql", dql_eta=2.0, sampler="ddim")
    AgentConfig(critic="crossq", critic_batch_renorm=True)
    AgentConfig(target_subset=1, tau=0.01)
    # A preset's QSM settings (qsm_dmc's alpha 120) do not block choosing another objective.
    AgentConfig(objective="dql", qsm=QSMConfig(alpha=120.0))


def test_reset_every_resets_at_each_multiple_of_it(monkeypatch):
    agent = Agent(3, 2, AgentConfig(**TINY, reset_every=3))
    resets = []
    monkeypatch.setattr(agent, "reset_networks", lambda: resets.append(agent.num_updates))
    for k in range(7):
        agent.update(_batch(k))
    assert resets == [3, 6]


def test_a_reset_draws_fresh_initial_weights_and_clears_the_optimisers():
    """The networks then hold what a new agent's networks draw from the same generator state;
    the targets and the EMA copy start from them; Adam's moments are gone."""
    from diffpolicy.rl.agent.agent import make_denoiser

    cfg = AgentConfig(**TINY, ema_decay=0.9)
    torch.manual_seed(0)
    agent = Agent(3, 2, cfg)
    for k in range(3):
        agent.update(_batch(k))
    trained = [p.clone() for p in agent.critic.parameters()]
    torch.manual_seed(7)
    agent.reset_networks()
    torch.manual_seed(7)
    denoiser, critic = make_denoiser(3, 2, cfg), agent.critic_update.network(cfg, 3, 2)
    for mine, fresh in ((agent.policy.denoiser, denoiser), (agent.critic, critic)):
        for a, b in zip(mine.state_dict().values(), fresh.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    for a, b in zip(agent.target_critic.parameters(), critic.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(agent.ema.model.parameters(), denoiser.parameters(), strict=True):
        assert torch.equal(a, b)
    assert agent.ema._count == 0 and agent.ema.num_updates.item() == 0
    assert not agent.critic_opt.state and not agent.actor_opt.state
    now = agent.critic.parameters()
    assert not all(torch.equal(a, b) for a, b in zip(trained, now, strict=True))
