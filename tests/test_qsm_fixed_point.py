"""What QSM trains towards, checked against closed forms.

QSM regresses the policy's score onto alpha * grad_a Q. Its fixed point is the policy whose score
is alpha * grad_a Q, i.e. the Boltzmann policy pi(a) ~ exp(alpha Q(a)): for a concave quadratic Q
a Gaussian with mean m and covariance (alpha A)^-1, and multi-modal where Q has several maxima.
Behaviour cloning on a two-mode dataset keeps both modes too.
"""

from __future__ import annotations

import torch
from torch import nn

from diffpolicy.nets import Denoiser
from diffpolicy.objectives import QSMConfig, bc_loss, qsm_loss
from diffpolicy.samplers import Clipping, DDPMSampler, LangevinSampler
from diffpolicy.schedules import make_schedule


class _FixedQ(nn.Module):
    """A fixed action-value Q(a) (no observation), shaped like a two-member critic ensemble."""

    def __init__(self, q_fn) -> None:
        super().__init__()
        self.q_fn = q_fn

    def forward(self, obs, a: torch.Tensor) -> torch.Tensor:
        q = self.q_fn(a)
        return torch.stack([q, q])

    @staticmethod
    def reduce(q: torch.Tensor, how: str) -> torch.Tensor:
        return q.mean(dim=0)


def _small_denoiser() -> Denoiser:
    return Denoiser(0, 2, hidden=(64, 64), time_dim=16, time_hidden=(32, 32))


def _train(denoiser: nn.Module, loss_fn, steps: int, lr: float = 3e-3) -> float:
    opt = torch.optim.Adam(denoiser.parameters(), lr=lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)  # settles the fit at the end
    for _ in range(steps):
        loss, _ = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    return loss.item()


def test_qsm_fixed_point_is_the_boltzmann_policy_of_a_quadratic_q():
    """Q(a) = -1/2 (a - m)^T A (a - m); Boltzmann policy exp(alpha Q) = N(m, (alpha A)^-1).

    The denoiser is trained with the QSM loss alone (target="score": its score at every level is
    regressed onto alpha grad Q), on actions spread over the region the policy will visit. Its
    lowest-level score is then sampled with Langevin dynamics of step h: for a linear score
    -K (x - m), K = alpha A = U diag(lam) U^T, the unadjusted chain's stationary law is exactly
    N(m, V), V = U diag(1 / (lam (1 - h lam / 2))) U^T, from v = (1 - h lam)^2 v + 2h per
    eigen-direction. That closed form is the expected covariance.

    Tolerance: Monte-Carlo error of n = 2000 samples (5 standard errors: mean sqrt(V_ii / n),
    covariance sqrt((V_ii V_jj + V_ij^2) / n)), plus 0.04 absolute for the network's fitting error
    (an MLP fitting a linear field; the trained loss is ~1e-3 of the target's scale).
    """
    torch.manual_seed(0)
    m = torch.tensor([0.3, -0.2])
    A = torch.tensor([[2.0, 0.6], [0.6, 1.0]])
    alpha = 2.0
    q = _FixedQ(lambda a: -0.5 * torch.einsum("bi,ij,bj->b", a - m, A, a - m))
    schedule = make_schedule("vp", 5)
    denoiser = _small_denoiser()
    cfg = QSMConfig(alpha=alpha, target="score")
    _train(
        denoiser,
        lambda: qsm_loss(denoiser, q, schedule, None, m + 1.2 * torch.randn(256, 2), cfg),
        steps=1500,
    )

    h, n = 0.02, 2000
    sampler = LangevinSampler(schedule, step_size=h, num_steps=600)
    x = sampler.sample(denoiser, None, torch.randn(n, 2), torch.Generator().manual_seed(1))

    lam, U = torch.linalg.eigh(alpha * A)
    V = U @ torch.diag(1.0 / (lam * (1 - h * lam / 2))) @ U.T
    mc_mean = 5 * (torch.diag(V) / n).sqrt()
    mc_cov = 5 * ((torch.outer(torch.diag(V), torch.diag(V)) + V**2) / n).sqrt()
    assert ((x.mean(0) - m).abs() <= mc_mean + 0.04).all(), (x.mean(0), m)
    assert ((torch.cov(x.T) - V).abs() <= mc_cov + 0.04).all(), (torch.cov(x.T), V)
    # The fixed point itself: where the policy samples, its learned score is alpha grad Q.
    with torch.no_grad():
        score = sampler.score(denoiser, x, torch.zeros(n, dtype=torch.long), None)
    boltzmann = -alpha * (x - m) @ A
    error = (score - boltzmann).norm(dim=1).mean() / boltzmann.norm(dim=1).mean()
    assert error < 0.05, error  # 0.013 here; a 1.25x alpha in the loss gives 0.24


