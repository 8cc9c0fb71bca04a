"""Stable-Baselines3 SAC (and sb3-contrib CrossQ) baselines, evaluated with exactly the protocol
of the QSM loop.

    python benchmarks/sac_baseline.py --env Hopper-v5 --steps 100000 --seed 0 --run-dir DIR
    python benchmarks/sac_baseline.py --algo crossq --env Hopper-v5 --run-dir DIR
    python benchmarks/sac_baseline.py --run-dir DIR --steps 200000 --resume

`--algo crossq` runs sb3-contrib's CrossQ (Bhatt et al., ICLR 2024) with its own defaults
(sb3-contrib 2.x `CrossQ.__init__`: learning_rate 1e-3, batch-renormalised critics of 1024 units
and no target network, policy_delay 3, Adam betas (0.5, 0.999), ...) except the same two
departures as SAC below; everything else (evaluation, logs, checkpoints) is shared.

The SAC loop is SB3's own (`SAC.learn`); this script only adds a callback that evaluates, logs and
checkpoints. Hyperparameters are SB3's defaults (stable-baselines3 2.x `SAC.__init__`):
MlpPolicy with two 256-unit ReLU layers for actor and critics, learning_rate 3e-4 (actor, critics
and entropy coefficient), buffer_size 1e6, batch_size 256, tau 0.005, gamma 0.99, train_freq 1,
gradient_steps 1, ent_coef "auto" (initial 1.0), target_entropy "auto" (-act_dim),
target_update_interval 1, two critics, no gSDE, no action noise.

Two deliberate departures, both to follow the protocol every method here shares (docs/results.md):

- learning_starts: SB3's default is 100; here `--learning-starts` defaults to 10000, the uniform
  random warm-up every compared method gets (our QSM loop's `--warmup-steps`; it is also the
  value RL Baselines3 Zoo uses for SAC on MuJoCo). Pass `--learning-starts 100` for SB3's own
  default. During warm-up SB3 samples actions uniformly from the action space, as our loop does.
  (SB3 starts training when num_timesteps > learning_starts, our loop at step >= warmup_steps:
  one update apart.)
- buffer_size is allocated as min(1e6, steps), as in our loop: identical to the 1e6 default while
  the run is no longer than 1e6 steps (the ring never wraps). A resume that extends --steps grows
  the buffer.

Evaluation is the QSM loop's: every --eval-every steps, `diffpolicy.rl.run.evaluate` runs one
episode on each of --eval-episodes separate `make_env(env)` instances, seeded with
1_000_003 * (seed + 1) + step (+ k for env k), SAC acting deterministically (the tanh of the mean
action, `model.predict(obs, deterministic=True)`), and the row goes to eval.csv with the columns
of `diffpolicy.rl.storage.logger.Logger`. SAC trains on the same adapter env (`make_env(env)`,
actions in [-1, 1], observations declared float32 as the adapter returns them), so its tanh-squashed
actions mean the same as the diffusion policy's. One small difference in timing: SB3 calls the
callback after the env step of step N but before that step's transition is stored and its gradient
update runs, so the evaluation at step N sees the weights after N - 1 - learning_starts updates
(QSM's after N - warmup_steps + 1).

Files in the run directory: config.json, eval.csv, train_episodes.csv, metrics.csv (step, sps:
whole-loop env steps per second over each --log-every window after warm-up, evaluation time
included, like the QSM loop's sps column), and the checkpoint, in formats that load without
unpickling anything (no SB3 .zip or .pkl is ever read): sac_model-<step>.pt (weights, optimisers,
entropy coefficient and step counters, as tensors with a checksum), sac_replay_buffer-<step>.pt
(the replay ring's counters and the list of its chunk files in replay/, each written once, so a
checkpoint writes only the transitions added since the previous one) and the manifest
sac_checkpoint.json naming them, written last: a kill at any moment leaves a complete checkpoint.
SIGINT/SIGTERM save a checkpoint at the end of the current step and exit with 128 + signal. Bad
input ends with one `error: ...` line.

Resume (--resume) builds the model afresh with the saved config, loads its state and the replay
buffer, and continues `learn(..., reset_num_timesteps=False)` to --steps (only --steps, --threads,
--device and --progress may differ from the saved config). It is NOT bit-exact, unlike the QSM
loop's: the training env's mid-episode state and the RNG states are not restored; the resumed run
starts a new episode and reseeds everything with seed + step. (The episode cut short is stored as
it was: its last transition bootstraps.) Checkpoints of older versions of this script (SB3 .zip
and a pickled replay buffer) are refused, since loading them would unpickle.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

from diffpolicy.rl.envs.adapters import make_env
from diffpolicy.rl.run.cli import parse
from diffpolicy.rl.run.errors import one_line_errors
from diffpolicy.rl.run.evaluate import evaluate, evaluation_seed
from diffpolicy.rl.run.resume import check_env_import, check_given_flags, check_new_run_dir
from diffpolicy.rl.run.signals import StopFlag
from diffpolicy.rl.run.validation import ConfigError, at_least, check_device, check_types, in_range
from diffpolicy.rl.storage.buffer import ring_order
from diffpolicy.rl.storage.checkpoint import load_checkpoint, save_checkpoint
from diffpolicy.rl.storage.chunks import ChunkedRing, read_ring
from diffpolicy.rl.storage.files import CheckpointError, atomic_write
from diffpolicy.rl.storage.lock import RunDirLock
from diffpolicy.rl.storage.logger import Logger

CONFIG = "config.json"
MANIFEST = "sac_checkpoint.json"
"""The checkpoint's manifest; a run directory holding it can be resumed."""
REPLAY = "replay"
FORMAT = 2
"""Manifests without it come from versions that saved SB3's .zip and a pickled replay buffer."""
RUN_FILES = (
    CONFIG,
    MANIFEST,
    "eval.csv",
    "train_episodes.csv",
    "metrics.csv",
    "tensorboard",
    REPLAY,
)
MAY_CHANGE_ON_RESUME = ("steps", "threads", "device", "progress", "resume", "run_dir")
BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


