"""Contract tests for the objectives: QSM, behaviour cloning, Diffusion-QL and the TD loss.

Targets are checked against oracle denoisers written from the documented formulas (a quadratic
critic makes grad_a Q known in closed form), and gradient flow is checked parameter by parameter.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import Tensor, nn

from diffpolicy.nets import CriticEnsemble, Denoiser
from diffpolicy.objectives import (
    QSMConfig,
    action_gradient,
    bc_loss,
    crossq_td_loss,
    dql_loss,
    qsm_loss,
    td_loss,
)
from diffpolicy.objectives.common import noised_actions, policy_actions
from diffpolicy.objectives.dacer import dacer_loss
from diffpolicy.objectives.dime import dime_loss
from diffpolicy.objectives.qvpo import qvpo_loss
from diffpolicy.rl.storage.buffer import ReplayBuffer
from diffpolicy.samplers import NO_CLIPPING, Clipping, DDPMSampler
from diffpolicy.schedules import make_schedule

torch.set_num_threads(1)

OBS, ACT, BATCH, T = 3, 2, 64, 5
F64 = torch.float64


# --- helpers -------------------------------------------------------------------------------------
def _schedule(dtype=torch.float32):
    return make_schedule("vp", T, dtype=dtype)


def _data(batch=BATCH, dtype=torch.float32, seed=0, spread=0.9):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(batch, OBS, generator=g, dtype=dtype)
    actions = (torch.rand(batch, ACT, generator=g, dtype=dtype) * 2 - 1) * spread
    return obs, actions


def _denoiser(seed=0):
    torch.manual_seed(seed)
    return Denoiser(OBS, ACT, hidden=(16, 16), time_dim=8, time_hidden=(16, 16))


def _critic(seed=1, members=2):
    torch.manual_seed(seed)
    return CriticEnsemble(OBS, ACT, members, hidden=(16, 16))


def _gen(seed=123):
    return torch.Generator().manual_seed(seed)


class QuadraticCritic(nn.Module):
    """Q_i(s, a) = -scale/2 ||a - m_i||^2 per member i; grad_a Q_i = scale * (m_i - a)."""

    def __init__(self, centers: Tensor, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("centers", centers)  # (members, act_dim)
        self.scale = scale
        self.seen: list[Tensor] = []

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        self.seen.append(action.detach().clone())
        diff = action.unsqueeze(0) - self.centers.unsqueeze(1).to(action.dtype)
        return -0.5 * self.scale * diff.pow(2).sum(-1)  # (members, batch)

    reduce = staticmethod(CriticEnsemble.reduce)


M = torch.tensor([0.3, -0.5], dtype=F64)


def _quadratic(members=2):
    return QuadraticCritic(M.expand(members, ACT).clone())


class Oracle(nn.Module):
    """A denoiser whose output is a given function of (a_t, t); counts its calls."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.calls = 0

    def forward(self, a_t: Tensor, t: Tensor, obs: Tensor | None) -> Tensor:
        self.calls += 1
        return self.fn(a_t, t)


def _coefs(schedule, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """sqrt(abar_t), sqrt(1 - abar_t) from the table, shape (batch, 1)."""
    abar = schedule.alpha_bars.to(like.dtype)[t].unsqueeze(-1)
    return abar.sqrt(), (1 - abar).sqrt()


def _from_eps(schedule, eps: Tensor, a_t: Tensor, t: Tensor, prediction: str) -> Tensor:
    """Closed-form re-expression of an eps prediction (written out, not via schedule.convert)."""
    a, s = _coefs(schedule, t, a_t)
    x0 = (a_t - s * eps) / a
    return {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -eps / s}[prediction]


def _qsm_eps_target(schedule, alpha, target, a_t, t, grad_at=None, normalise=False):
    """The documented optimal eps-prediction for the quadratic critic."""
    a_q = a_t if grad_at is None else grad_at(a_t)
    g = M.to(a_t.dtype) - a_q
    if normalise:
        g = g / g.norm(dim=-1).mean()
    eps = -alpha * g
    if target == "score":
        eps = _coefs(schedule, t, a_t)[1] * eps
    return eps


# --- QSM -----------------------------------------------------------------------------------------
def test_qsm_returns_scalar_and_metrics():
    denoiser, critic = _denoiser(), _critic()
    obs, actions = _data()
    loss, metrics = qsm_loss(denoiser, critic, _schedule(), obs, actions, generator=_gen())
    assert loss.ndim == 0 and loss.requires_grad and torch.isfinite(loss)
    assert set(metrics) >= {"qsm_loss", "grad_q_norm", "q_at_noised", "noised_out_of_bounds"}
    assert metrics["qsm_loss"].item() == pytest.approx(loss.item())
    # Detached 0-d tensors: the agent's update never reads them on the host.
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in metrics.values())
    assert not any(v.requires_grad for v in metrics.values())


def test_qsm_gradient_reaches_denoiser_only():
    denoiser, critic = _denoiser(), _critic()
    flags = [p.requires_grad for p in critic.parameters()]
    obs, actions = _data()
    loss, _ = qsm_loss(denoiser, critic, _schedule(), obs, actions, generator=_gen())
    loss.backward()
    for name, p in denoiser.named_parameters():
        assert p.grad is not None, name
    assert any(torch.count_nonzero(p.grad) > 0 for p in denoiser.parameters())
    for name, p in critic.named_parameters():
        assert p.grad is None, name
    assert [p.requires_grad for p in critic.parameters()] == flags  # frozen() restored them


