"""Stable-Baselines3 SAC baseline, evaluated with exactly the protocol of the QSM loop.

    python benchmarks/sac_baseline.py --env Hopper-v5 --steps 100000 --seed 0 --run-dir DIR
    python benchmarks/sac_baseline.py --run-dir DIR --steps 200000 --resume

The SAC loop is SB3's own (`SAC.learn`); this script only adds a callback that evaluates, logs and
checkpoints. Hyperparameters are SB3's defaults (stable-baselines3 2.x `SAC.__init__`):
MlpPolicy with two 256-unit ReLU layers for actor and critics, learning_rate 3e-4 (actor, critics
and entropy coefficient), buffer_size 1e6, batch_size 256, tau 0.005, gamma 0.99, train_freq 1,
gradient_steps 1, ent_coef "auto" (initial 1.0), target_entropy "auto" (-act_dim),
target_update_interval 1, two critics, no gSDE, no action noise.

Two deliberate departures, both to follow benchmarks' ../shared/PROTOCOL.md:

- learning_starts: SB3's default is 100; here `--learning-starts` defaults to 10000, the uniform
  random warm-up every compared method gets (our QSM loop's `--warmup-steps`; it is also the
  value RL Baselines3 Zoo uses for SAC on MuJoCo). Pass `--learning-starts 100` for SB3's own
  default. During warm-up SB3 samples actions uniformly from the action space, as our loop does.
  (SB3 starts training when num_timesteps > learning_starts, our loop at step >= warmup_steps:
  one update apart.)
- buffer_size is allocated as min(1e6, steps), as in our loop: identical to the 1e6 default while
  the run is no longer than 1e6 steps (the ring never wraps). A resume that extends --steps grows
  the buffer.

Evaluation is the QSM loop's: every --eval-every steps, `diffpolicy.rl.evaluate.evaluate` runs one
episode on each of --eval-episodes separate `make_env(env)` instances, seeded with
1_000_003 * (seed + 1) + step (+ k for env k), SAC acting deterministically (the tanh of the mean
action, `model.predict(obs, deterministic=True)`), and the row goes to eval.csv with the columns
of `diffpolicy.rl.logger.Logger`. SAC trains on the same adapter env (`make_env(env)`, actions in
[-1, 1], observations declared float32 as the adapter returns them), so its tanh-squashed actions
mean the same as the diffusion policy's. One small difference in timing: SB3 calls the callback
after the env step of step N but before that step's transition is stored and its gradient update
runs, so the evaluation at step N sees the weights after N - 1 - learning_starts updates (QSM's
after N - warmup_steps + 1).

Files in the run directory: config.json, eval.csv, train_episodes.csv, metrics.csv (step, sps:
whole-loop env steps per second over each --log-every window after warm-up, evaluation time
included, like the QSM loop's sps column), and the checkpoint: sac_model-<step>.zip,
sac_replay_buffer-<step>.pkl and the manifest sac_checkpoint.json naming them. Each file is written
to a temporary name and renamed into place, the manifest last, so a kill at any moment leaves a
complete checkpoint. SIGINT/SIGTERM save a checkpoint at the end of the current step and exit with
128 + signal.

Resume (--resume) loads the model (weights, optimisers, entropy coefficient, step count) and the
replay buffer and continues `learn(..., reset_num_timesteps=False)` to --steps, with the saved
config (only --steps, --threads, --device and --progress come from the command line). It is NOT
bit-exact, unlike the QSM loop's: the training env's mid-episode state and the RNG states are not
restored; the resumed run starts a new episode and reseeds everything with seed + step. (The
episode cut short is stored as it was: its last transition bootstraps.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import tyro
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from diffpolicy.rl.envs import make_env
from diffpolicy.rl.evaluate import evaluate
from diffpolicy.rl.logger import Logger
from diffpolicy.rl.signals import StopFlag

CONFIG = "config.json"
MANIFEST = "sac_checkpoint.json"
"""The checkpoint's manifest; a run directory holding it can be resumed."""


