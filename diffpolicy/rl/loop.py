"""The off-policy training loop shared by every recipe: warm-up, acting, updates, evaluation,
logging, and checkpoints that resume exactly."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from diffpolicy.rl.agent import Agent
from diffpolicy.rl.buffer import ReplayBuffer
from diffpolicy.rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from diffpolicy.rl.config import TrainConfig, config_from_json, config_to_json
from diffpolicy.rl.envs import make_env
from diffpolicy.rl.evaluate import evaluate
from diffpolicy.rl.logger import Logger
from diffpolicy.rl.signals import StopFlag

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"


DEFAULT_STEPS = 100_000


def resolve_config(cfg: TrainConfig) -> TrainConfig:
    """The config a run uses. A new run: `cfg` with the default budget and run directory filled
    in, after checking that the directory holds no run to overwrite. On resume: the directory's
    saved config, with device, threads and progress from `cfg`, and steps if `cfg` gives them."""
    run_dir = Path(cfg.run_dir) if cfg.run_dir is not None else cfg.default_run_dir()
    if not cfg.resume:
        if (run_dir / CHECKPOINT).exists() or (run_dir / CONFIG).exists():
            raise FileExistsError(
                f"{run_dir} already holds a run; pass --resume to continue it, "
                "or choose another --run-dir"
            )
        return dataclasses.replace(cfg, run_dir=run_dir, steps=cfg.steps or DEFAULT_STEPS)
    if not (run_dir / CONFIG).is_file():
        raise CheckpointError(f"cannot resume: no {CONFIG} in {run_dir}")
    if not (run_dir / CHECKPOINT).is_file():
        raise CheckpointError(
            f"cannot resume: {run_dir} has no {CHECKPOINT} (the run stopped before its first "
            "checkpoint); move the directory aside and start again"
        )
    try:
        saved = config_from_json((run_dir / CONFIG).read_text())
    except ValueError as err:
        raise CheckpointError(f"cannot resume from {run_dir / CONFIG}: {err}") from err
    return dataclasses.replace(
        saved,
        steps=cfg.steps or saved.steps,
        device=cfg.device,
        threads=cfg.threads,
        progress=cfg.progress,
        resume=True,
        run_dir=run_dir,
    )


def _numpy_rng_state() -> dict:
    # numpy's legacy global RNG: the library does not draw from it, user code might.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _set_numpy_rng_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (
            "MT19937",
            keys,
            state["pos"],
            state["has_gauss"],
            state["cached"],
        )
    )


def train(cfg: TrainConfig) -> Path:
    """Train, evaluate, log and checkpoint into cfg.run_dir; returns the run directory."""
    cfg = resolve_config(cfg)
    run_dir = Path(cfg.run_dir)
    state = load_checkpoint(run_dir / CHECKPOINT) if cfg.resume else None
    if state is not None and state["step"] > cfg.steps:
        raise ValueError(
            f"the run in {run_dir} is already at step {state['step']} > --steps {cfg.steps}"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG).write_text(config_to_json(cfg))

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = torch.device(cfg.device)
    env = make_env(cfg.env, cfg.action_repeat)
    eval_envs = [make_env(cfg.env, cfg.action_repeat) for _ in range(cfg.eval_episodes)]
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = Agent(obs_dim, act_dim, cfg.agent).to(device)
    buffer = ReplayBuffer(obs_dim, act_dim, min(cfg.buffer_size, cfg.steps), str(device))

    obs, _ = env.reset(seed=cfg.seed)
    step, ep_return, ep_length, last_eval = 0, 0.0, 0, float("nan")
    if state is not None:
        agent.load_training_state(state["agent"])
        buffer.load_state_dict(state["buffer"])
        torch.set_rng_state(state["rng"]["torch"])
        _set_numpy_rng_state(state["rng"]["numpy"])
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        step, last_eval = state["step"], state["last_eval"]
        if env.restore(state["rng"]["env"]):
            obs = state["obs"].numpy()
            ep_return, ep_length = state["ep_return"], state["ep_length"]
        else:  # this env cannot restore mid-episode: start the next episode from its RNG state
            obs, _ = env.reset()

    def checkpoint() -> None:
        save_checkpoint(
            {
                "step": step,
                "last_eval": last_eval,
                "obs": torch.from_numpy(np.array(obs)),
                "ep_return": ep_return,
                "ep_length": ep_length,
                "agent": agent.training_state(),
                "buffer": buffer.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "numpy": _numpy_rng_state(),
                    "env": env.snapshot(),
                    # On an accelerator most draws (noise, timesteps) come from its generator.
                    **({"cuda": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
                },
            },
            run_dir / CHECKPOINT,
        )

    logger = Logger(run_dir, resume_step=step if state is not None else None)
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        disable=not cfg.progress,
        dynamic_ncols=True,
        desc=f"{cfg.env} {cfg.agent.objective} seed{cfg.seed}",
    )
    window_start, window_step, metrics = time.perf_counter(), step, {}
    try:
        with StopFlag() as stop:
            while step < cfg.steps:
                if step < cfg.warmup_steps:
                    action = torch.rand(act_dim) * 2 - 1
                else:
                    obs_t = torch.as_tensor(obs, device=device).unsqueeze(0)
                    action = agent.act(obs_t, explore=True)[0].cpu()
                next_obs, reward, terminated, truncated, _ = env.step(action.numpy())
                buffer.add(obs, action, reward, next_obs, terminated, truncated)
                step += 1
                ep_return += reward
                ep_length += 1
                if terminated or truncated:
                    logger.log_episode(step, ep_return, ep_length)
                    obs, _ = env.reset()
                    ep_return, ep_length = 0.0, 0
                else:
                    obs = next_obs

                if step >= cfg.warmup_steps:
                    for _ in range(cfg.updates_per_step):
                        metrics = agent.update(buffer.sample(cfg.agent.batch_size))
                if step % cfg.log_every == 0:
                    now = time.perf_counter()
                    sps = (step - window_step) / (now - window_start)
                    window_start, window_step = now, step
                    if metrics:  # none during warm-up
                        logger.log_metrics(step, sps, metrics)
                    bar.set_postfix(sps=f"{sps:.1f}", eval=f"{last_eval:.1f}")
                if step % cfg.eval_every == 0:
                    eval_seed = 1_000_003 * (cfg.seed + 1) + step
                    gen = torch.Generator(device).manual_seed(eval_seed)
                    result = evaluate(
                        eval_envs, lambda o, g=gen: agent.act(o, False, g), eval_seed, str(device)
                    )
                    last_eval = result["return_mean"]
                    logger.log_eval({"step": step, **result, "wall_time": time.time()})
                bar.update(1)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop.signal:
                    checkpoint()
                if stop.signal:
                    bar.write(
                        f"stopped by signal {stop.signal} at step {step}; checkpoint saved "
                        f"in {run_dir}; continue with --resume"
                    )
                    raise SystemExit(128 + stop.signal)
    finally:
        bar.close()
        logger.close()
        env.close()
        for e in eval_envs:
            e.close()
    return run_dir


def train_from_cli(cfg: TrainConfig) -> Path:
    """`train` for recipes: a run directory that cannot be used ends the process with a one-line
    error instead of a traceback; prints where the run went."""
    try:
        run_dir = train(cfg)
    except (FileExistsError, CheckpointError) as err:
        sys.exit(f"error: {err}")
    print(f"run directory: {run_dir}")
    return run_dir
