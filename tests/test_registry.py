"""Extension by registration: objectives, samplers and critics added by user code are valid names
for the config, the command line and the agent, with no edit to the library."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny_runs import tiny_config

from diffpolicy.objectives import qsm_loss, td_loss
from diffpolicy.registry import Registry
from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer, TrainConfig, train
from diffpolicy.rl.agent.components import (
    CRITICS,
    OBJECTIVES,
    SAMPLERS,
    make_sampler,
    register_critic,
    register_objective,
    register_sampler,
)
from diffpolicy.rl.run.cli import parse
from diffpolicy.samplers import Clipping, DDPMSampler, Sampler
from diffpolicy.schedules import make_schedule

TINY = {"actor_hidden": (16, 16), "critic_hidden": (16, 16), "batch_size": 8}


def _batch(seed: int = 0):
    buffer = ReplayBuffer(3, 2, 32)
    g = torch.Generator().manual_seed(seed)
    for i in range(32):
        obs, next_obs = torch.randn(3, generator=g), torch.randn(3, generator=g)
        buffer.add(obs, torch.rand(2, generator=g) * 2 - 1, 1.0, next_obs, i % 5 == 0, False)
    return buffer.sample(8, torch.Generator().manual_seed(seed))


@pytest.fixture
def registered():
    """Names this test registers, removed afterwards so other tests see the built-ins only."""
    added: list[tuple[Registry, str]] = []
    yield added
    for registry, name in added:
        registry.unregister(name)


def test_registry_refuses_a_taken_name_and_lists_the_known_ones():
    registry: Registry[int] = Registry("widget")
    registry.register("a", 1)
    registry.register("b", 2)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", 3)
    registry.register("a", 3, replace=True)
    assert registry["a"] == 3 and registry.names() == ("a", "b")
    with pytest.raises(ValueError, match="unknown widget 'c'; registered: a, b"):
        registry["c"]


def test_built_in_names_are_registered():
    assert OBJECTIVES.names() == ("qsm", "dql", "dime", "dacer", "qvpo")
    assert SAMPLERS.names() == ("ddpm", "ddim", "langevin")
    assert CRITICS.names() == ("td", "crossq")


def test_a_registered_objective_trains_the_actor(registered):
    calls = []

    def pull_to_zero(agent, batch):  # BC towards the zero action: any loss of the denoiser
        calls.append(agent)
        out = agent.policy.denoiser(batch.actions, torch.zeros(8, dtype=torch.long), batch.obs)
        loss = out.pow(2).mean()
        return loss, {"pull": loss.detach()}

    register_objective("pull", pull_to_zero)
    registered.append((OBJECTIVES, "pull"))
    agent = Agent(3, 2, AgentConfig(objective="pull", **TINY))
    before = [p.clone() for p in agent.policy.denoiser.parameters()]
    metrics = agent.update(_batch())
    assert calls == [agent]
    assert "pull" in metrics and "qsm_loss" not in metrics
    after = list(agent.policy.denoiser.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_a_registered_name_is_accepted_on_the_command_line(registered):
    register_objective("pull", lambda agent, batch: (torch.zeros(()), {}))
    registered.append((OBJECTIVES, "pull"))
    cfg = parse(TrainConfig, args=["--agent.objective", "pull", "--agent.actor-hidden", "8"])
    assert cfg.agent.objective == "pull"


def test_an_unknown_name_on_the_command_line_lists_the_registered_ones(registered, capsys):
    register_sampler("mine", lambda cfg, steps, temperature: make_sampler(cfg, steps, name="ddpm"))
    registered.append((SAMPLERS, "mine"))
    with pytest.raises(SystemExit):
        parse(TrainConfig, args=["--agent.sampler", "euler"])
    err = capsys.readouterr().err
    assert "agent.sampler = 'euler': must be one of: ddpm, ddim, langevin, mine" in err


def test_a_registered_sampler_acts_and_draws_target_actions(registered):
    built = []

    def few_levels(cfg, steps, temperature):
        sampler = DDPMSampler(make_schedule(cfg.schedule, cfg.diffusion_steps), clipping=Clipping())
        built.append((steps, temperature, sampler))
        return sampler

    register_sampler("plain", few_levels, options=("ddpm_variance",))
    registered.append((SAMPLERS, "plain"))
    agent = Agent(3, 2, AgentConfig(sampler="plain", target_sampler_steps=2, **TINY))
    assert isinstance(agent.policy.sampler, Sampler)
    assert agent.policy.sampler is built[0][2] and agent.target_sampler is built[1][2]
    assert [(s, t) for s, t, _ in built] == [(None, 1.0), (2, 1.0)]
    assert agent.act(torch.randn(4, 3), explore=False).abs().max() <= 1.0
    # An option it declares is its own; one only ddim reads is refused.
    AgentConfig(sampler="plain", ddpm_variance="small")
    with pytest.raises(ValueError, match="agent.ddim_eta = 0.5: read only by sampler ddim"):
        AgentConfig(sampler="plain", ddim_eta=0.5)


def test_a_registered_critic_without_targets_is_trained_by_its_loss(registered):
    def monte_carlo(agent, batch, next_actions):  # regress Q onto the reward alone
        q = agent.critic(batch.obs, batch.actions)
        loss = (q - batch.rewards).pow(2).mean()
        return loss, {"mc_loss": loss.detach()}

    register_critic("mc", monte_carlo, target_network=False)
    registered.append((CRITICS, "mc"))
    agent = Agent(3, 2, AgentConfig(critic="mc", **TINY))
    assert agent.target_critic is None
    metrics = agent.update(_batch())
    assert "mc_loss" in metrics and "critic_loss" not in metrics
    with pytest.raises(ValueError, match="agent.tau = 0.01: critic mc has no target network"):
        AgentConfig(critic="mc", tau=0.01)


def test_critic_target_network_false_still_chooses_crossq(registered):
    agent = Agent(3, 2, AgentConfig(critic_target_network=False, critic_batch_renorm=True, **TINY))
    assert agent.critic_update is CRITICS["crossq"] and agent.target_critic is None
    register_critic("td2", CRITICS["td"].loss)
    registered.append((CRITICS, "td2"))
    with pytest.raises(ValueError, match="critic_target_network = False: critic td2 keeps target"):
        AgentConfig(critic="td2", critic_target_network=False)


def test_built_in_entries_compute_the_library_losses():
    torch.manual_seed(0)
    agent = Agent(3, 2, AgentConfig(**TINY))
    batch = _batch(3)
    next_actions = torch.rand(8, 2) * 2 - 1
    torch.manual_seed(1)
    loss, _ = agent.actor_objective.loss(agent, batch)
    torch.manual_seed(1)
    expected, _ = qsm_loss(
        agent.policy.denoiser, agent.critic, agent.policy.sampler.schedule, batch.obs, batch.actions
    )
    torch.testing.assert_close(loss, expected)
    loss, _ = agent.critic_update.loss(agent, batch, next_actions)
    transitions = (batch.obs, batch.actions, batch.rewards, batch.next_obs, batch.terminated)
    expected, _ = td_loss(agent.critic, agent.target_critic, lambda s: next_actions, *transitions)
    torch.testing.assert_close(loss, expected)


def test_train_uses_an_agent_factory_and_refuses_a_foreign_config(tmp_path):
    cfg = tiny_config(tmp_path / "run", steps=40)
    built = []

    def factory(obs_dim, act_dim, agent_cfg):
        built.append((obs_dim, act_dim))
        return Agent(obs_dim, act_dim, agent_cfg)

    train(cfg, agent=factory)
    assert built == [(3, 1)]
    other = Agent(3, 1, dataclasses.replace(cfg.agent, tau=0.01))
    with pytest.raises(ValueError, match="config differs"):
        train(dataclasses.replace(cfg, run_dir=tmp_path / "other"), agent=other)
    assert not (tmp_path / "other").exists()
