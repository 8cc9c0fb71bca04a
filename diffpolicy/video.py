"""Watch a trained policy: render its episodes offscreen into a video.

    python -m diffpolicy.video RUN_DIR --out policy.mp4 [--episodes N]
    python -m diffpolicy.video hopper.pt --out hopper.mp4 --strip hopper.png   # + a PNG strip

RUN_DIR is a run directory (its latest checkpoint) or a policy file from `save_policy`. Works for
gymnasium MuJoCo tasks (the task's own camera) and DeepMind Control (camera 0), rendered with
MuJoCo's EGL backend (MUJOCO_GL=egl unless set otherwise) and written by imageio's ffmpeg plugin
(`pip install "imageio[ffmpeg]"`, the `video` extra). Other environments are refused, and so is
any other bad input, in one `error: ...` line.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco: no display needed

import contextlib  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import tyro  # noqa: E402
from gymnasium.envs.mujoco import MujocoEnv  # noqa: E402

from diffpolicy.rl.envs.adapters import make_env  # noqa: E402
from diffpolicy.rl.run.cli import parse  # noqa: E402
from diffpolicy.rl.run.errors import one_line_errors  # noqa: E402
from diffpolicy.rl.run.pretrained import TrainedPolicy, load_policy  # noqa: E402
from diffpolicy.rl.run.validation import ConfigError, at_least  # noqa: E402
from diffpolicy.rl.storage.files import make_folder  # noqa: E402

BLOCK = 16
"""Video encoders work in 16-pixel blocks: other sizes would be rescaled."""


@dataclass
class VideoArgs:
    source: tyro.conf.Positional[Path]
    """A run directory or a policy file."""
    out: Path = Path("policy.mp4")
    """The video file to write (.mp4, or any format imageio's ffmpeg plugin writes)."""
    episodes: int = 1
    """Episodes to record, one after the other."""
    seed: int = 0
    """Episode k starts from reset(seed=seed + k)."""
    deterministic: bool = False
    """Act at temperature 0 (`TrainedPolicy.predict(deterministic=True)`)."""
    max_steps: int | None = None
    """Stop each episode after this many steps (None: when the task ends it)."""
    width: int = 480
    height: int = 480
    strip: Path | None = None
    """Also write a PNG of `strip_frames` evenly spaced frames of episode 1, side by side."""
    strip_frames: int = 6
    env: str | None = None
    """Trust this env id where the policy names one with a module part ("module:Id"), which
    gymnasium imports to build it; the policy's file alone never makes us import a module. It
    must be the policy's env."""

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < BLOCK or value % BLOCK:
                raise ConfigError(f"{name} = {value}: must be a positive multiple of {BLOCK}")
        at_least("episodes", self.episodes, 1)
        at_least("strip_frames", self.strip_frames, 1)
        if self.max_steps is not None:
            at_least("max_steps", self.max_steps, 1)
        at_least("seed", self.seed, 0)  # gymnasium refuses negative seeds


@dataclass
class Recording:
    """What `record` wrote: frames in all (one per step plus one per reset), per-episode results."""

    frames: int = 0
    lengths: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)


def render_env(policy: TrainedPolicy, width: int, height: int) -> tuple[gym.Env, Callable]:
    """The policy's environment, in the units `predict` acts in, and a function rendering its
    current state as an (height, width, 3) uint8 frame."""
    cfg = policy.config
    adapted = make_env(cfg.env, cfg.action_repeat)  # the library decides gymnasium or DMC
    env = adapted.env
    dmc = getattr(env.unwrapped, "dmc_env", None)
    if dmc is not None:  # DeepMind Control: its physics renders itself
        return env, lambda: dmc.physics.render(height=height, width=width, camera_id=0)
    spec, mujoco = env.spec, isinstance(env.unwrapped, MujocoEnv)
    env.close()
    if not mujoco:  # others render at sizes of their own, if at all (classic control: pygame)
        raise ConfigError(
            f"cannot record {cfg.env}: the video command renders MuJoCo tasks only (gymnasium's "
            "MuJoCo environments and DeepMind Control)"
        )
    env = gym.make(spec, render_mode="rgb_array", width=width, height=height)
    return env, env.render


def frames_per_second(env: gym.Env, action_repeat: int) -> float:
    dmc = getattr(env.unwrapped, "dmc_env", None)
    if dmc is not None:
        return 1.0 / (dmc.control_timestep() * action_repeat)
    return float(env.metadata.get("render_fps", 30))


def episode_frames(
    policy: TrainedPolicy,
    env: gym.Env,
    render: Callable,
    args: VideoArgs,
    recording: Recording,
) -> Iterator[np.ndarray]:
    """Frames of `args.episodes` episodes; `recording` is filled in as they run."""
    for k in range(args.episodes):
        obs, _ = env.reset(seed=args.seed + k)
        yield render()
        ret, steps, done = 0.0, 0, False
        while not done:
            action, _ = policy.predict(obs, deterministic=args.deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            ret, steps = ret + float(reward), steps + 1
            done = terminated or truncated or steps == args.max_steps
            yield render()
        recording.lengths.append(steps)
        recording.returns.append(ret)


def _imageio():
    try:
        import imageio.v2 as imageio  # an optional dependency, the video extra
    except ImportError as err:
        raise ConfigError(
            'the video command needs imageio and its ffmpeg plugin: pip install "imageio[ffmpeg]"'
        ) from err
    return imageio


@contextlib.contextmanager
def _writing(name: str, path: Path) -> Iterator[None]:
    """One line naming the flag for an output that cannot be written: a folder that cannot be
    created, a format imageio does not write, a missing plugin."""
    try:
        make_folder(path.parent)
        yield
    except (OSError, RuntimeError, ValueError, ImportError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise ConfigError(f"{name} = {str(path)!r}: cannot write it ({reason})") from err


def record(args: VideoArgs) -> Recording:
    """Write the video (and the strip) that `args` describes."""
    imageio = _imageio()
    policy = load_policy(args.source, env=args.env)
    env, render = render_env(policy, args.width, args.height)
    recording, first_episode = Recording(), []
    try:
        fps = frames_per_second(env, policy.config.action_repeat)
        with _writing("out", args.out):  # before any frame is rendered
            writer = imageio.get_writer(args.out, format="FFMPEG", fps=fps)
        with writer:
            for frame in episode_frames(policy, env, render, args, recording):
                writer.append_data(frame)
                recording.frames += 1
                if not recording.lengths:  # still in the first episode
                    first_episode.append(frame)
    finally:
        env.close()
    if args.strip is not None:
        write_strip(first_episode, args.strip, args.strip_frames)
    return recording


def write_strip(frames: list[np.ndarray], path: Path, count: int) -> None:
    """`count` evenly spaced frames, first and last included, side by side in one PNG."""
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    with _writing("strip", path):
        _imageio().imwrite(path, np.concatenate([frames[i] for i in picks], axis=1))


def main(argv: list[str] | None = None) -> Recording:
    args = parse(VideoArgs, description=__doc__, args=argv)  # bad input: one `error:` line
    with one_line_errors():
        recording = record(args)
    lengths = ", ".join(str(n) for n in recording.lengths)
    returns = ", ".join(f"{r:.1f}" for r in recording.returns)
    print(
        f"wrote {args.out}: episodes of {lengths} steps ({recording.frames} frames), "
        f"returns {returns}"
    )
    return recording


if __name__ == "__main__":
    main()
