"""docs/results.md is generated from benchmarks/results by docs/results_page.py, never by hand:
the committed page is exactly what the script writes from the committed results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_results_page_is_what_the_script_writes_from_the_results():
    spec = importlib.util.spec_from_file_location("results_page", ROOT / "docs/results_page.py")
    page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(page)
    mujoco, dmc = (page.load_suite(page.RESULTS / suite) for suite in ("mujoco", "dmc"))
    written = page.render(mujoco, dmc)
    assert "| Hopper-v5 | qsm-best |" in written and "| Hopper-v5 | sac |" in written
    assert page.PAGE.read_text() == written, "run `make results-page` and commit docs/results.md"
