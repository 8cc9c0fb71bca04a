"""QSM on a 2-D multi-modal bandit: the picture of a diffusion policy that keeps every mode.

    python recipes/qsm_bandit.py                 # writes runs/bandit/qsm_bandit_langevin.png
    python recipes/qsm_bandit.py --sampler ddpm  # DDPM sampling instead: ..._ddpm.png

The reward has four separated peaks. Each round the policy acts (a batch of actions), a critic
ensemble regresses onto the observed rewards (a one-step problem: the TD target is the reward), and
the denoiser is trained with the QSM loss on the replayed actions. The plot shows the reward's
contours with the policy's samples on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib
import torch
from tqdm import tqdm

from diffpolicy.nets import CriticEnsemble, Denoiser
from diffpolicy.objectives import QSMConfig, qsm_loss, td_loss
from diffpolicy.rl import ReplayBuffer
from diffpolicy.rl.run.cli import parse
from diffpolicy.rl.run.errors import one_line_errors
from diffpolicy.rl.run.validation import at_least, check_types, finite_positive
from diffpolicy.rl.storage.files import make_folder, write_error
from diffpolicy.samplers import Clipping, DDPMSampler, LangevinSampler
from diffpolicy.schedules import make_schedule

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)

PEAKS = torch.tensor([[-0.55, -0.55], [-0.55, 0.55], [0.55, -0.55], [0.55, 0.55]])


def reward(a: torch.Tensor) -> torch.Tensor:
    """Four equal Gaussian peaks of width 0.2: a (batch, 2) -> (batch,)."""
    return torch.exp(-torch.cdist(a, PEAKS).pow(2) / (2 * 0.2**2)).sum(dim=1)


@dataclass
class BanditConfig:
    """QSM on the four-peak bandit."""

    rounds: int = 1500
    """Training rounds (one critic and one actor step each)."""
    actions_per_round: int = 32
    """Actions the policy takes (and rewards observed) per round."""
    alpha: float = 20.0
    """QSM inverse temperature: the policy's score is matched to alpha * grad Q."""
    sampler: Literal["langevin", "ddpm"] = "langevin"
    """How the policy acts and the plotted actions are drawn: Langevin on the learned score (whose
    fixed point is the Boltzmann policy exp(alpha Q)), or DDPM (50 cosine levels, small
    variance)."""
    seed: int = 0
    """Torch seed."""
    progress: bool = True
    """Show a progress bar of the rounds (the default 1500 take a few minutes on one core)."""
    out: Path | None = None
    """Where the plot goes (default: runs/bandit/qsm_bandit_<sampler>.png)."""

    def __post_init__(self) -> None:
        if isinstance(self.out, str):
            self.out = Path(self.out)
        check_types(self)
        at_least("rounds", self.rounds, 1)
        at_least("actions_per_round", self.actions_per_round, 1)
        finite_positive("alpha", self.alpha)
        at_least("seed", self.seed, 0)


def main(cfg: BanditConfig) -> Path:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)
    schedule = make_schedule("cosine", 50)
    denoiser = Denoiser(0, 2, hidden=(128, 128), time_dim=16, time_hidden=(32, 32))
    critic = CriticEnsemble(0, 2, members=2, hidden=(128, 128))
    ddpm = DDPMSampler(schedule, clipping=Clipping())
    langevin = LangevinSampler(schedule, step_size=2e-3, num_steps=300, clipping=Clipping())
    buffer = ReplayBuffer(0, 2, capacity=cfg.rounds * cfg.actions_per_round)
    actor_opt = torch.optim.Adam(denoiser.parameters(), lr=1e-3)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
    qsm = QSMConfig(alpha=cfg.alpha, target="score")

    def policy(n: int) -> torch.Tensor:
        if cfg.sampler == "langevin":
            return langevin.sample(denoiser, None, torch.rand(n, 2) * 2 - 1)
        return ddpm.sample(denoiser, None, torch.randn(n, 2))

    for r in tqdm(range(cfg.rounds), desc="QSM bandit rounds", disable=not cfg.progress):
        # Explore uniformly for the first tenth, then act with the policy.
        n = cfg.actions_per_round
        acts = torch.rand(n, 2) * 2 - 1 if r < cfg.rounds // 10 else policy(n)
        for a, rew in zip(acts, reward(acts), strict=True):
            buffer.add(torch.zeros(0), a, rew, torch.zeros(0), True, False)
        batch = buffer.sample(256)
        # One-step problem: every transition is terminal, so the TD target is the reward.
        critic_loss, _ = td_loss(
            critic,
            critic,
            lambda s: torch.zeros(len(s), 2),
            batch.obs,
            batch.actions,
            batch.rewards,
            batch.next_obs,
            batch.terminated,
        )
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()
        actor_loss, _ = qsm_loss(denoiser, critic, schedule, batch.obs, batch.actions, qsm)
        actor_opt.zero_grad()
        actor_loss.backward()
        actor_opt.step()

    samples = policy(2000)
    near = torch.cdist(samples, PEAKS).min(dim=1)
    share = torch.bincount(near.indices[near.values < 0.3], minlength=4).float() / len(samples)
    print("share of actions within 0.3 of each peak:", [round(s, 2) for s in share.tolist()])

    grid = torch.linspace(-1, 1, 200)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    z = reward(torch.stack([gx.flatten(), gy.flatten()], dim=1)).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.contourf(gx, gy, z, levels=20, cmap="viridis")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="white", alpha=0.5)
    ax.set(
        xlim=(-1, 1),
        ylim=(-1, 1),
        xlabel="a[0]",
        ylabel="a[1]",
        title=f"QSM policy samples ({cfg.sampler}) on a 4-peak reward",
    )
    out = cfg.out or Path(f"runs/bandit/qsm_bandit_{cfg.sampler}.png")
    make_folder(out.parent)
    try:
        fig.savefig(out, dpi=120, bbox_inches="tight")
    except OSError as err:
        raise write_error(out, err) from err
    print(f"plot written to {out}")
    return out


if __name__ == "__main__":
    config = parse(BanditConfig, description=__doc__)
    with one_line_errors():
        main(config)