@dataclass
class SACConfig:
    """One SB3 SAC (or CrossQ) run under the benchmark protocol."""

    algo: Literal["sac", "crossq"] = "sac"
    """Stable-Baselines3 SAC, or sb3-contrib's CrossQ (each with its own defaults)."""
    env: str = "Hopper-v5"
    """Gymnasium id (Hopper-v5, ...) or DeepMind Control domain-task (cheetah-run, ...)."""
    steps: int = 100_000
    """Total environment steps."""
    seed: int = 0
    """Seeds SB3 (torch, numpy, random, the training env) and, offset, the evaluation envs."""
    run_dir: Path | None = None
    """Where config, logs and checkpoints go (default: runs/<env>/<algo>/seed<seed>)."""
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
        if isinstance(self.run_dir, str):
            self.run_dir = Path(self.run_dir)
        check_types(self)
        for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every", "log_every"):
            at_least(name, getattr(self, name), 1)
        at_least("threads", self.threads, 1)
        at_least("learning_starts", self.learning_starts, 0)
        in_range("seed", self.seed, 0, 2**32 - 1)
        if self.run_dir is None:
            self.run_dir = Path("runs") / self.env / self.algo / f"seed{self.seed}"


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


def algorithm_class(algo: str) -> type:
    if algo == "sac":
        return SAC
    try:
        from sb3_contrib import CrossQ
    except ImportError as err:
        raise ConfigError(
            "algo = 'crossq': needs sb3-contrib (pip install sb3-contrib, or the project's "
            "baselines extra)"
        ) from err
    return CrossQ


def build_model(cfg: SACConfig, env: gym.Env):
    """A new model with the algorithm's defaults but the protocol's warm-up and buffer size."""
    return algorithm_class(cfg.algo)(
        "MlpPolicy",
        env,
        buffer_size=min(1_000_000, cfg.steps),
        learning_starts=cfg.learning_starts,
        seed=cfg.seed,
        device=cfg.device,
        verbose=0,
    )


# --- config and checkpoint files ---------------------------------------------------------------
def _config_to_json(cfg: SACConfig) -> str:
    data = dataclasses.asdict(cfg)
    data["run_dir"] = str(cfg.run_dir)
    return json.dumps(data, indent=2)


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot resume: {path} is not a readable {what} ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"cannot resume: {path} is not a {what}")
    return data


def resolve_config(cfg: SACConfig, defaults: SACConfig | None = None) -> SACConfig:
    """On resume, the saved config with steps/threads/device/progress from `cfg` (other flags
    given must match it); otherwise `cfg`, after checking that run_dir holds no run files."""
    run_dir = Path(cfg.run_dir)
    if not cfg.resume:
        check_new_run_dir(run_dir, RUN_FILES, MANIFEST)
        return cfg
    if not (run_dir / CONFIG).is_file() or not (run_dir / MANIFEST).is_file():
        raise CheckpointError(f"cannot resume: no {CONFIG} or {MANIFEST} in {run_dir}")
    data = _read_json(run_dir / CONFIG, "run config")
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(SACConfig)})
    if unknown:
        raise ConfigError(f"cannot resume from {run_dir / CONFIG}: unknown field {unknown[0]}")
    try:
        saved = SACConfig(**{**data, "run_dir": run_dir})
    except ConfigError as err:
        raise ConfigError(f"cannot resume from {run_dir / CONFIG}: {err}") from err
    check_given_flags(cfg, saved, defaults or SACConfig(), run_dir, MAY_CHANGE_ON_RESUME)
    check_env_import(cfg.env, saved.env, run_dir)
    changes = {name: getattr(cfg, name) for name in ("steps", "threads", "device", "progress")}
    return dataclasses.replace(saved, **changes, resume=True)