def test_action_gradient_leaves_critic_params_alone():
    critic = _critic()
    obs, actions = _data(batch=8)
    grad, q = action_gradient(critic, obs, actions, "min")
    assert grad.shape == (8, ACT) and q.shape == (8,)
    assert not grad.requires_grad
    torch.testing.assert_close(q, critic(obs, actions).min(0).values.detach())
    assert all(p.grad is None for p in critic.parameters())


class SpyCritic(CriticEnsemble):
    """Records, at each call, whether any parameter would receive a gradient."""

    def forward(self, obs, action):
        self.param_grad_flags = [p.requires_grad for p in self.parameters()]
        return super().forward(obs, action)


def test_qsm_critic_is_evaluated_frozen():
    """No graph through the critic's parameters is even built (and flags are restored)."""
    torch.manual_seed(1)
    critic = SpyCritic(OBS, ACT, 2, hidden=(16, 16))
    obs, actions = _data(batch=8)
    qsm_loss(_denoiser(), critic, _schedule(), obs, actions, generator=_gen())
    assert critic.param_grad_flags and not any(critic.param_grad_flags)
    assert all(p.requires_grad for p in critic.parameters())


@pytest.mark.parametrize("target", ["eps", "score"])
def test_qsm_optimum_sign_and_scale(target):
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64)
    alpha = 7.0
    cfg = QSMConfig(alpha=alpha, target=target)

    def run(fn, config=cfg):
        oracle = Oracle(fn)
        loss, metrics = qsm_loss(
            oracle, _quadratic(), schedule, obs, actions, config, "eps", _gen()
        )
        assert oracle.calls == 1  # one denoiser call per loss
        return loss.item(), metrics

    loss, _ = run(lambda a_t, t: _qsm_eps_target(schedule, alpha, target, a_t, t))
    assert loss < 1e-10
    flipped, _ = run(lambda a_t, t: -_qsm_eps_target(schedule, alpha, target, a_t, t))
    assert flipped > 10.0
    half, _ = run(lambda a_t, t: _qsm_eps_target(schedule, alpha / 2, target, a_t, t))
    assert half > 1.0
    other = "score" if target == "eps" else "eps"
    wrong_form, _ = run(lambda a_t, t: _qsm_eps_target(schedule, alpha, other, a_t, t))
    assert wrong_form > 0.1


@pytest.mark.parametrize("prediction", ["x0", "v", "score"])
@pytest.mark.parametrize("target", ["eps", "score"])
def test_qsm_optimum_in_other_parameterisations(prediction, target):
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64)
    cfg = QSMConfig(alpha=5.0, target=target)

    def oracle_for(pred):
        def fn(a_t, t):
            eps = _qsm_eps_target(schedule, 5.0, target, a_t, t)
            return _from_eps(schedule, eps, a_t, t, pred)

        return Oracle(fn)

    def loss_of(oracle):
        return qsm_loss(oracle, _quadratic(), schedule, obs, actions, cfg, prediction, _gen())[0]

    assert loss_of(oracle_for(prediction)).item() < 1e-10
    # Same with the library's own conversion of the eps target.
    via_convert = Oracle(
        lambda a_t, t: schedule.convert(
            _qsm_eps_target(schedule, 5.0, target, a_t, t), a_t, t, "eps", prediction
        )
    )
    assert loss_of(via_convert).item() < 1e-10
    # The eps-space optimum is not optimal when the denoiser predicts something else.
    assert loss_of(oracle_for("eps")).item() > 1e-3


def test_qsm_critic_reduction_min_and_mean():
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64)
    centers = torch.tensor([[0.5, 0.5], [-0.5, 0.0]], dtype=F64)
    critic = QuadraticCritic(centers)

    def target(how):
        def fn(a_t, t):
            diff = a_t.unsqueeze(0) - centers.unsqueeze(1)  # (2, batch, act)
            grads = -diff  # grad of -1/2 ||a - c||^2
            if how == "mean":
                g = grads.mean(0)
            else:
                q = -0.5 * diff.pow(2).sum(-1)
                g = grads[q.argmin(0), torch.arange(a_t.shape[0])]
            return -3.0 * g

        return Oracle(fn)

    for how in ("mean", "min"):
        cfg = QSMConfig(alpha=3.0, critic_reduction=how)
        loss, _ = qsm_loss(target(how), critic, schedule, obs, actions, cfg, "eps", _gen())
        assert loss.item() < 1e-10, how
        other = "min" if how == "mean" else "mean"
        loss, _ = qsm_loss(target(other), critic, schedule, obs, actions, cfg, "eps", _gen())
        assert loss.item() > 1e-3, how


