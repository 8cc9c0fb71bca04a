"""The off-policy training loop shared by every recipe: warm-up, acting, updates, evaluation,
logging, and checkpoints that resume exactly."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from diffpolicy.rl.agent.agent import Agent, AgentFactory, build_agent
from diffpolicy.rl.envs.adapters import BoxActionAdapter, make_env
from diffpolicy.rl.run.config import TrainConfig, config_to_json
from diffpolicy.rl.run.divergence import DivergedError, check_actions, check_agent, check_finite
from diffpolicy.rl.run.errors import one_line_errors
from diffpolicy.rl.run.evaluate import evaluate, evaluation_seed
from diffpolicy.rl.run.memory import check_memory
from diffpolicy.rl.run.resume import (
    CHECKPOINT,
    CONFIG,
    REPLAY,
    check_fits,
    check_new_run_dir,
    check_saved_values,
    resolve_config,
    run_dir_of,
)
from diffpolicy.rl.run.signals import StopFlag
from diffpolicy.rl.run.validation import ConfigError, check_device
from diffpolicy.rl.storage.buffer import ReplayBuffer
from diffpolicy.rl.storage.checkpoint import load_checkpoint, save_checkpoint
from diffpolicy.rl.storage.chunks import ChunkedRing, is_manifest, read_ring
from diffpolicy.rl.storage.files import CheckpointError, RunDirError, atomic_write
from diffpolicy.rl.storage.lock import RunDirLock
from diffpolicy.rl.storage.logger import Logger

__all__ = ["CHECKPOINT", "CONFIG", "resolve_config", "train", "train_from_cli"]


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


def train(
    cfg: TrainConfig,
    defaults: TrainConfig | None = None,
    agent: Agent | AgentFactory | None = None,
) -> Path:
    """Train, evaluate, log and checkpoint into cfg.run_dir; returns the run directory.

    Everything that can be checked is checked before the run directory is written to: the config,
    the device, the environment (one reset and step), the memory the replay buffer and a batch
    need, and on resume the saved config and the checkpoint against it.
    The run holds the directory's lock (`diffpolicy.rl.storage.lock`): a second process gets
    `RunDirBusy`.
    `defaults`: the config the command line started from (see `resolve_config`). `agent`: an
    agent built by the caller, or a factory `(obs_dim, act_dim, cfg.agent) -> agent` called after
    seeding (default `Agent`); either way its config must be cfg.agent (`build_agent`)."""
    with RunDirLock(run_dir_of(cfg)) as lock:
        cfg = resolve_config(cfg, defaults)
        device = check_device(cfg.device)
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        envs: list[BoxActionAdapter] = []
        try:
            for _ in range(1 + cfg.eval_episodes):  # training env first, then one per eval episode
                envs.append(_make_env(cfg))
            return _run(cfg, device, envs[0], envs[1:], lock, agent)
        finally:
            for env in envs:
                env.close()


def _make_env(cfg: TrainConfig) -> BoxActionAdapter:
    try:
        return make_env(cfg.env, cfg.action_repeat)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def _probe(env: BoxActionAdapter, seed: int) -> None:
    """One reset and one step of an evaluation env (which resets by seed before every use), so an
    env that returns NaN fails now, while a retry is still possible, not after the run's first
    files are written."""
    try:
        env.reset(seed=seed)
        env.step(np.zeros(env.action_space.shape))
    except ValueError as err:
        raise ConfigError(f"{err} (on a trial reset and step, before the run began)") from err


def _run(cfg: TrainConfig, device: torch.device, env, eval_envs, lock, agent=None) -> Path:
    run_dir = Path(cfg.run_dir)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    _probe(eval_envs[0], cfg.seed)
    check_memory(cfg, obs_dim, act_dim, device)
    agent = build_agent(agent, obs_dim, act_dim, cfg.agent).to(device)
    buffer = ReplayBuffer(obs_dim, act_dim, min(cfg.buffer_size, cfg.steps), str(device))
    replay = ChunkedRing(run_dir / REPLAY)

    obs, _ = env.reset(seed=cfg.seed)
    step, ep_return, ep_length, last_eval = 0, 0.0, 0, float("nan")
    if cfg.resume:
        path = run_dir / CHECKPOINT
        state = load_checkpoint(path, read_chunks=False)
        check_saved_values(state, path)
        if state["step"] > cfg.steps:
            raise ConfigError(
                f"steps = {cfg.steps}: the run in {run_dir} is already at step {state['step']}"
            )
        check_fits(state, cfg, agent, path)
        try:
            agent.load_training_state(state["agent"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"cannot load the agent from {path}: {err}") from err
        saved_buffer = state["buffer"]
        if is_manifest(saved_buffer):
            replay.resume(saved_buffer)
            saved_buffer = read_ring(run_dir, saved_buffer)
        buffer.load_state_dict(saved_buffer)
        torch.set_rng_state(state["rng"]["torch"])
        _set_numpy_rng_state(state["rng"]["numpy"])
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        step, last_eval = state["step"], state["last_eval"]
        if env.restore(state["rng"]["env"]):
            obs = state["obs"].numpy()
            ep_return, ep_length = state["ep_return"], state["ep_length"]
        else:  # the episode in progress is lost: start the next one from the env's RNG state
            print(
                f"warning: {cfg.env} cannot continue the episode in progress at step {step}, so "
                "this resumed run starts a new one and will differ from an uninterrupted run",
                file=sys.stderr,
            )
            obs, _ = env.reset()
    saved_step = step if cfg.resume else None

    # Everything is checked: from here on the run writes into its directory.
    lock.start_writing()
    if not cfg.resume:  # again, under the lock: another run may have begun in the folder meanwhile
        check_new_run_dir(run_dir)
    config_text = config_to_json(cfg)
    if not (run_dir / CONFIG).is_file() or (run_dir / CONFIG).read_text() != config_text:
        atomic_write(run_dir / CONFIG, config_text.encode())

    def kept() -> str:
        return "no checkpoint yet" if saved_step is None else f"step {saved_step}'s is intact"

    def checkpoint() -> None:
        nonlocal saved_step
        check_agent(step, agent, metrics)  # never save a diverged state
        try:
            manifest = replay.write(buffer.storage(), buffer.position, buffer.size, buffer.added)
            save_checkpoint(
                {
                    "step": step,
                    "run": {"env": cfg.env, "obs_dim": obs_dim, "act_dim": act_dim},
                    "last_eval": last_eval,
                    "obs": torch.from_numpy(np.array(obs)),
                    "ep_return": ep_return,
                    "ep_length": ep_length,
                    "agent": agent.training_state(),
                    "buffer": manifest,
                    "rng": {
                        "torch": torch.get_rng_state(),
                        "numpy": _numpy_rng_state(),
                        "env": env.snapshot(),
                        # On an accelerator most draws (noise, timesteps) come from its generator.
                        **(
                            {"cuda": torch.cuda.get_rng_state(device)}
                            if device.type == "cuda"
                            else {}
                        ),
                    },
                },
                run_dir / CHECKPOINT,
            )
        except RunDirError as err:
            replay.clean()  # free what this save wrote
            raise RunDirError(f"{err} (checkpoint of step {step} not saved; {kept()})") from err
        except BaseException:
            replay.clean()
            raise
        replay.commit(manifest)
        saved_step = step

    logger = Logger(run_dir, resume_step=step if cfg.resume else None)
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        disable=not cfg.progress,
        dynamic_ncols=True,
        desc=f"{cfg.env} {cfg.agent.objective} seed{cfg.seed}",
    )
    window_start, window_step, metrics, sps = time.perf_counter(), step, {}, float("nan")
    try:
        with StopFlag() as stop:
            while step < cfg.steps:
                if step < cfg.warmup_steps:
                    action = torch.rand(act_dim) * 2 - 1
                else:
                    obs_t = torch.as_tensor(obs, device=device).unsqueeze(0)
                    action = agent.act(obs_t, explore=True)[0].cpu()
                    check_actions(step, action, metrics)
                next_obs, reward, terminated, truncated, _ = env.step(action.numpy())
                buffer.add(obs, action, cfg.reward_scale * reward, next_obs, terminated, truncated)
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
                        check_finite(step, metrics)
                        logger.log_metrics(step, sps, metrics)
                # The budget's last step is always evaluated, a multiple of eval_every or not.
                evaluating = step % cfg.eval_every == 0 or step == cfg.steps
                if evaluating:
                    check_agent(step, agent, metrics)
                    eval_seed = evaluation_seed(cfg.seed, step)
                    gen = torch.Generator(device).manual_seed(eval_seed)
                    result = evaluate(
                        eval_envs,
                        _evaluation_policy(agent, gen, step, metrics),
                        eval_seed,
                        str(device),
                        # Q in the env's units, as the evaluation's returns are.
                        value=lambda o, a: agent.q_estimate(o, a) / cfg.reward_scale,
                        gamma=cfg.agent.gamma,
                    )
                    logger.log_value_bias(step, result.pop("value"))
                    last_eval = result["return_mean"]
                    logger.log_eval({"step": step, **result, "wall_time": time.time()})
                if evaluating or step % cfg.log_every == 0:  # after the evaluation of this step
                    bar.set_postfix(sps=f"{sps:.1f}", eval=f"{last_eval:.1f}")
                bar.update(1)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop.signal:
                    checkpoint()
                if stop.signal:
                    bar.write(
                        f"stopped by signal {stop.signal} at step {step}; checkpoint saved "
                        f"in {run_dir}; continue with --resume"
                    )
                    raise SystemExit(128 + stop.signal)
    except DivergedError as err:
        raise DivergedError(f"{err} (no checkpoint written from it; {kept()})") from None
    finally:
        bar.close()
        logger.close()
    return run_dir


def _evaluation_policy(agent: Agent, generator: torch.Generator, step: int, metrics: dict):
    """The agent acting without exploration, refusing non-finite actions."""

    def act(obs: torch.Tensor) -> torch.Tensor:
        actions = agent.act(obs, False, generator).cpu()
        check_actions(step, actions, metrics, "evaluation action")
        return actions

    return act


def train_from_cli(cfg: TrainConfig, defaults: TrainConfig | None = None) -> Path:
    """`train` for recipes: bad input or a run directory that cannot be used ends the process
    with one `error: ...` line (diffpolicy.rl.run.errors) instead of a traceback; ends with one line
    stating the final evaluation and where the run's files are."""
    with one_line_errors():
        run_dir = train(cfg, defaults)
    with open(run_dir / "eval.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    print(
        f"final evaluation at step {last['step']}: return {float(last['return_mean']):.1f} "
        f"+- {float(last['return_std']):.1f} over {last['episodes']} episodes; "
        f"run files in {run_dir}"
    )
    return run_dir
