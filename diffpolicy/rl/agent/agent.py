"""The off-policy diffusion agent: critic ensemble with targets, diffusion policy, optimisers,
optional EMA, and the update that ties them together. Its actor objective, sampler and critic are
the ones the config names in the registries of `diffpolicy.rl.agent.components`."""

from __future__ import annotations

import copy
import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from einops import rearrange, repeat
from torch import Tensor, nn
from torch.profiler import record_function

from diffpolicy.nets import EMA, Activation, Denoiser, soft_update, training
from diffpolicy.objectives import (
    QSMConfig,
    RunningRewardScale,
    paired_spread,
)
from diffpolicy.objectives.common import noisy_actions
from diffpolicy.rl.agent.compile import compile_networks
from diffpolicy.rl.agent.components import CRITICS, OBJECTIVES, critic_name, make_sampler
from diffpolicy.rl.agent.policy import DiffusionPolicy, move_schedule
from diffpolicy.rl.storage.buffer import Batch
from diffpolicy.samplers import Sampler
from diffpolicy.schedules import Prediction, ScheduleName

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentFactory",
    "best_of",
    "build_agent",
    "make_denoiser",
    "make_sampler",
]


@dataclass
class AgentConfig:
    """Everything that defines the agent. Defaults: the QSM reference preset."""

    objective: str = "qsm"
    """Actor objective: "qsm" (Q-score matching), "dql" (Diffusion-QL: BC + Q through the
    sampler), "dime", "dacer", "qvpo" (docs/objectives/), or a name added with
    `diffpolicy.rl.register_objective`."""
    qsm: QSMConfig = field(default_factory=QSMConfig)
    """QSM switches (alpha, target form, critic reduction, grad normalisation, clipping)."""
    alpha_target_std: float | None = None
    """QSM: tune alpha online (from qsm.alpha) so that the acting policy's per-dimension action
    std, measured from two actions per state, approaches this (`AdaptiveTemperature`; 0.089 is
    SAC's target entropy of -1 nat per dimension for a Gaussian). None: alpha stays fixed."""
    alpha_control: Literal["loss", "chain"] = "loss"
    """How a tuned alpha acts. "loss": it scales the QSM target, so the denoiser learns
    alpha grad_a Q and the chain's step contracts by 1 - u, u = h alpha A (A: Q's curvature), so
    its spread goes with (1 - u)^2: narrowest at u = 1 and wider again beyond. A reachable target
    has a stable fixed point u_s < 1 and an unstable one at 2 - u_s; an alpha pushed past 2 - u_s
    finds the chain wider, raises alpha further and runs away (docs: Theory). "chain": the
    denoiser keeps learning
    qsm.alpha grad_a Q and every chain (acting, target actions, the spread measurement) runs at
    temperature qsm.alpha / alpha: the same law exp(alpha Q), but a drift per step that does not
    depend on alpha, so the chain stays stable whatever alpha. A short chain's spread also
    carries its start, which no temperature removes: below that floor alpha still grows without
    end (the chain tends to a noiseless ascent; docs: Experiments)."""
    alpha_max: float | None = None
    """QSM with alpha_target_std: the largest alpha the controller may reach (the coldest
    policy accepted). A target below what the acting chain can reach drives alpha up without end
    (docs: Theory); this holds it at the bound instead. None: unbounded."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log alpha (SAC's)."""
    alpha_spread_states: int = 32
    """States of each batch (all of it, if smaller) on which the acting policy draws its two
    actions per state."""
    dql_eta: float = 1.0
    """Diffusion-QL: weight of the normalised -Q term against the BC loss."""
    dime_alpha: float = 1.0
    """DIME: the entropy coefficient alpha (its start, when dime_target_entropy tunes it)."""
    dime_target_entropy: float | None = -1.0
    """DIME: tune alpha (Adam, alpha_lr) so that the chain's entropy bound approaches this many
    nats per action dimension (SAC's -1). None: alpha stays dime_alpha."""
    dacer_alpha: float = 3.0
    """DACER: the starting alpha; the noise added to the chain's actions has std
    alpha * dacer_noise_scale (the authors' implementation starts at 3)."""
    dacer_alpha_lr: float = 0.03
    """DACER: Adam learning rate of log alpha (the authors' implementation's)."""
    dacer_noise_scale: float = 0.15
    """DACER: lambda, the noise std per unit alpha (the authors' implementation: 0.15, 0.1 on
    some environments)."""
    dacer_target_entropy: float = -0.9
    """DACER: target of the Gaussian-mixture entropy estimate, in nats per action dimension."""
    dacer_entropy_every: int = 10_000
    """DACER: estimate the entropy and step alpha every this many actor steps."""
    dacer_entropy_samples: int = 200
    """DACER: actions drawn per state of the batch for the entropy estimate."""
    qvpo_samples: int = 64
    """QVPO: actions drawn per state; the best by Q is trained on, weighted by its advantage."""
    qvpo_entropy_weight: float = 0.02
    """QVPO: omega, the weight of the denoising loss towards uniform actions (entropy term)."""
    schedule: ScheduleName = "vp"
    """Noise schedule name."""
    diffusion_steps: int = 5
    """T, the number of noise levels the denoiser is trained on."""
    sampler: str = "ddpm"
    """Sampler used to act and to draw next actions for the critic target: "ddpm", "ddim",
    "langevin", or a name added with `diffpolicy.rl.register_sampler`. "langevin": Langevin
    dynamics on the lowest-level score, the sampler under which QSM's fixed point is the Boltzmann
    policy (docs: Theory); DDPM and DDIM assume noised-policy scores."""
    langevin_steps: int = 10
    """Langevin: steps per action (each one denoiser call, like one DDPM step)."""
    langevin_step_size: float = 2e-3
    """Langevin: step size h in x <- x + h * score + sqrt(2 h) z."""
    langevin_init_scale: float = 0.3
    """Langevin: the chain starts at this times an N(0, I) draw."""
    langevin_score: Literal["trained", "schedule"] = "trained"
    """Langevin: how the denoiser's output is read as a score. "trained": in the units the actor
    objective trained it, so the chain's stationary law is exp(alpha Q) for QSM with either
    target. "schedule": the diffusion convention -eps / sqrt(1 - abar_0), which with QSM's eps
    target samples exp(alpha / sqrt(1 - abar_0) Q) (2.26x alpha at vp, T = 5): how the first
    Langevin variant (harness method qsm-w256-langevin) was run."""
    target_sampler_steps: int | None = None
    """Sampler steps for the critic's target actions (Langevin steps, or K DDPM/DDIM levels);
    None: the acting sampler's. Fewer steps make the update cheaper."""
    sample_steps: int | None = None
    """K <= T evenly spaced levels visited when sampling (None: all T)."""
    ddpm_variance: Literal["small", "large"] = "large"
    """DDPM posterior variance; the reference adds sqrt(beta_t) noise ("large")."""
    ddim_eta: float = 0.0
    """DDIM stochasticity in [0, 1]."""
    prediction: Prediction = "eps"
    """What the denoiser predicts."""
    actor_hidden: tuple[int, ...] = (512, 512)
    """Denoiser MLP widths."""
    actor_activation: Activation = "mish"
    """Denoiser activation (the reference's Mish; "silu" and "relu" are cheaper)."""
    critic_hidden: tuple[int, ...] = (512, 512)
    """Critic MLP widths."""
    critic_members: int = 2
    """Number of Q-networks in the ensemble."""
    critic_layer_norm: bool = False
    """LayerNorm after each critic hidden layer."""
    critic_batch_renorm: bool = False
    """Batch renormalisation of the critic's input and hidden layers (CrossQ's critic)."""
    critic_renorm_warmup: int = 100_000
    """Batch renorm: critic updates of plain batch normalisation before renormalising."""
    critic_input_renorm: bool = False
    """Batch renormalisation of the critic's input only (the per-feature standardisation of the
    observation-action pairs that CrossQ's critic starts with), combinable with LayerNorm; with
    target networks, the targets read it with their Polyak-averaged running statistics."""
    critic_residual_blocks: int = 0
    """0: the critic is an MLP of critic_hidden's widths. N >= 1: BRO's critic (Nauman et al.,
    NeurIPS 2024): one Linear of width critic_hidden[0] with LayerNorm, then N residual blocks
    x + LN(W2 relu(LN(W1 x))) of that width (`diffpolicy.nets.EnsembleResidualBlock`); needs one
    width in critic_hidden and no critic_batch_renorm."""
    reset_every: int = 0
    """Every this many critic updates, re-initialise every network (critics, targets, denoiser,
    its EMA) and clear the optimisers' moments, keeping the replay buffer, the step counts and
    the learning-rate schedule (periodic resets: Nikishin et al., ICML 2022; BRO). 0: never."""
    reward_normalization: bool = False
    """The critic learns from r / s, s a running mean of |r| over the replay batches
    (`diffpolicy.objectives.RunningRewardScale`): rewards multiplied by any c > 0 give the same
    agent, and QSM's fixed alpha means the same policy temperature on every env. Rewards of
    about 1 per step (MuJoCo locomotion) keep roughly their size."""
    critic_value_bins: int = 0
    """0: each critic member outputs Q and is fitted by the squared TD error. N >= 2: it outputs
    a categorical distribution over N bins of [-V, V], V = critic_reward_bound / (1 - gamma),
    fitted by HL-Gauss cross-entropy to the TD target (`diffpolicy.nets.HLGauss`); Q is its
    expectation. Works with either critic loss, LayerNorm and batch renorm."""
    critic_reward_bound: float = 10.0
    """With critic_value_bins: the largest |reward| per step the value support must hold (10
    covers the MuJoCo locomotion tasks; DeepMind Control's rewards lie in [0, 1])."""
    critic: str = "td"
    """Critic network and loss: "td" (TD loss against Polyak-averaged target critics), "crossq"
    (CrossQ: current and next state-actions through the critic in one batch, no target network,
    `crossq_td_loss`), or a name added with `diffpolicy.rl.register_critic`."""
    critic_target_network: bool = True
    """False: the older way to choose critic "crossq" (kept so older configs and command lines
    mean what they meant); refused with a critic that keeps target networks."""
    critic_betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas of the critics (CrossQ uses (0.5, 0.999))."""
    actor_every: int = 1
    """Actor (and EMA) step every this many critic steps (CrossQ's policy delay is 3)."""
    target_subset: int | None = None
    """Min over this many randomly chosen target members (None: all, clipped double Q)."""
    actor_lr: float = 3e-4
    """Adam learning rate of the denoiser."""
    actor_lr_decay_steps: int = 2_000_000
    """Cosine decay of the actor's rate to 0 over this many updates (0: constant)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics."""
    batch_size: int = 256
    """Minibatch size of every update."""
    gamma: float = 0.99
    """Discount."""
    tau: float = 0.005
    """Polyak rate of the target critics, applied every update."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to training actions (and to target next actions). DIME
    adds none (its chain's own noise explores), DACER alpha * dacer_noise_scale."""
    ema_decay: float = 0.0
    """EMA of the denoiser (0: off). When on, the EMA weights act and draw target actions."""
    eval_best_of: int = 1
    """At evaluation, sample this many actions and take the one with the highest mean Q."""
    eval_temperature: float = 1.0
    """At evaluation, scale the sampling noise by T. Langevin (noise sqrt(2 h T)) then samples
    pi^(1 / T); DDPM (noise times T) does not: its law narrows faster than pi^(1 / T) (docs:
    Theory). 1: the policy itself; 0: no sampling noise after the initial draw."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """"bfloat16": the update's network passes (target actions, critic step, actor step) run
    under torch.autocast in bfloat16 on CPU or CUDA, where matmuls are 2-3x faster; parameters,
    optimiser state, batch-renorm statistics, every network's output and every loss stay
    float32. Acting and evaluation run in float32. "float32": no autocast."""
    compile: bool = False
    """torch.compile the denoiser and critic networks (falls back to eager, with a warning,
    where compilation is unavailable)."""

    def __post_init__(self) -> None:
        from diffpolicy.rl.agent.components import check_components
        from diffpolicy.rl.run.validation import check_agent_config

        check_agent_config(self)
        check_components(self)  # the names, against the registries, and the options they read


@functools.cache
def _cpu_has_bfloat16_matmuls() -> bool:
    """Whether oneDNN runs bfloat16 matmuls natively on this CPU (torch's own test of it)."""
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(supported is not None and supported())


@functools.cache
def warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)


class _CosineDecay:
    """lr factor (1 + cos(pi min(k, K) / K)) / 2: decays to 0 over K updates and stays there."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __call__(self, k: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(k, self.steps) / self.steps))


def make_denoiser(obs_dim: int, act_dim: int, cfg: AgentConfig) -> Denoiser:
    """The denoiser the config describes (freshly initialised)."""
    return Denoiser(
        obs_dim, act_dim, cfg.actor_hidden, act=cfg.actor_activation, num_levels=cfg.diffusion_steps
    )


class Agent(nn.Module):
    """Owns the networks, targets, EMA and optimisers; `update` runs critic, actor, targets."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: AgentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        denoiser = make_denoiser(obs_dim, act_dim, cfg)
        self.actor_objective = OBJECTIVES[cfg.objective]
        self.critic_update = CRITICS[critic_name(cfg)]
        self.policy = DiffusionPolicy(denoiser, make_sampler(cfg), act_dim)
        # Own samplers only where the config asks for them; otherwise the policy's (read when
        # used, so a sampler swapped into the policy is the one every use sees).
        self._target_sampler = (
            make_sampler(cfg, cfg.target_sampler_steps)
            if cfg.target_sampler_steps is not None
            else None
        )
        self._eval_sampler = (
            make_sampler(cfg, temperature=cfg.eval_temperature)
            if cfg.eval_temperature != 1.0
            else None
        )
        self.critic = self.critic_update.network(cfg, obs_dim, act_dim)
        self.target_critic = (
            copy.deepcopy(self.critic).requires_grad_(False)
            if self.critic_update.target_network
            else None
        )
        self.reward_normaliser = RunningRewardScale() if cfg.reward_normalization else None
        self.num_updates = 0
        """Critic steps taken (the actor steps every `actor_every` of them)."""
        self.ema = EMA(denoiser, cfg.ema_decay) if cfg.ema_decay > 0 else None
        rule = self.actor_objective.temperature
        self.temperature = rule.build(cfg, act_dim) if rule is not None else None
        """The objective's tuned temperature (QSM's alpha, DIME's and DACER's entropy
        coefficients), or None."""
        # fused: one kernel per step for all parameters, and no host read of the step count.
        self.actor_opt = torch.optim.Adam(denoiser.parameters(), lr=cfg.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(
            self.critic.parameters(), lr=cfg.critic_lr, betas=cfg.critic_betas, fused=True
        )
        self.actor_lr_schedule = (
            torch.optim.lr_scheduler.LambdaLR(
                self.actor_opt, _CosineDecay(cfg.actor_lr_decay_steps)
            )
            if cfg.actor_lr_decay_steps > 0
            else None
        )

        self.train()
        if cfg.compile:
            compile_networks(self, obs_dim, act_dim)

    def train(self, mode: bool = True) -> Agent:
        """Critics stay in evaluation mode (running statistics, for batch renorm) outside the
        critic step, which switches them itself."""
        super().train(mode)
        self.critic.eval()
        if self.target_critic is not None:
            self.target_critic.eval()
        return self

    @property
    def chain_temperature(self) -> Tensor | None:
        """alpha_control "chain": the temperature qsm.alpha / alpha every chain runs at (a tensor,
        so reading it stalls nothing); None otherwise."""
        if self.temperature is None or self.cfg.alpha_control != "chain":
            return None
        return self.cfg.qsm.alpha / self.temperature.alpha

    def _at_chain_temperature(self, sampler: Sampler) -> Sampler:
        """`sampler`, or (alpha_control "chain") a shallow copy whose temperature is scaled by
        the learned chain temperature. A copy per call: the tuned value lives in one place."""
        scale = self.chain_temperature
        if scale is None:
            return sampler
        scaled = copy.copy(sampler)
        scaled.temperature = sampler.temperature * scale
        return scaled

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        for sampler in (self._target_sampler, self._eval_sampler):
            if sampler is not None:
                move_schedule(sampler, fn)
        return self

    @property
    def target_sampler(self):
        """The sampler of the critic's target actions (`target_sampler_steps` steps)."""
        return self.policy.sampler if self._target_sampler is None else self._target_sampler

    @property
    def eval_sampler(self):
        """The sampler that acts at evaluation (`eval_temperature`)."""
        return self.policy.sampler if self._eval_sampler is None else self._eval_sampler

    @property
    def acting_denoiser(self) -> nn.Module:
        """The EMA weights when EMA is on, else the online denoiser."""
        return self.ema.model if self.ema is not None else self.policy.denoiser

    @torch.no_grad()
    def act(self, obs: Tensor, explore: bool, generator: torch.Generator | None = None) -> Tensor:
        """obs (batch, obs_dim) -> actions (batch, act_dim) in [-1, 1].

        explore adds N(0, exploration_noise^2) and clips; without it, the chain runs at
        `eval_temperature` and `eval_best_of` > 1 picks the sample with the highest mean Q. The
        diffusion sample itself is stochastic unless the temperature is 0.
        """
        actions = best_of(
            self.policy,
            self.critic,
            obs,
            1 if explore else self.cfg.eval_best_of,
            generator,
            denoiser=self.acting_denoiser,
            sampler=self._at_chain_temperature(
                self.policy.sampler if explore else self.eval_sampler
            ),
        )
        if explore:
            actions = self._explore(actions, generator)
        return actions

    @torch.no_grad()
    def q_estimate(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The critic's Q(obs, actions), the mean over its members: (batch,), in the units of the
        rewards the agent is given (with reward_normalization, its Q times the reward scale). The
        critic is in evaluation mode here (running statistics, for batch renorm), as when grad Q
        is taken."""
        q = self.critic.reduce(self.critic(obs, actions), "mean")
        return q if self.reward_normaliser is None else q * self.reward_normaliser.scale

    def _explore(self, actions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return noisy_actions(actions, self.actor_objective.exploration_std(self), generator)

    @torch.no_grad()
    def target_actions(self, next_obs: Tensor) -> Tensor:
        """Next actions for the critic's TD target: the acting weights, `target_sampler_steps`
        steps of the sampler, plus exploration noise (the reference's target smoothing)."""
        sampler = self._at_chain_temperature(self.target_sampler)
        actions = self.policy(next_obs, denoiser=self.acting_denoiser, sampler=sampler)
        return self._explore(actions)

    def update(self, batch: Batch) -> dict[str, Tensor | float]:
        """One critic step, one actor step (on the updated critic), target and EMA updates.

        Returns metrics as tensors (reading them would stall an accelerator): the logger reads
        them when it writes. Each phase is a `record_function` range for the profiler
        (`python benchmarks/speed.py profile`)."""
        cfg = self.cfg
        if self.reward_normaliser is not None:
            batch = batch._replace(rewards=self.reward_normaliser.normalise(batch.rewards))
        with record_function("update/target_actions"), self._precision(batch):
            next_actions = self.target_actions(batch.next_obs)
        with record_function("update/critic_step"), training(self.critic):
            with self._precision(batch):
                critic_loss, metrics = self.critic_update.loss(self, batch, next_actions)
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_opt.step()
        self.num_updates += 1
        if self.target_critic is not None:
            with record_function("update/targets"):
                soft_update(self.target_critic, self.critic, cfg.tau)
        if (self.num_updates - 1) % cfg.actor_every == 0:
            metrics.update(self._actor_step(batch))
        if cfg.reset_every and self.num_updates % cfg.reset_every == 0:
            self.reset_networks()
        return metrics

    @torch.no_grad()
    def reset_networks(self) -> None:
        """Fresh initial weights (drawn from torch's global generator) in every network, in
        place (optimisers and compiled modules keep their parameter objects); the optimisers'
        moments cleared, so Adam starts over as at its first step."""
        cfg, denoiser = self.cfg, self.policy.denoiser
        denoiser.load_state_dict(make_denoiser(self.obs_dim, self.act_dim, cfg).state_dict())
        self.critic.load_state_dict(
            self.critic_update.network(cfg, self.obs_dim, self.act_dim).state_dict()
        )
        if self.target_critic is not None:
            self.target_critic.load_state_dict(self.critic.state_dict())
        if self.ema is not None:
            self.ema.model.load_state_dict(denoiser.state_dict())
            self.ema.num_updates.zero_()
            self.ema._count = 0
        for opt in (self.actor_opt, self.critic_opt):
            opt.state.clear()

    def _precision(self, batch: Batch) -> torch.autocast:
        """The autocast context of `precision` on the batch's device (disabled for float32).
        Backward passes run outside it, as autocast intends: they follow the forward's dtypes."""
        device, bfloat16 = batch.obs.device.type, self.cfg.precision == "bfloat16"
        if bfloat16 and device == "cpu" and not _cpu_has_bfloat16_matmuls():
            warn_once(
                "precision bfloat16 on a CPU without bfloat16 matmul instructions (AVX512-BF16 "
                "or AMX): bfloat16 matmuls are emulated here, about 10-100x slower than float32"
            )
        return torch.autocast(device, torch.bfloat16, enabled=bfloat16)

    def _actor_step(self, batch: Batch) -> dict[str, Tensor | float]:
        denoiser = self.policy.denoiser
        with record_function("update/actor_step"):
            with self._precision(batch):
                actor_loss, actor_metrics = self.actor_objective.loss(self, batch)
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            if self.actor_lr_schedule is not None:
                self.actor_lr_schedule.step()

        if self.ema is not None:
            with record_function("update/ema"):
                self.ema.update(denoiser)
        if self.temperature is not None:
            with record_function("update/temperature"), self._precision(batch):
                step = self.actor_objective.temperature.step
                actor_metrics.update(step(self, batch, actor_metrics))
        actor_metrics["actor_lr"] = self.actor_opt.param_groups[0]["lr"]
        return actor_metrics

    def spread_temperature_step(self, batch: Batch) -> dict[str, Tensor]:
        """Two acting-chain actions (no exploration noise) for each of the batch's first
        `alpha_spread_states` states; their spread steps alpha."""
        obs = batch.obs[: self.cfg.alpha_spread_states]
        with torch.no_grad():
            actions = self.policy(
                torch.cat([obs, obs]),
                denoiser=self.acting_denoiser,
                sampler=self._at_chain_temperature(self.policy.sampler),
            )
        first, second = actions.chunk(2)
        return self.temperature.step(paired_spread(first, second))

    def training_state(self) -> dict:
        """Networks, targets, EMA, optimisers and the lr schedule: all tensors and plain types."""
        state = {
            "modules": self.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "num_updates": self.num_updates,
        }
        if self.actor_lr_schedule is not None:
            state["actor_lr_schedule"] = self.actor_lr_schedule.state_dict()
        if self.temperature is not None:
            state["temperature_opt"] = self.temperature.optimizer.state_dict()
        return state

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["modules"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.num_updates = int(state.get("num_updates", 0))  # absent before actor_every existed
        if self.temperature is not None:
            self.temperature.optimizer.load_state_dict(state["temperature_opt"])
        if self.actor_lr_schedule is not None:
            saved = state["actor_lr_schedule"]
            if "lr_lambdas" not in saved:  # first checkpoints used CosineAnnealingLR: same curve
                progress = {k: saved[k] for k in ("last_epoch", "_step_count", "_last_lr")}
                saved = {**self.actor_lr_schedule.state_dict(), **progress}
            self.actor_lr_schedule.load_state_dict(saved)


def best_of(
    policy: DiffusionPolicy,
    critic: nn.Module,
    obs: Tensor,
    n: int,
    generator: torch.Generator | None = None,
    denoiser: nn.Module | None = None,
    sampler: Sampler | None = None,
) -> Tensor:
    """obs (batch, obs_dim) -> actions (batch, act_dim): n samples per observation, the one with
    the highest mean Q kept (n = 1: one sample, the critic unused)."""
    obs_rep = repeat(obs, "b d -> (b n) d", n=n) if n > 1 else obs
    actions = policy(obs_rep, generator, denoiser=denoiser, sampler=sampler)
    if n > 1:
        q = rearrange(critic(obs_rep, actions).mean(dim=0), "(b n) -> b n", n=n)
        best = rearrange(actions, "(b n) d -> b n d", n=n)
        actions = best[torch.arange(obs.shape[0], device=obs.device), q.argmax(dim=1)]
    return actions


AgentFactory = Callable[[int, int, AgentConfig], Agent]
"""(obs_dim, act_dim, cfg) -> an agent: `Agent` itself, a subclass, or a function."""


def build_agent(
    agent: Agent | AgentFactory | None, obs_dim: int, act_dim: int, cfg: AgentConfig
) -> Agent:
    """The agent a training run uses: `Agent(obs_dim, act_dim, cfg)` by default, else the caller's
    factory called the same way, or the caller's agent itself. Its config must be `cfg`, which
    the run directory records."""
    if agent is None:
        agent = Agent(obs_dim, act_dim, cfg)
    elif not isinstance(agent, nn.Module):
        agent = agent(obs_dim, act_dim, cfg)
    if getattr(agent, "cfg", cfg) != cfg:
        raise ValueError(
            "the agent's config differs from the run config's agent, which config.json records: "
            "build it with the same AgentConfig"
        )
    return agent