def test_qsm_batch_mean_grad_normalisation():
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64)
    cfg = QSMConfig(alpha=4.0, grad_normalization="batch_mean")
    big = QuadraticCritic(M.expand(2, ACT).clone(), scale=10.0)  # grad_a Q = 10 (m - a)
    seen = {}

    def fn(a_t, t):
        seen["norm"] = (M - a_t).norm(dim=-1).mean().item()
        return _qsm_eps_target(schedule, 4.0, "eps", a_t, t, normalise=True)

    def loss_of(oracle, critic, config=cfg):
        return qsm_loss(oracle, critic, schedule, obs, actions, config, "eps", _gen())

    # The normalised target does not depend on Q's scale.
    for critic, scale in ((_quadratic(), 1.0), (big, 10.0)):
        loss, metrics = loss_of(Oracle(fn), critic)
        assert loss.item() < 1e-8  # up to the loss's 1e-6 guard on the norm
        assert metrics["grad_q_norm"] == pytest.approx(scale * seen["norm"], rel=1e-9)
    # The unnormalised target of the scaled critic is far from it.
    unnorm = Oracle(lambda a_t, t: 10.0 * _qsm_eps_target(schedule, 4.0, "eps", a_t, t))
    assert loss_of(unnorm, big)[0].item() > 1.0
    assert loss_of(unnorm, big, QSMConfig(alpha=4.0))[0].item() < 1e-10

    # Per-sample normalisation is not the batch mean.
    def per_sample(a_t, t):
        g = M - a_t
        return -4.0 * g / g.norm(dim=-1, keepdim=True)

    assert loss_of(Oracle(per_sample), big)[0].item() > 0.1


def test_qsm_clip_actions_for_grad():
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64, spread=1.0)
    clip = lambda a: a.clamp(-1.0, 1.0)  # noqa: E731

    def oracle(grad_at):
        return Oracle(lambda a_t, t: _qsm_eps_target(schedule, 2.0, "eps", a_t, t, grad_at))

    on, off = QSMConfig(alpha=2.0, clip_actions_for_grad=True), QSMConfig(alpha=2.0)
    critic = _quadratic()
    loss, metrics = qsm_loss(oracle(clip), critic, schedule, obs, actions, on, "eps", _gen())
    assert metrics["noised_out_of_bounds"] > 0.05  # the test needs noised actions outside
    assert loss.item() < 1e-10
    # The critic saw only clipped actions, and they are not all the noised ones.
    assert critic.seen[-1].abs().max() <= 1.0
    loss, _ = qsm_loss(oracle(None), _quadratic(), schedule, obs, actions, on, "eps", _gen())
    assert loss.item() > 1e-3
    # Without the switch the gradient is taken at the raw noised actions.
    critic = _quadratic()
    loss, _ = qsm_loss(oracle(None), critic, schedule, obs, actions, off, "eps", _gen())
    assert loss.item() < 1e-10
    assert critic.seen[-1].abs().max() > 1.0


def test_qsm_metric_q_at_noised():
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64)
    seen = {}

    def fn(a_t, t):
        seen["q"] = (-0.5 * (a_t - M).pow(2).sum(-1)).mean().item()
        seen["oob"] = (a_t.abs() > 1).double().mean().item()
        return torch.zeros_like(a_t)

    _, metrics = qsm_loss(Oracle(fn), _quadratic(), schedule, obs, actions, generator=_gen())
    assert metrics["q_at_noised"] == pytest.approx(seen["q"], rel=1e-9)
    assert metrics["noised_out_of_bounds"] == pytest.approx(seen["oob"])


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan")])
def test_qsm_config_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        QSMConfig(alpha=alpha)


@pytest.mark.parametrize(
    ("field", "valid"),
    [
        ("target", ("eps", "score")),
        ("critic_reduction", ("mean", "min")),
        ("grad_normalization", ("none", "batch_mean")),
    ],
)
def test_qsm_config_rejects_unknown_names(field, valid):
    expected = f"qsm.{field} = 'bogus': must be one of: {', '.join(valid)}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        QSMConfig(**{field: "bogus"})
    for name in valid:
        QSMConfig(**{field: name})  # each valid name is accepted


def test_qsm_config_accepts_any_positive_alpha_and_a_bool_clip_switch():
    assert QSMConfig(alpha=0.5).alpha == 0.5  # below 1 too: alpha is any inverse temperature
    with pytest.raises(
        ValueError, match="qsm.clip_actions_for_grad = 'yes': must be true or false"
    ):
        QSMConfig(clip_actions_for_grad="yes")


def test_qsm_rejects_unknown_prediction():
    obs, actions = _data(batch=4)
    with pytest.raises(ValueError, match="eps"):
        qsm_loss(_denoiser(), _critic(), _schedule(), obs, actions, prediction="noise")


# --- behaviour cloning ---------------------------------------------------------------------------
def _replay_noise(actions: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """The (t, eps) that noised_actions draws from a generator seeded with `seed`."""
    g = _gen(seed)
    t = torch.randint(T, (actions.shape[0],), generator=g)
    eps = torch.randn(actions.shape, generator=g, dtype=actions.dtype)
    return t, eps


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
def test_bc_zero_loss_for_oracle(prediction):
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64)
    t_true, eps = _replay_noise(actions, 7)
    a, s = _coefs(schedule, t_true, actions)
    a_t_true = a * actions + s * eps

    def fn(a_t, t):
        assert torch.equal(t, t_true)
        torch.testing.assert_close(a_t, a_t_true, rtol=1e-12, atol=1e-12)
        return _truth(prediction, actions, eps, a, s)

    loss, metrics = bc_loss(Oracle(fn), schedule, obs, actions, prediction, _gen(7))
    assert loss.item() < 1e-20
    assert metrics["bc_loss"] == pytest.approx(loss.item(), abs=1e-20)
    # Another target's truth is not optimal for this prediction type.
    wrong = "x0" if prediction != "x0" else "eps"
    oracle = Oracle(lambda a_t, t: _truth(wrong, actions, eps, a, s))
    loss, _ = bc_loss(oracle, schedule, obs, actions, prediction, _gen(7))
    assert loss.item() > 1e-2


def _truth(kind, x0, eps, a, s):
    return {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -eps / s}[kind]


