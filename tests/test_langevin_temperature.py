"""The acting chain samples exp(alpha Q) at the alpha the config states.

For a quadratic Q(a) = -A/2 |a - m|^2 the QSM fixed point with the eps target is the denoiser
eps(a, t) = -alpha grad_a Q(a) = alpha A (a - m) at every level. Unadjusted Langevin with step h on
the score alpha grad_a Q of precision P = alpha A has the Gaussian stationary law with variance
exactly 1 / (P (1 - h P / 2)): the closed form checked here, for any schedule and T. Read in the
diffusion convention (-eps / sqrt(1 - abar_0)), the variance would be sqrt(1 - abar_0) times that
(0.44x at vp, T = 5).
"""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffpolicy.objectives import QSMConfig
from diffpolicy.rl import AgentConfig
from diffpolicy.rl.agent.agent import make_sampler
from diffpolicy.schedules import make_schedule


def _chain_variance(cfg: AgentConfig, precision_per_alpha: float, mode: float) -> float:
    sampler = make_sampler(cfg)
    alpha = cfg.qsm.alpha

    def qsm_fixed_point(a, t, obs):  # eps target: -eps = alpha grad_a Q
        return alpha * precision_per_alpha * (a - mode)

    g = torch.Generator().manual_seed(0)
    x_init = torch.randn(20_000, 2, generator=g, dtype=torch.float64)
    samples = sampler.sample(qsm_fixed_point, None, x_init, g)
    assert abs(samples.mean().item() - mode) < 0.01
    return samples.var(dim=0).mean().item()


@settings(max_examples=6)
@given(
    schedule=st.sampled_from(["vp", "cosine", "linear"]),
    T=st.sampled_from([5, 10, 20]),
    alpha=st.sampled_from([20.0, 50.0, 120.0]),
)
def test_langevin_on_the_eps_target_samples_exp_alpha_q(schedule, T, alpha):
    precision = 100.0  # alpha * A: a std of 0.1, so the [-1, 1] clipping never acts
    h = 1e-3
    cfg = AgentConfig(
        schedule=schedule,
        diffusion_steps=T,
        sampler="langevin",
        langevin_steps=300,  # 30 relaxation times 1 / (h P)
        langevin_step_size=h,
        langevin_init_scale=0.1,
        qsm=QSMConfig(alpha=alpha, target="eps"),
    )
    exact = 1.0 / (precision * (1.0 - h * precision / 2.0))
    var = _chain_variance(cfg, precision / alpha, mode=0.2)
    # 40,000 draws: the variance estimate's relative standard error is sqrt(2 / 40000) = 0.7%.
    assert abs(var / exact - 1.0) < 0.04


def test_the_first_runs_convention_samples_a_colder_law():
    """langevin_score="schedule" (how qsm-w256-langevin was run) reads -eps / sqrt(1 - abar_0)."""
    precision, h = 100.0, 1e-3
    cfg = AgentConfig(
        sampler="langevin",
        langevin_steps=300,
        langevin_step_size=h,
        langevin_init_scale=0.1,
        langevin_score="schedule",
    )
    sigma0 = math.sqrt(1.0 - make_schedule("vp", 5).alpha_bars[0].item())
    effective = precision / sigma0
    exact = 1.0 / (effective * (1.0 - h * effective / 2.0))
    var = _chain_variance(cfg, precision / cfg.qsm.alpha, mode=0.0)
    assert abs(var / exact - 1.0) < 0.04


def test_eval_temperature_scales_the_sampled_variance():
    """eval_temperature T samples exp(alpha Q / T): variance T / (P (1 - h P / 2))."""
    from diffpolicy.rl import Agent

    precision, h = 100.0, 1e-3
    for temperature in (0.25, 0.0):
        cfg = AgentConfig(
            actor_hidden=(8,),
            critic_hidden=(8,),
            sampler="langevin",
            langevin_steps=300,
            langevin_step_size=h,
            langevin_init_scale=0.1,
            eval_temperature=temperature,
        )
        sampler = Agent(1, 2, cfg).eval_sampler

        def qsm_fixed_point(a, t, obs):  # -eps = alpha grad Q with alpha A = precision
            return precision * (a - 0.2)

        g = torch.Generator().manual_seed(0)
        x_init = torch.randn(20_000, 2, generator=g, dtype=torch.float64)
        var = sampler.sample(qsm_fixed_point, None, x_init, g).var(dim=0).mean().item()
        exact = temperature / (precision * (1.0 - h * precision / 2.0))
        # At T = 0 the chain contracts its start by (1 - h P)^300 = 2e-14: no spread is left.
        assert abs(var - exact) <= 0.04 * exact + 1e-12
