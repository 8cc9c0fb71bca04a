"""Per-update and per-action time: QSM agents (reference at K = 5 and 10, the Langevin variant)
against SB3 SAC.

    .venv/bin/python -m pytest benchmarks/test_update_speed.py --benchmark-enable

One torch thread, Hopper-v5 sizes (obs 11, act 3), batch 256, replay buffers filled with random
transitions. Two groups, each read side by side (pytest-benchmark prints every row's ratio to the
group's fastest in parentheses):

- "update": one full training update including drawing the minibatch from the replay buffer.
  QSM: `Agent(11, 3, AgentConfig(diffusion_steps=K)).update(buffer.sample(256))` (critic TD step
  with K-step sampled next actions, QSM actor step, target update; defaults otherwise, 512x512
  networks). "qsm-w256-langevin": 256x256 networks, next actions and acting by 10 Langevin
  steps (AgentConfig(sampler="langevin")); "qsm-crossq-critic": `presets.qsm_crossq_critic()`
  (the same with 3 Langevin steps for the next actions, on CrossQ's critic); "qsm-best":
  `presets.qsm_best()` (the same actor on twin LayerNorm critics with Polyak targets).
  SAC: `model.train(gradient_steps=1, batch_size=256)` of SB3's default SAC (256x256 networks,
  actor, critics and entropy coefficient).
- "act": one acting step at batch 1 as the training loops take it, from a numpy observation to an
  action: QSM `agent.act(obs, explore=True)` (K denoiser calls plus noise), SAC
  `model.predict(obs, deterministic=False)`.

Run it on an otherwise idle machine; timings taken while other runs use the cores are distorted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffpolicy.rl import Agent, AgentConfig, ReplayBuffer
from diffpolicy.rl.agent.presets import qsm_best, qsm_crossq_critic
from timing.common import random_transitions

torch.set_num_threads(1)

OBS_DIM, ACT_DIM, BATCH, FILL = 11, 3, 256, 10_000
QSM_CONFIGS = {
    "qsm-K5": AgentConfig(diffusion_steps=5),
    "qsm-K10": AgentConfig(diffusion_steps=10),
    "qsm-w256-langevin": AgentConfig(
        actor_hidden=(256, 256), critic_hidden=(256, 256), sampler="langevin"
    ),
    "qsm-crossq-critic": qsm_crossq_critic().agent,
    "qsm-best": qsm_best().agent,
}


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return random_transitions()


@pytest.fixture(scope="module")
def qsm_buffer(data) -> ReplayBuffer:
    buffer = ReplayBuffer(OBS_DIM, ACT_DIM, FILL)
    buffer.obs[:] = torch.from_numpy(data["obs"])
    buffer.actions[:] = torch.from_numpy(data["actions"])
    buffer.rewards[:] = torch.from_numpy(data["rewards"])
    buffer.next_obs[:] = torch.from_numpy(data["next_obs"])
    buffer.terminated[:] = torch.from_numpy(data["terminated"])
    buffer.size, buffer.position = FILL, 0
    return buffer


def _qsm_agent(name: str) -> Agent:
    torch.manual_seed(0)
    return Agent(OBS_DIM, ACT_DIM, QSM_CONFIGS[name])


@pytest.fixture(scope="module")
def sac_model(data):
    sb3 = pytest.importorskip("stable_baselines3")
    import gymnasium as gym
    from stable_baselines3.common.logger import Logger

    obs_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)

    class _Spaces(gym.Env):  # SAC needs an env only for its spaces here
        observation_space, action_space = obs_space, act_space

        def reset(self, *, seed=None, options=None):
            return np.zeros(OBS_DIM, np.float32), {}

        def step(self, action):
            return np.zeros(OBS_DIM, np.float32), 0.0, False, False, {}

    model = sb3.SAC("MlpPolicy", _Spaces(), buffer_size=FILL, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))
    buf = model.replay_buffer
    for i in range(FILL):
        buf.add(
            data["obs"][i : i + 1],
            data["next_obs"][i : i + 1],
            data["actions"][i : i + 1],
            data["rewards"][i : i + 1],
            data["terminated"][i : i + 1],
            [{}],
        )
    return model


# --- one training update at batch 256 ------------------------------------------------------------
@pytest.mark.benchmark(group="update (batch 256)")
@pytest.mark.parametrize("name", QSM_CONFIGS)
def test_update_qsm(benchmark, qsm_buffer, name):
    agent = _qsm_agent(name)
    metrics = benchmark(lambda: agent.update(qsm_buffer.sample(BATCH)))
    assert np.isfinite(metrics["critic_loss"])


@pytest.mark.benchmark(group="update (batch 256)")
def test_update_sac(benchmark, sac_model):
    benchmark(lambda: sac_model.train(gradient_steps=1, batch_size=BATCH))
    assert sac_model._n_updates > 0


# --- one acting step at batch 1 ------------------------------------------------------------------
@pytest.mark.benchmark(group="act (batch 1)")
@pytest.mark.parametrize("name", QSM_CONFIGS)
def test_act_qsm(benchmark, data, name):
    agent = _qsm_agent(name)
    obs = data["obs"][0]

    def act() -> np.ndarray:
        return agent.act(torch.as_tensor(obs).unsqueeze(0), explore=True)[0].numpy()

    action = benchmark(act)
    assert action.shape == (ACT_DIM,)


@pytest.mark.benchmark(group="act (batch 1)")
def test_act_sac(benchmark, data, sac_model):
    obs = data["obs"][0]
    action, _ = benchmark(lambda: sac_model.predict(obs, deterministic=False))
    assert action.shape == (ACT_DIM,)
