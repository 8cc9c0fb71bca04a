"""`python -m diffpolicy.video` renders a trained policy offscreen into a playable video, for a
gymnasium MuJoCo task and a DeepMind Control task."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_runs import tiny_config

from diffpolicy.rl import train

ROOT = Path(__file__).resolve().parents[1]
EGL = {**os.environ, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}


def _egl_renders() -> bool:
    probe = "import mujoco; ctx = mujoco.GLContext(16, 16); ctx.make_current(); ctx.free()"
    done = subprocess.run([sys.executable, "-c", probe], env=EGL, capture_output=True, timeout=120)
    return done.returncode == 0


pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("imageio_ffmpeg") is None,
        reason="imageio-ffmpeg is not installed (pip install 'imageio[ffmpeg]')",
    ),
    pytest.mark.skipif(not _egl_renders(), reason="MuJoCo cannot render with EGL here"),
]


def frame_count(path: Path) -> tuple[int, tuple[int, ...]]:
    import imageio.v3 as iio

    frames = list(iio.imiter(path, plugin="FFMPEG"))
    return len(frames), frames[0].shape


@pytest.mark.parametrize(("env", "max_steps"), [("Hopper-v5", 15), ("cheetah-run", 12)])
def test_video_of_a_run_has_one_frame_per_step_and_reset(env, max_steps, tmp_path):
    run = train(tiny_config(tmp_path / "run", env, steps=60))
    out, strip = tmp_path / "policy.mp4", tmp_path / "strip.png"
    args = ["--out", str(out), "--episodes", "2", "--max-steps", str(max_steps)]
    args += ["--width", "64", "--height", "48", "--strip", str(strip), "--strip-frames", "3"]
    done = subprocess.run(
        [sys.executable, "-m", "diffpolicy.video", str(run), *args],
        env=EGL,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Episodes end by the task (Hopper falls) or after max_steps; each adds its reset frame.
    found = re.search(r"episodes of ([\d, ]+) steps \((\d+) frames\)", done.stdout)
    lengths, frames = [int(n) for n in found.group(1).split(", ")], int(found.group(2))
    assert len(lengths) == 2 and all(1 <= n <= max_steps for n in lengths)
    if env == "cheetah-run":  # DeepMind Control episodes last 1000 steps: cut at max_steps
        assert lengths == [max_steps, max_steps]
    assert frames == sum(lengths) + 2
    assert frame_count(out) == (frames, (48, 64, 3))
    import imageio.v3 as iio

    assert iio.imread(strip).shape == (48, 3 * 64, 3)


def test_frame_sizes_the_encoder_would_rescale_are_refused():
    from diffpolicy.video import VideoArgs

    with pytest.raises(ValueError, match="width = 100: must be a positive multiple of 16"):
        VideoArgs(Path("run"), width=100)


@pytest.mark.parametrize("flag", ["out", "strip"])
def test_an_output_imageio_cannot_write_ends_in_one_line(flag, tmp_path):
    """A file format imageio does not write: the video (checked before any frame is rendered) or
    the strip gives one `error:` line and exit status 2, not imageio's traceback."""
    run = train(tiny_config(tmp_path / "run", "Hopper-v5", steps=60))
    outputs = {"out": tmp_path / "policy.mp4", "strip": None, flag: tmp_path / "file.xyz"}
    args = [f"--{name}={path}" for name, path in outputs.items() if path is not None]
    done = subprocess.run(
        [sys.executable, "-m", "diffpolicy.video", str(run), *args, "--max-steps", "2"],
        env=EGL,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {flag} = '{tmp_path / 'file.xyz'}': cannot write it (")