def _two_maxima_q(a: torch.Tensor) -> torch.Tensor:
    """Equal-height maxima near (-0.6, 0) and (0.6, 0): the log of two equal Gaussian bumps."""
    bumps = [-((a - torch.tensor([c, 0.0])) ** 2).sum(-1) / (2 * 0.25**2) for c in (-0.6, 0.6)]
    return torch.logsumexp(torch.stack(bumps), dim=0)


def _mass_near(x: torch.Tensor, centre: tuple[float, float], radius: float = 0.4) -> float:
    return ((x - torch.tensor(centre)).norm(dim=-1) < radius).float().mean().item()


def test_qsm_policy_keeps_both_maxima_of_a_bimodal_q():
    """Trained with QSM on a Q with two separated, equal maxima, the policy (its learned score,
    sampled with Langevin dynamics from uniform starts in [-1, 1]^2) puts at least a quarter of its
    mass within 0.4 of each maximum.

    The Boltzmann policy exp(Q) is here exactly the equal mixture of N((+-0.6, 0), 0.25^2 I), which
    puts 0.5 (1 - exp(-0.4^2 / (2 0.25^2))) = 0.36 within 0.4 of each maximum. A policy collapsed
    onto one maximum (what a deterministic actor does) puts ~0 near the other; one that ignored Q
    (uniform on [-1, 1]^2) puts 0.13 near each.
    """
    torch.manual_seed(0)
    schedule = make_schedule("vp", 5)
    # Wider than the other tests' denoiser: the score field has a sharp ridge between the maxima.
    denoiser = Denoiser(0, 2, hidden=(128, 128), time_dim=16, time_hidden=(32, 32))
    q = _FixedQ(_two_maxima_q)
    cfg = QSMConfig(alpha=1.0, target="score")
    _train(
        denoiser,
        lambda: qsm_loss(denoiser, q, schedule, None, torch.rand(512, 2) * 2 - 1, cfg),
        steps=2000,
    )
    sampler = LangevinSampler(schedule, step_size=0.002, num_steps=400, clipping=Clipping())
    x_init = torch.rand(2000, 2) * 2 - 1
    x = sampler.sample(denoiser, None, x_init, torch.Generator().manual_seed(1))
    assert _mass_near(x, (-0.6, 0.0)) >= 0.25
    assert _mass_near(x, (0.6, 0.0)) >= 0.25


def test_bc_reproduces_both_modes_of_a_mixture_with_their_weights():
    """BC on samples of 0.3 N((-0.6, 0.3), 0.1^2 I) + 0.7 N((0.6, -0.3), 0.1^2 I); DDPM samples of
    the trained denoiser fall near each mode with frequencies 0.3 and 0.7.

    Tolerance 0.07: 5 Monte-Carlo standard errors of n = 2000 (5 sqrt(0.21 / 2000) = 0.05) plus
    0.02 for the fit. Each mode's own spread must be near 0.1 (within 0.05).
    """
    torch.manual_seed(0)
    means = torch.tensor([[-0.6, 0.3], [0.6, -0.3]])

    def data(n: int) -> torch.Tensor:
        which = (torch.rand(n) < 0.7).long()
        return means[which] + 0.1 * torch.randn(n, 2)

    schedule = make_schedule("cosine", 50)
    denoiser = _small_denoiser()
    _train(denoiser, lambda: bc_loss(denoiser, schedule, None, data(1024)), steps=1500)
    x = DDPMSampler(schedule).sample(
        denoiser, None, torch.randn(2000, 2), torch.Generator().manual_seed(1)
    )
    nearest = torch.cdist(x, means).argmin(dim=1)
    weights = torch.bincount(nearest, minlength=2).float() / len(x)
    assert torch.allclose(weights, torch.tensor([0.3, 0.7]), atol=0.07), weights
    for k in range(2):
        spread = (x[nearest == k] - means[k]).std(dim=0)
        assert ((spread - 0.1).abs() < 0.05).all(), (k, spread)