def _buffer_fields(model) -> dict[str, torch.Tensor]:
    """The replay buffer's arrays as tensors sharing their memory."""
    rb = model.replay_buffer
    return {
        n: torch.from_numpy(getattr(rb, n)) for n in BUFFER_FIELDS if getattr(rb, n) is not None
    }


def _named_by_manifest(run_dir: Path) -> set[str]:
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return set()
    return {manifest.get("model"), manifest.get("replay_buffer")}


CHECKPOINT_FILE = re.compile(r"^sac_(model|replay_buffer)-\d+\.pt$")


def save_checkpoint_files(model, run_dir: Path, replay: ChunkedRing) -> None:
    """Model and replay buffer under step-stamped names, then the manifest naming them; files of
    older checkpoints are removed only after the manifest points at the new ones."""
    step, rb = model.num_timesteps, model.replay_buffer
    names = {"model": f"sac_model-{step}.pt", "replay_buffer": f"sac_replay_buffer-{step}.pt"}
    state_dicts, variables = model._get_torch_save_params()
    try:
        save_checkpoint(
            {
                "step": step,
                "params": {name: attrgetter(name)(model).state_dict() for name in state_dicts},
                "variables": {name: attrgetter(name)(model).detach() for name in variables},
                "n_updates": model._n_updates,
                "episode_num": model._episode_num,
            },
            run_dir / names["model"],
        )
        # SB3 stores one transition per step (n_envs = 1): `step` transitions were added.
        size = rb.buffer_size if rb.full else rb.pos
        ring = replay.write(_buffer_fields(model), rb.pos, size, step)
        save_checkpoint({"step": step, "replay": ring}, run_dir / names["replay_buffer"])
        manifest = json.dumps({"format": FORMAT, "step": step, **names}).encode()
        atomic_write(run_dir / MANIFEST, manifest)
    except BaseException:  # free what this save wrote, keep what the manifest names
        replay.clean()
        for name in set(names.values()) - _named_by_manifest(run_dir):
            (run_dir / name).unlink(missing_ok=True)
        raise
    replay.commit(ring)
    for old in run_dir.iterdir():  # only files of this script's naming, never a user's
        if CHECKPOINT_FILE.match(old.name) and old.name not in names.values():
            old.unlink()


def load_checkpoint_files(model, run_dir: Path, replay: ChunkedRing) -> None:
    """Restore a model built by `build_model` from the run's checkpoint (no unpickling)."""
    manifest = _read_json(run_dir / MANIFEST, "checkpoint manifest")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(
            f"cannot resume: {run_dir} holds a checkpoint of an older sac_baseline.py (SB3 .zip "
            "and a pickled replay buffer), which this version does not load: loading it would "
            "unpickle; start the run again in another --run-dir"
        )
    state = load_checkpoint(run_dir / Path(manifest["model"]).name)
    state_dicts, variables = model._get_torch_save_params()
    try:
        for name in state_dicts:
            attrgetter(name)(model).load_state_dict(state["params"][name])
        for name in variables:
            attrgetter(name)(model).data.copy_(state["variables"][name])
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"cannot resume: {run_dir} does not fit its config: {err}") from err
    model.num_timesteps, model._n_updates = state["step"], state["n_updates"]
    model._episode_num = state["episode_num"]

    ring = load_checkpoint(run_dir / Path(manifest["replay_buffer"]).name, read_chunks=False)
    replay.resume(ring["replay"])
    saved = read_ring(run_dir, ring["replay"])
    rb = model.replay_buffer
    order, size, position = ring_order(
        saved["size"], saved["position"], saved["capacity"], rb.buffer_size
    )
    for name, array in _buffer_fields(model).items():
        array[:size] = saved[name][order]
    rb.pos, rb.full = position, size == rb.buffer_size


