"""The README's code, and the guide's custom loop, run as written (with a smaller step budget), so
they cannot go stale."""

from __future__ import annotations

import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
GUIDE = (ROOT / "docs" / "guide.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_schedule_and_sampler_example_runs():
    namespace: dict = {}
    exec(_python_blocks()[0], namespace)
    assert namespace["samples"].shape == (256, 2)


def test_custom_loop_example_trains(capsys):
    marker = GUIDE.index("<!-- custom-loop-example -->")
    block = re.search(r"```python\n(.*?)```", GUIDE[marker:], flags=re.DOTALL).group(1)
    assert "steps = 20_000" in block
    assert "torch.set_num_threads(1)" in block  # torch's default threads are slower here
    namespace: dict = {}
    exec(block.replace("steps = 20_000", "steps = 400"), namespace)
    assert len(namespace["buffer"]) == 400
    # It evaluates at the last step and says what it reached.
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"step 400: evaluation return -?\d+\.\d", line), line
    # 400 - 255 updates ran: the losses are real numbers and the QSM metrics were produced.
    assert math.isfinite(namespace["actor_loss"].item())
    assert math.isfinite(namespace["critic_loss"].item())
    assert namespace["metrics"]["grad_q_norm"] > 0