@dataclass
class SACConfig:
    """One SB3 SAC run under the benchmark protocol."""

    env: str = "Hopper-v5"
    """Gymnasium id (Hopper-v5, ...) or DeepMind Control domain-task (cheetah-run, ...)."""
    steps: int = 100_000
    """Total environment steps."""
    seed: int = 0
    """Seeds SB3 (torch, numpy, random, the training env) and, offset, the evaluation envs."""
    run_dir: Path | None = None
    """Where config, logs and checkpoints go (default: runs/<env>/sac/seed<seed>)."""
    resume: bool = False
    """Continue the run in run_dir from its checkpoint (not bit-exact, see the module doc)."""
    learning_starts: int = 10_000
    """Uniform random warm-up steps (protocol: 10k for every method; SB3's own default is 100)."""
    eval_every: int = 5_000
    """Evaluate every this many env steps."""
    eval_episodes: int = 10
    """Episodes per evaluation, each on its own separately seeded env, deterministic actions."""
    checkpoint_every: int = 10_000
    """Save model and replay buffer every this many steps (also at the end and on a signal)."""
    log_every: int = 1_000
    """Write whole-loop steps per second to metrics.csv every this many steps (after warm-up)."""
    threads: int = 1
    """torch.set_num_threads: one thread per run."""
    device: str = "cpu"
    """Torch device of SB3 ("cpu", "cuda")."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.learning_starts < 0:
            raise ValueError(f"learning_starts must be >= 0, got {self.learning_starts}")
        if self.run_dir is None:
            self.run_dir = Path("runs") / self.env / "sac" / f"seed{self.seed}"
        self.run_dir = Path(self.run_dir)


def eval_seed(seed: int, step: int) -> int:
    """The QSM loop's evaluation seed at `step` (env k of the evaluation is reset with this + k)."""
    return 1_000_003 * (seed + 1) + step


class Float32Obs(gym.Wrapper):
    """Declares the float32 observations `BoxActionAdapter` returns, so SB3 stores float32."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            space.low.astype(np.float32), space.high.astype(np.float32), space.shape, np.float32
        )


def make_train_env(name: str) -> gym.Env:
    return Float32Obs(make_env(name))


# --- config and checkpoint files ---------------------------------------------------------------
def _config_to_json(cfg: SACConfig) -> str:
    data = dataclasses.asdict(cfg)
    data["run_dir"] = str(cfg.run_dir)
    return json.dumps(data, indent=2)


def resolve_config(cfg: SACConfig) -> SACConfig:
    """On resume, the saved config with steps/threads/device/progress from `cfg`; otherwise `cfg`,
    after checking that run_dir holds no run to overwrite."""
    run_dir = Path(cfg.run_dir)
    if not cfg.resume:
        if (run_dir / MANIFEST).exists() or (run_dir / CONFIG).exists():
            raise FileExistsError(
                f"{run_dir} already holds a run; pass --resume to continue it, "
                "or choose another --run-dir"
            )
        return cfg
    if not (run_dir / CONFIG).is_file() or not (run_dir / MANIFEST).is_file():
        raise FileNotFoundError(f"cannot resume: no {CONFIG} or {MANIFEST} in {run_dir}")
    saved = json.loads((run_dir / CONFIG).read_text())
    saved.update(
        steps=cfg.steps,
        threads=cfg.threads,
        device=cfg.device,
        progress=cfg.progress,
        resume=True,
        run_dir=run_dir,
    )
    return SACConfig(**saved)


def _atomic_write(path: Path, write) -> None:
    """`write(file)` into path + ".tmp", fsync, then rename over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(model: SAC, run_dir: Path) -> None:
    """Model and replay buffer under step-stamped names, then the manifest naming them; older
    checkpoint files are removed only after the manifest points at the new ones."""
    step = model.num_timesteps
    names = {"model": f"sac_model-{step}.zip", "replay_buffer": f"sac_replay_buffer-{step}.pkl"}
    _atomic_write(run_dir / names["model"], model.save)
    _atomic_write(run_dir / names["replay_buffer"], model.save_replay_buffer)
    manifest = json.dumps({"step": step, **names}).encode()
    _atomic_write(run_dir / MANIFEST, lambda f: f.write(manifest))
    for pattern in ("sac_model-*.zip", "sac_replay_buffer-*.pkl"):
        for old in run_dir.glob(pattern):
            if old.name not in names.values():
                old.unlink()


def _grow_buffer(model: SAC, capacity: int) -> None:
    """Replace the replay buffer by a larger one holding the same transitions, oldest first."""
    old = model.replay_buffer
    if old.buffer_size >= capacity:
        return
    new = ReplayBuffer(
        capacity,
        model.observation_space,
        model.action_space,
        device=model.device,
        n_envs=old.n_envs,
        optimize_memory_usage=old.optimize_memory_usage,
        handle_timeout_termination=old.handle_timeout_termination,
    )
    size = old.buffer_size if old.full else old.pos
    order = np.roll(np.arange(old.buffer_size), -old.pos) if old.full else np.arange(size)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        getattr(new, name)[:size] = getattr(old, name)[order]
    new.pos, new.full = size % capacity, size == capacity
    model.replay_buffer, model.buffer_size = new, capacity