# --- the callback --------------------------------------------------------------------------------
class ProtocolCallback(BaseCallback):
    """Evaluation, logging and checkpoints on SB3's own training loop.

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
        replay: ChunkedRing,
    ) -> None:
        super().__init__(verbose=0)
        self.cfg, self.eval_envs, self.log, self.stop, self.bar = cfg, eval_envs, logger, stop, bar
        self.replay = replay
        self.checkpoint_due = False
        self.saved_step: int | None = None
        self.stopped = False
        self.last_eval = float("nan")

    def _on_training_start(self) -> None:
        self.window_start, self.window_step = time.perf_counter(), self.num_timesteps

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        actions, _ = self.model.predict(obs.cpu().numpy(), deterministic=True)
        return torch.as_tensor(actions)

    @torch.no_grad()
    def q_estimate(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The mean of the critics' Q at the evaluation's actions (value_bias.csv). SB3's critics
        estimate the soft Q of the stochastic policy (entropy bonuses included), here read at
        the mean action the evaluation takes. `predict` has just put them in evaluation mode.
        The model trains on the adapted env, so it acts in [-1, 1] as `evaluate` does."""
        device = self.model.device
        qs = self.model.critic(obs.to(device), actions.to(device, torch.float32))
        return torch.cat(qs, dim=1).mean(dim=1)

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
        if step % cfg.eval_every == 0 or step == cfg.steps:  # the budget's end too, as QSM's loop
            seed = evaluation_seed(cfg.seed, step)
            result = evaluate(
                self.eval_envs, self.act, seed, value=self.q_estimate, gamma=self.model.gamma
            )
            self.log.log_value_bias(step, result.pop("value"))
            self.last_eval = result["return_mean"]
            self.log.log_eval({"step": step, **result, "wall_time": time.time()})
        if step % cfg.checkpoint_every == 0 or step >= cfg.steps:
            self.checkpoint_due = True
        self.bar.update(1)
        return True

    def _on_rollout_end(self) -> None:
        if self.checkpoint_due or self.stop.signal:
            save_checkpoint_files(self.model, Path(self.cfg.run_dir), self.replay)
            self.checkpoint_due, self.saved_step = False, self.num_timesteps
        if self.stop.signal:
            self.stopped = True


# --- the run -----------------------------------------------------------------------------------
def train(cfg: SACConfig, defaults: SACConfig | None = None) -> Path:
    """Train the baseline with the protocol's evaluation; returns the run directory. Everything
    that can be checked is checked before the run directory is written to, and the run holds the
    directory's lock (`diffpolicy.rl.storage.lock`)."""
    with RunDirLock(Path(cfg.run_dir)) as lock:
        cfg = resolve_config(cfg, defaults)
        check_device(cfg.device)
        algorithm_class(cfg.algo)
        torch.set_num_threads(cfg.threads)
        envs: list[gym.Env] = []
        try:
            try:
                envs.append(make_train_env(cfg.env))
                envs += [make_env(cfg.env) for _ in range(cfg.eval_episodes)]
            except ValueError as err:
                raise ConfigError(str(err)) from err
            return _run(cfg, Path(cfg.run_dir), envs[0], envs[1:], lock)
        finally:
            for env in envs:
                env.close()


def _run(cfg: SACConfig, run_dir: Path, env: gym.Env, eval_envs: list, lock: RunDirLock) -> Path:
    model = build_model(cfg, env)
    replay = ChunkedRing(run_dir / REPLAY)
    resume_step = None
    if cfg.resume:
        load_checkpoint_files(model, run_dir, replay)
        resume_step = model.num_timesteps
        if resume_step > cfg.steps:
            raise ConfigError(f"steps = {cfg.steps}: the run in {run_dir} is at step {resume_step}")
        # A new episode, reseeded reproducibly: SB3 restores no RNG or env state.
        model.set_random_seed(cfg.seed + resume_step)

    # Everything is checked: from here on the run writes into its directory.
    lock.start_writing()
    if not cfg.resume:  # again, under the lock: another run may have begun in the folder meanwhile
        check_new_run_dir(run_dir, RUN_FILES, MANIFEST)
    atomic_write(run_dir / CONFIG, _config_to_json(cfg).encode())
    logger = Logger(run_dir, resume_step=resume_step)
    start = model.num_timesteps
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        disable=not cfg.progress,
        dynamic_ncols=True,
        desc=f"{cfg.env} sb3-{cfg.algo} seed{cfg.seed}",
    )
    try:
        with StopFlag() as stop:
            callback = ProtocolCallback(cfg, eval_envs, logger, stop, bar, replay)
            if start < cfg.steps:
                model.learn(cfg.steps - start, callback=callback, reset_num_timesteps=False)
            if callback.stopped:
                bar.write(
                    f"stopped by signal {stop.signal} at step {callback.saved_step}; "
                    f"checkpoint saved in {run_dir}; continue with --resume"
                )
                raise SystemExit(128 + stop.signal)
            save_checkpoint_files(model, run_dir, replay)  # the final state, after the last update
    finally:
        bar.close()
        logger.close()
    return run_dir


def main() -> None:
    cfg = parse(SACConfig, description=__doc__)
    with one_line_errors():
        run_dir = train(cfg)
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