def test_bc_targets_consistent_across_parameterisations():
    """The same network output means the same x0 estimate whichever way it is trained."""
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64)
    t, eps = _replay_noise(actions, 3)
    a, s = _coefs(schedule, t, actions)
    base = torch.randn(actions.shape, generator=_gen(9), dtype=F64)  # an arbitrary prediction
    losses = {}
    for prediction in ("eps", "x0", "v"):
        pred = _from_eps(schedule, base, a * actions + s * eps, t, prediction)
        loss, _ = bc_loss(
            Oracle(lambda a_t, t_, p=pred: p), schedule, obs, actions, prediction, _gen(3)
        )
        # Per-sample weights between parameterisations: x0 error = s/a * eps error, and
        # v error = eps error / a.
        losses[prediction] = loss.item()
    err = (base - eps).pow(2)
    assert losses["eps"] == pytest.approx(err.mean().item(), rel=1e-9)
    assert losses["x0"] == pytest.approx((err * (s / a) ** 2).mean().item(), rel=1e-9)
    assert losses["v"] == pytest.approx((err / a**2).mean().item(), rel=1e-9)


def test_bc_gradient_reaches_denoiser():
    denoiser = _denoiser()
    obs, actions = _data()
    loss, _ = bc_loss(denoiser, _schedule(), obs, actions, generator=_gen())
    assert loss.ndim == 0
    loss.backward()
    for name, p in denoiser.named_parameters():
        assert p.grad is not None, name


def test_bc_rejects_unknown_prediction():
    obs, actions = _data(batch=4)
    with pytest.raises(ValueError, match="x0"):
        bc_loss(_denoiser(), _schedule(), obs, actions, prediction="noise")


# --- Diffusion-QL --------------------------------------------------------------------------------
def _sampler(clipping=NO_CLIPPING):
    return DDPMSampler(_schedule(), prediction="eps", clipping=clipping)


def test_dql_gradient_reaches_denoiser_not_critic():
    denoiser, critic = _denoiser(), _critic()
    obs, actions = _data(batch=16)
    loss, metrics = dql_loss(denoiser, critic, _sampler(Clipping()), obs, actions, 1.0, _gen())
    assert loss.ndim == 0
    assert {"bc_loss", "dql_q_loss", "q_policy"} <= set(metrics)
    loss.backward()
    for name, p in denoiser.named_parameters():
        assert p.grad is not None, name
    for name, p in critic.named_parameters():
        assert p.grad is None, name
    assert all(p.requires_grad for p in critic.parameters())


def test_dql_eta_zero_equals_bc():
    obs, actions = _data(batch=16)
    denoiser, critic = _denoiser(), _critic()
    dql, _ = dql_loss(denoiser, critic, _sampler(), obs, actions, 0.0, _gen(5))
    bc, _ = bc_loss(denoiser, _schedule(), obs, actions, "eps", _gen(5))
    assert dql.item() == bc.item()


def test_dql_q_term_backpropagates_through_sampler():
    obs, actions = _data(batch=16)
    denoiser, critic = _denoiser(), _critic()
    sampler = _sampler()

    def grads(eta):
        denoiser.zero_grad(set_to_none=True)
        loss, metrics = dql_loss(denoiser, critic, sampler, obs, actions, eta, _gen(5))
        loss.backward()
        return [p.grad.clone() for p in denoiser.parameters()], loss, metrics

    g0, l0, _ = grads(0.0)
    g1, l1, m1 = grads(1.0)
    # loss(eta) = bc + eta * q_loss with the same draws.
    assert l1.item() == pytest.approx(l0.item() + m1["dql_q_loss"].item(), rel=1e-6)
    # The Q term changes the denoiser's gradient: the sample is differentiable.
    diff = sum((a - b).abs().sum().item() for a, b in zip(g0, g1, strict=True))
    assert diff > 1e-6


def test_dql_q_policy_is_q_at_the_sampled_actions():
    obs, actions = _data(batch=16)
    denoiser, critic = _denoiser(), _critic()
    sampler = _sampler(Clipping())
    _, metrics = dql_loss(denoiser, critic, sampler, obs, actions, 1.0, _gen(11))
    # Replay the stream: bc draws (t, eps), then x_T, then the sampler's noise.
    g = _gen(11)
    with torch.no_grad():
        bc_loss(denoiser, sampler.schedule, obs, actions, "eps", g)
        x_T = torch.randn(actions.shape, generator=g)
        a_pi = sampler.sample(denoiser, obs, x_T, generator=g)
        q = critic(obs, a_pi).mean(0)
    assert metrics["q_policy"].item() == pytest.approx(q.mean().item(), rel=1e-5)
    assert metrics["dql_q_loss"].item() == pytest.approx(
        -q.mean().item() / q.abs().mean().item(), rel=1e-5
    )


# --- TD ------------------------------------------------------------------------------------------
class ConstantCritic(nn.Module):
    """Member i returns values[i] everywhere; records its inputs."""

    def __init__(self, values) -> None:
        super().__init__()
        self.register_buffer("values", torch.as_tensor(values, dtype=torch.float32))
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        self.calls.append((obs, action))
        return self.values[:, None].expand(-1, obs.shape[0]).clone()


class TableCritic(nn.Module):
    """Returns a learnable (members, batch) tensor: its gradient reveals the TD target."""

    def __init__(self, members: int, batch: int) -> None:
        super().__init__()
        self.q = nn.Parameter(torch.zeros(members, batch, dtype=F64))

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.q