# --- the callback --------------------------------------------------------------------------------
class ProtocolCallback(BaseCallback):
    """Evaluation, logging and checkpoints on SB3's own SAC loop.

    `_on_step` runs after the env step (num_timesteps already counts it): training episodes,
    the sps window, the evaluation, and marking a checkpoint due. `_on_rollout_end` runs after the
    step's transition is in the replay buffer (train_freq 1: every step), so the checkpoint is
    saved there: model, step count and buffer agree.
    """

    def __init__(
        self,
        cfg: SACConfig,
        eval_envs: list,
        logger: Logger,
        stop: StopFlag,
        bar: tqdm,
    ) -> None:
        super().__init__(verbose=0)
        self.cfg, self.eval_envs, self.log, self.stop, self.bar = cfg, eval_envs, logger, stop, bar
        self.checkpoint_due = False
        self.saved_step: int | None = None
        self.stopped = False
        self.last_eval = float("nan")

    def _on_training_start(self) -> None:
        self.window_start, self.window_step = time.perf_counter(), self.num_timesteps

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        actions, _ = self.model.predict(obs.cpu().numpy(), deterministic=True)
        return torch.as_tensor(actions)

    def _on_step(self) -> bool:
        if self.stopped:  # a checkpoint was saved after the previous step: drop this one
            return False
        cfg, step = self.cfg, self.num_timesteps
        for info in self.locals["infos"]:
            if "episode" in info:  # SB3's Monitor wrapper: the episode that just ended
                self.log.log_episode(step, float(info["episode"]["r"]), int(info["episode"]["l"]))
        if step % cfg.log_every == 0:
            now = time.perf_counter()
            sps = (step - self.window_step) / (now - self.window_start)
            if self.window_step >= cfg.learning_starts:  # windows after warm-up only
                self.log.log_metrics(step, sps, {})
            self.window_start, self.window_step = now, step
            self.bar.set_postfix(sps=f"{sps:.1f}", eval=f"{self.last_eval:.1f}")
        if step % cfg.eval_every == 0:
            seed = eval_seed(cfg.seed, step)
            result = evaluate(self.eval_envs, self.act, seed)
            self.last_eval = result["return_mean"]
            self.log.log_eval({"step": step, **result, "wall_time": time.time()})
        if step % cfg.checkpoint_every == 0 or step >= cfg.steps:
            self.checkpoint_due = True
        self.bar.update(1)
        return True

    def _on_rollout_end(self) -> None:
        if self.checkpoint_due or self.stop.signal:
            save_checkpoint(self.model, Path(self.cfg.run_dir))
            self.checkpoint_due, self.saved_step = False, self.num_timesteps
        if self.stop.signal:
            self.stopped = True


# --- the run -----------------------------------------------------------------------------------
def train(cfg: SACConfig) -> Path:
    """Train SB3 SAC with the protocol's evaluation; returns the run directory."""
    cfg = resolve_config(cfg)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    env = make_train_env(cfg.env)
    eval_envs = [make_env(cfg.env) for _ in range(cfg.eval_episodes)]
    buffer_size = min(1_000_000, cfg.steps)

    resume_step = None
    if cfg.resume:
        manifest = json.loads((run_dir / MANIFEST).read_text())
        model = SAC.load(run_dir / manifest["model"], env=env, device=cfg.device)
        model.load_replay_buffer(run_dir / manifest["replay_buffer"])
        _grow_buffer(model, buffer_size)
        resume_step = model.num_timesteps
        # A new episode, reseeded reproducibly: SB3 restores no RNG or env state.
        model.set_random_seed(cfg.seed + resume_step)
    else:
        model = SAC(
            "MlpPolicy",
            env,
            buffer_size=buffer_size,
            learning_starts=cfg.learning_starts,
            seed=cfg.seed,
            device=cfg.device,
            verbose=0,
        )
    (run_dir / CONFIG).write_text(_config_to_json(cfg))

    logger = Logger(run_dir, resume_step=resume_step)
    start = model.num_timesteps
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        disable=not cfg.progress,
        dynamic_ncols=True,
        desc=f"{cfg.env} sb3-sac seed{cfg.seed}",
    )
    try:
        with StopFlag() as stop:
            callback = ProtocolCallback(cfg, eval_envs, logger, stop, bar)
            if start < cfg.steps:
                model.learn(cfg.steps - start, callback=callback, reset_num_timesteps=False)
            if callback.stopped:
                bar.write(
                    f"stopped by signal {stop.signal} at step {callback.saved_step}; "
                    f"checkpoint saved in {run_dir}; continue with --resume"
                )
                raise SystemExit(128 + stop.signal)
            save_checkpoint(model, run_dir)  # the final state, after the last update
    finally:
        bar.close()
        logger.close()
        model.env.close()
        for e in eval_envs:
            e.close()
    return run_dir


def main() -> None:
    cfg = tyro.cli(SACConfig, description=__doc__)
    run_dir = train(cfg)
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