def _transitions(batch=6, seed=0):
    g = _gen(seed)
    obs = torch.randn(batch, OBS, generator=g)
    actions = torch.rand(batch, ACT, generator=g) * 2 - 1
    rewards = torch.randn(batch, generator=g)
    next_obs = torch.randn(batch, OBS, generator=g)
    terminated = torch.tensor([False, True] * (batch // 2))
    return obs, actions, rewards, next_obs, terminated


def _recovered_target(loss: Tensor, critic: TableCritic) -> Tensor:
    """With Q = 0, loss = sum_i mean_b y_b^2, so d loss / d q_ib = -2 y_b / B for every member."""
    loss.backward()
    grad = critic.q.grad
    batch = grad.shape[1]
    targets = -grad * batch / 2
    torch.testing.assert_close(targets[0], targets[1])
    return targets[0]


def test_td_no_gradient_to_policy_or_target_critic():
    obs, actions, rewards, next_obs, terminated = _transitions()
    critic, target = _critic(1), _critic(2)
    torch.manual_seed(0)
    policy = nn.Linear(OBS, ACT)
    received = []

    def next_action(s):
        received.append(s)
        return torch.tanh(policy(s))

    loss, metrics = td_loss(
        critic, target, next_action, obs, actions, rewards, next_obs, terminated
    )
    assert loss.ndim == 0
    assert {"critic_loss", "q_mean", "target_mean"} <= set(metrics)
    loss.backward()
    assert torch.equal(received[0], next_obs)
    assert all(p.grad is None for p in policy.parameters())
    assert all(p.grad is None for p in target.parameters())
    for name, p in critic.named_parameters():
        assert p.grad is not None, name


def test_td_loss_is_sum_over_members_of_mse():
    obs, actions, rewards, next_obs, terminated = _transitions()
    critic, target = _critic(1, members=3), ConstantCritic([0.5, 0.2, 0.9])
    loss, _ = td_loss(
        critic,
        target,
        lambda s: torch.zeros(s.shape[0], ACT),
        obs,
        actions,
        rewards,
        next_obs,
        terminated,
        gamma=0.9,
    )
    y = rewards + 0.9 * (~terminated).float() * 0.2
    q = critic(obs, actions).detach()
    expected = sum(((q[i] - y) ** 2).mean() for i in range(3))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


class PlainCritic(nn.Module):
    """A critic with forward only (no outputs, values or fit_loss): a wrapped ensemble's Q."""

    def __init__(self, ensemble: CriticEnsemble) -> None:
        super().__init__()
        self.ensemble = ensemble

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.ensemble(obs, action)


def test_a_critic_with_forward_only_is_fitted_as_the_ensemble_is():
    """The TD losses read a plain critic's Q(obs, actions) and fit it by the squared error: the
    same losses as for the ensemble it wraps (whose outputs, values and fit_loss they use)."""
    obs, actions, rewards, next_obs, terminated = _transitions()
    next_action = lambda s: torch.tanh(s[:, :ACT])  # noqa: E731
    args = (next_action, obs, actions, rewards, next_obs, terminated)
    critic, target = _critic(1), _critic(2)
    plain, _ = td_loss(PlainCritic(critic), PlainCritic(target), *args, gamma=0.9)
    ensemble, _ = td_loss(critic, target, *args, gamma=0.9)
    assert plain.item() == pytest.approx(ensemble.item(), rel=1e-6)
    plain, _ = crossq_td_loss(PlainCritic(critic), *args, gamma=0.9)
    ensemble, _ = crossq_td_loss(critic, *args, gamma=0.9)
    assert plain.item() == pytest.approx(ensemble.item(), rel=1e-6)


def test_td_terminal_does_not_bootstrap_truncated_does():
    buf = ReplayBuffer(OBS, ACT, 8)
    g = _gen(4)
    flags = [(False, False), (True, False), (False, True), (True, True), (False, False)]
    for i, (term, trunc) in enumerate(flags):
        buf.add(
            torch.randn(OBS, generator=g),
            torch.zeros(ACT),
            float(i) - 1.5,
            torch.randn(OBS, generator=g),
            term,
            trunc,
        )
    b = buf
    batch = (b.obs[:5], b.actions[:5], b.rewards[:5].double(), b.next_obs[:5])
    V, gamma = 2.5, 0.8
    critic = TableCritic(2, 5)
    loss, _ = td_loss(
        critic,
        ConstantCritic([V, V + 1.0]),
        lambda s: torch.zeros(5, ACT),
        *batch,
        b.terminated[:5],
        gamma=gamma,
    )
    y = _recovered_target(loss, critic)
    r = batch[2]
    expected = torch.stack(
        [r[i] if term else r[i] + gamma * V for i, (term, _) in enumerate(flags)]
    )
    torch.testing.assert_close(y, expected)
    # Explicitly: the truncated, non-terminal transition (index 2) bootstraps.
    assert y[2].item() == pytest.approx(r[2].item() + gamma * V)
    assert y[1].item() == pytest.approx(r[1].item())


def test_td_uses_min_over_members():
    obs, actions, rewards, next_obs, terminated = _transitions()
    critic = TableCritic(2, obs.shape[0])
    loss, _ = td_loss(
        critic,
        ConstantCritic([3.0, -1.0, 2.0]),
        lambda s: torch.zeros(6, ACT),
        obs,
        actions,
        rewards.double(),
        next_obs,
        terminated,
        gamma=0.5,
    )
    y = _recovered_target(loss, critic)
    expected = rewards.double() + 0.5 * (~terminated).double() * -1.0
    torch.testing.assert_close(y, expected)


def _subset_value(members_values, subset, seed):
    obs, actions, rewards, next_obs, _ = _transitions()
    critic = TableCritic(2, obs.shape[0])
    loss, metrics = td_loss(
        critic,
        ConstantCritic(members_values),
        lambda s: torch.zeros(6, ACT),
        obs,
        actions,
        torch.zeros(6, dtype=F64),
        next_obs,
        torch.zeros(6, dtype=torch.bool),
        gamma=1.0,
        target_subset=subset,
        generator=_gen(seed),
    )
    y = _recovered_target(loss, critic)
    assert torch.all(y == y[0])  # one subset per batch
    return round(y[0].item(), 6)


def test_td_target_subset():
    values = [0.0, 1.0, 2.0, 3.0, 4.0]
    # M = 2: the min over two distinct members is never the largest value.
    seen2 = {_subset_value(values, 2, seed) for seed in range(40)}
    assert seen2 <= {0.0, 1.0, 2.0, 3.0}
    assert len(seen2) >= 3  # really random
    # M = 1: each member can be picked alone.
    seen1 = {_subset_value(values, 1, seed) for seed in range(60)}
    assert seen1 == set(values)
    # M = all members: the full min.
    assert {_subset_value(values, 5, seed) for seed in range(5)} == {0.0}
    # The generator makes it reproducible.
    assert [_subset_value(values, 2, 17) for _ in range(3)] == [_subset_value(values, 2, 17)] * 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("generator", [None, "cpu", "cuda"])
def test_td_target_subset_draws_on_the_generators_device(generator):
    """On a GPU the members are drawn where the generator lives (a CPU generator cannot draw on
    the GPU), or on the critics' device without one; the target is the subset's min either way."""
    gen = None if generator is None else torch.Generator(generator).manual_seed(0)
    obs, actions, rewards, next_obs, terminated = (x.cuda() for x in _transitions())
    loss, metrics = td_loss(
        _critic().cuda(),
        ConstantCritic([1.0, 1.0, 1.0]).cuda(),
        lambda s: torch.zeros(s.shape[0], ACT, device="cuda"),
        obs,
        actions,
        torch.zeros_like(rewards),
        next_obs,
        torch.zeros_like(terminated),
        gamma=1.0,
        target_subset=2,
        generator=gen,
    )
    assert loss.is_cuda and metrics["target_mean"].item() == 1.0


@pytest.mark.parametrize("subset", [0, 6, -1])
def test_td_target_subset_out_of_range(subset):
    obs, actions, rewards, next_obs, terminated = _transitions()
    # The message gives the valid range: 1 to the number of target members (5, batch 6).
    with pytest.raises(ValueError, match=r"target_subset must lie in \[1, 5\]"):
        td_loss(
            _critic(),
            ConstantCritic([0.0] * 5),
            lambda s: torch.zeros(6, ACT),
            obs,
            actions,
            rewards,
            next_obs,
            terminated,
            target_subset=subset,
        )


# --- sharpened by mutation testing (docs/mutation.md) --------------------------------------------
def test_qsm_is_reproducible_from_its_generator():
    """The noise levels and noise come from the generator passed in, not the global stream."""
    obs, actions = _data(batch=16)
    denoiser, critic = _denoiser(), _critic()

    def loss(seed):
        torch.manual_seed(seed)  # the global stream differs on every call
        return qsm_loss(denoiser, critic, _schedule(), obs, actions, generator=_gen(5))[0]

    assert loss(0).item() == loss(1).item()
    other = qsm_loss(denoiser, critic, _schedule(), obs, actions, generator=_gen(6))[0]
    assert other.item() != loss(0).item()


def test_qsm_without_observations():
    """obs=None is allowed (an unconditional policy): the oracle's loss is zero."""
    schedule = _schedule(F64)
    _, actions = _data(dtype=F64)
    oracle = Oracle(lambda a_t, t: _qsm_eps_target(schedule, 3.0, "eps", a_t, t))
    loss, _ = qsm_loss(oracle, _quadratic(), schedule, None, actions, QSMConfig(alpha=3.0))
    assert loss.item() < 1e-10


def test_qsm_shape_errors_name_both_shapes():
    obs, actions = _data(batch=4)
    args = (_denoiser(), _critic(), _schedule())
    with pytest.raises(ValueError, match=r"actions must be \(batch, act_dim\), got shape \(4,\)"):
        qsm_loss(*args, obs, actions[:, 0])
    # One-dimensional obs with the right batch, then (batch, obs_dim) obs of another batch.
    for bad_obs in (obs[:, 0], obs[:3]):
        shape = re.escape(str(tuple(bad_obs.shape)))
        expected = rf"obs {shape} and actions \(4, 2\) must be \(batch, obs_dim\) and \(batch, "
        with pytest.raises(ValueError, match=expected + r"act_dim\) with the same batch"):
            qsm_loss(*args, bad_obs, actions)


class OutputTable(nn.Module):
    """A denoiser whose output is a learnable zero table: the loss's gradient reveals the target
    (loss = mean (out - target)^2, so at out = 0, target = -N/2 * d loss / d out)."""

    def __init__(self, batch: int, dim: int) -> None:
        super().__init__()
        self.out = nn.Parameter(torch.zeros(batch, dim, dtype=F64))

    def forward(self, a_t: Tensor, t: Tensor, obs: Tensor | None) -> Tensor:
        return self.out

    def target_of(self, loss: Tensor) -> Tensor:
        loss.backward()
        return -self.out.grad * self.out.numel() / 2


def test_qsm_batch_mean_normalisation_is_guarded_for_a_flat_critic():
    """ "batch_mean" divides grad_a Q by its mean norm plus a small guard, so a nearly flat critic
    (gradients of size 1e-9, far below the guard) gives a small, finite target that still points
    up the gradient: the implied score -eps has a positive dot product with grad_a Q, and its mean
    norm stays far below alpha (the mean norm of the normalised target of a steep critic)."""
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64)
    flat = QuadraticCritic(M.expand(2, ACT).clone(), scale=1e-9)
    table = OutputTable(*actions.shape)
    cfg = QSMConfig(alpha=4.0, grad_normalization="batch_mean")
    loss, _ = qsm_loss(table, flat, schedule, obs, actions, cfg, "eps", _gen())
    eps_target = table.target_of(loss)
    grad_q = 1e-9 * (M - flat.seen[-1])  # grad_a Q at the noised actions, by hand
    assert torch.isfinite(eps_target).all()
    assert bool(((-eps_target * grad_q).sum(-1) > 0).all())
    assert 0 < float(eps_target.norm(dim=-1).mean()) < 0.01 * cfg.alpha


def test_action_gradient_defaults_to_the_members_mean():
    critic = QuadraticCritic(torch.tensor([[0.5, 0.5], [-0.5, 0.0]], dtype=F64))
    actions = torch.tensor([[0.1, 0.2], [-0.3, 0.4]], dtype=F64)
    grad, q = action_gradient(critic, None, actions)
    # grad of the mean of -1/2 |a - c_i|^2 over the two members: mean_i (c_i - a).
    torch.testing.assert_close(grad, critic.centers.mean(0) - actions, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(q, critic(None, actions).mean(0), rtol=1e-12, atol=0)


class SingleCritic(nn.Module):
    """One Q-function, (batch,) out: Q(s, a) = sum(a), of either sign; records the actions."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Tensor] = []

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        self.seen.append(action)
        return action.sum(-1)


def test_dql_with_a_single_q_function():
    """A (batch,) critic is used as it is: q_loss = -mean Q / mean |Q| over the batch."""
    obs, actions = _data(batch=32, dtype=F64, spread=1.0)
    sampler = DDPMSampler(_schedule(F64))
    critic = SingleCritic()
    denoiser = Oracle(lambda a_t, t: torch.zeros_like(a_t))
    _, metrics = dql_loss(denoiser, critic, sampler, obs, actions, 1.0, _gen(3))
    q = critic.seen[-1].sum(-1).detach()
    assert bool((q > 0).any() and (q < 0).any())  # the two normalisers differ
    assert metrics["dql_q_loss"].item() == pytest.approx(
        (-q.mean() / q.abs().mean()).item(), rel=1e-12
    )
    # The sampled actions are in the actions' dtype.
    assert critic.seen[-1].dtype == F64


def test_dql_default_eta_is_one():
    obs, actions = _data(batch=16)
    denoiser, critic = _denoiser(), _critic()
    default, _ = dql_loss(denoiser, critic, _sampler(), obs, actions, generator=_gen(5))
    one, _ = dql_loss(denoiser, critic, _sampler(), obs, actions, 1.0, _gen(5))
    assert default.item() == one.item()


class MetaCritic(nn.Module):
    """A parameter-free critic that works on any device: Q_i(s, a) = -|a|^2 (two members).
    Records the device of the actions it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[torch.device] = []

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        self.devices.append(action.device)
        return -action.pow(2).sum(-1).expand(2, -1)


def test_objectives_draw_on_the_actions_device():
    """On PyTorch's meta device (shapes only, no data) every draw must follow the actions: one
    CPU tensor in the computation raises. Stands in for an accelerator on a CPU-only machine."""
    meta = torch.device("meta")
    obs, actions = torch.zeros(8, OBS, device=meta), torch.zeros(8, ACT, device=meta)
    schedule = _schedule()  # its tables move to the input's device per call
    a_t, t, eps = noised_actions(schedule, actions, _gen())
    assert a_t.device == t.device == eps.device == meta
    zero = Oracle(lambda a_t, t: torch.zeros_like(a_t))
    critic = MetaCritic()
    loss, _ = dql_loss(zero, critic, DDPMSampler(schedule), obs, actions, 1.0, _gen())
    # The sampled actions too (a CPU scalar Q term would still combine with a meta loss).
    assert loss.device == meta and critic.devices == [meta]


@pytest.mark.parametrize(
    "loss",
    [
        lambda denoiser, critic, sampler, obs: dime_loss(denoiser, critic, sampler, obs, ACT, 0.5),
        lambda denoiser, critic, sampler, obs: dacer_loss(denoiser, critic, sampler, obs, ACT, 0.3),
        lambda denoiser, critic, sampler, obs: qvpo_loss(denoiser, critic, sampler, obs, ACT, 4),
    ],
    ids=["dime", "dacer", "qvpo"],
)
def test_online_objectives_draw_on_the_states_device(loss):
    """DIME, DACER and QVPO on the meta device: their x_T, noise and uniform draws follow obs."""
    meta = torch.device("meta")
    half = Oracle(lambda a_t, t: 0.5 * a_t)
    sampler = DDPMSampler(_schedule(), variance="large", clipping=Clipping(each_step=False))
    value, metrics = loss(half, TwoMemberMetaCritic(), sampler, torch.zeros(8, OBS, device=meta))
    assert value.device == meta and all(m.device == meta for m in metrics.values())


class TwoMemberMetaCritic(MetaCritic):
    """MetaCritic with the ensemble's reduction."""

    @staticmethod
    def reduce(q: Tensor, how: str) -> Tensor:
        return q.min(0).values if how == "min" else q.mean(0)


def test_policy_actions_build_no_graph_unless_asked():
    """The chain's draws carry no autograd graph by default (QVPO's candidates, DACER's entropy
    samples); differentiable=True backpropagates through them (DIME, DACER's loss, DQL)."""
    obs = torch.zeros(4, OBS)
    for differentiable in (False, True):
        kwargs = {"differentiable": True} if differentiable else {}
        _, actions = policy_actions(_denoiser(), DDPMSampler(_schedule()), obs, ACT, 2, **kwargs)
        assert actions.shape == (8, ACT) and actions.requires_grad == differentiable


@pytest.mark.parametrize("gamma", [-0.1, 1.5])
def test_td_losses_refuse_a_discount_outside_zero_one_with_their_name(gamma):
    obs, actions, rewards, next_obs, terminated = _transitions()
    zeros = lambda s: torch.zeros(s.shape[0], ACT)  # noqa: E731
    args = (zeros, obs, actions, rewards, next_obs, terminated)
    losses = {  # TableCritic(2, 12): crossq_td_loss reads current and next states in one batch
        "td_loss": lambda g: td_loss(TableCritic(2, 6), ConstantCritic([2.0, 3.0]), *args, g),
        "crossq_td_loss": lambda g: crossq_td_loss(TableCritic(2, 12), *args, g),
    }
    for name, loss in losses.items():
        with pytest.raises(ValueError) as err:
            loss(gamma)
        assert str(err.value) == f"{name}: gamma = {gamma}: must lie in [0, 1]"
        for valid in (0.0, 1.0):  # both ends are valid discounts
            loss(valid)


def test_qsm_loss_refuses_an_empty_batch_and_takes_a_batch_of_one():
    denoiser, critic = _denoiser(), _critic()
    obs, actions = _data(batch=1)
    loss, _ = qsm_loss(denoiser, critic, _schedule(), obs, actions)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError) as err:
        qsm_loss(denoiser, critic, _schedule(), obs[:0], actions[:0])
    assert str(err.value) == "qsm_loss: the batch is empty (actions (0, 2))"


def test_td_losses_default_discount_is_0_99():
    obs, actions, rewards, next_obs, terminated = _transitions()
    zeros = lambda s: torch.zeros(s.shape[0], ACT)  # noqa: E731
    for gamma in (None, 0.99):
        kw = {} if gamma is None else {"gamma": gamma}
        critic = TableCritic(2, 6)
        loss, _ = td_loss(
            critic,
            ConstantCritic([2.0, 3.0]),
            zeros,
            obs,
            actions,
            rewards.double(),
            next_obs,
            terminated,
            **kw,
        )
        y = _recovered_target(loss, critic)
        torch.testing.assert_close(y, rewards.double() + 0.99 * (~terminated).double() * 2.0)
    torch.manual_seed(0)
    critic = CriticEnsemble(OBS, ACT, 2, (16, 16))
    default, _ = crossq_td_loss(critic, zeros, obs, actions, rewards, next_obs, terminated)
    explicit, _ = crossq_td_loss(critic, zeros, obs, actions, rewards, next_obs, terminated, 0.99)
    assert default.item() == explicit.item()
    assert (
        default.item()
        != crossq_td_loss(critic, zeros, obs, actions, rewards, next_obs, terminated, 0.5)[0].item()
    )


def test_crossq_reads_the_next_states_and_reports_its_metrics():
    obs, actions, rewards, next_obs, terminated = _transitions()
    torch.manual_seed(0)
    critic = CriticEnsemble(OBS, ACT, 2, (16, 16))
    received = []

    def next_action(s):
        received.append(s)
        return torch.zeros(s.shape[0], ACT)

    loss, metrics = crossq_td_loss(critic, next_action, obs, actions, rewards, next_obs, terminated)
    assert len(received) == 1 and torch.equal(received[0], next_obs)
    assert set(metrics) == {"critic_loss", "q_mean", "target_mean"}
    q = critic(obs, actions).detach()
    assert metrics["critic_loss"].item() == loss.item()
    assert metrics["q_mean"].item() == pytest.approx(q.mean().item(), rel=1e-6)


def test_qsm_alpha_argument_overrides_the_config():
    """An alpha passed to the loss (the adaptive temperature's tensor) replaces config.alpha."""
    schedule = _schedule(F64)
    obs, actions = _data(dtype=F64)
    cfg = QSMConfig(alpha=50.0)
    oracle = Oracle(lambda a_t, t: _qsm_eps_target(schedule, 3.0, "eps", a_t, t))
    alpha = torch.tensor(3.0, dtype=F64)
    loss, _ = qsm_loss(oracle, _quadratic(), schedule, obs, actions, cfg, "eps", _gen(), alpha)
    assert loss.item() < 1e-10
    loss, _ = qsm_loss(oracle, _quadratic(), schedule, obs, actions, cfg, "eps", _gen())
    assert loss.item() > 1.0  # the config's alpha of 50 is far from it
