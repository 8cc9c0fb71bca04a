"""The methods a sweep can run, as data, and the command line of one run.

A method is a script and the flags its runs get after the common ones (`build_command`). The
tables below keep the current methods (the recipe presets as their results were run, the SB3
baselines, the online objectives, the screens still in use) apart from the retired screens. A
retired method stays runnable, so that every result filed under its name can be reproduced, and
names the experiment page (docs/experiments/) that ran it and says what it asked; the page, not
this file, holds the story. A screen in use names its page once it has one.
`python benchmarks/learning.py methods` prints these tables.

To add a method, add a row to SCREENS (its flags are checked by tests/test_learning_harness.py);
to retire one, move its row to RETIRED with its page.
"""

from __future__ import annotations

import itertools
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[2]
QSM_RECIPE = "recipes/qsm_{suite}.py"
SB3_BASELINE = "benchmarks/sac_baseline.py"


@dataclass(frozen=True)
class Method:
    flags: tuple[str, ...]
    """Flags after the common ones."""
    about: str
    """What it runs, in one line."""
    script: str = QSM_RECIPE
    """Relative to the repository root; "{suite}" is replaced by the sweep's suite."""
    presets: tuple[str, ...] = ()
    """The recipe presets it runs (the results page names them)."""
    page: str = ""
    """The documentation page (relative to docs/) that reports its runs."""

    @property
    def family(self) -> Literal["diffpolicy", "sac"]:
        """Which pass-through list it gets: --extra (diffpolicy) or --sac-extra (sac)."""
        return "sac" if self.script == SB3_BASELINE else "diffpolicy"


def qsm(flags: str, about: str, **fields) -> Method:
    """A QSM recipe run with these flags (one shell-quoted string)."""
    return Method(tuple(shlex.split(flags)), about, **fields)


def retired(page: str, flags: str, about: str) -> Method:
    """A retired screen of recipe runs, with the stem of the experiment page that ran it."""
    return qsm(flags, about, page=f"experiments/{page}.md")


# Flags several methods share.
REFERENCE_W256 = "--preset reference --agent.actor-hidden 256 256 --agent.critic-hidden 256 256"
# The chain reads the score in the diffusion convention (AgentConfig.langevin_score), as the
# Langevin variant was first run.
LANGEVIN = "--agent.sampler langevin --agent.langevin-score schedule"
# CrossQ's critic (Bhatt et al., ICLR 2024) with 3 Langevin steps for its target actions.
CROSSQ_T3 = (
    "--agent.target-sampler-steps 3 --agent.critic-batch-renorm --agent.no-critic-target-network"
    " --agent.critic-betas 0.5 0.999 --agent.critic-lr 1e-3"
)
# The preset that was `best` until 2026-12-04: "qsm-best" in the names of its variants means it.
CROSSQ_CRITIC = "--preset crossq-critic"
# sb3-contrib CrossQ's critic width and policy delay.
CROSSQ_EXACT = "--preset crossq-critic --agent.critic-hidden 1024 1024 --agent.actor-every 3"
# The objectives that backpropagate through the chain act with DDPM.
DDPM = "--agent.sampler ddpm --agent.langevin-score trained"

# The recipe presets, each under the name its results were filed as, with the flags they ran with
# (tests/test_learning_harness.py checks that these build the preset's config).
PRESET_METHODS: dict[str, Method] = {
    "qsm-best": qsm(
        "--preset best",
        "the best preset; its 100k runs ran as qsm-best-rewnorm",
        presets=("best", "polyak-ln-rewnorm"),
    ),
    "qsm-polyak-ln-crossq-adam": qsm(
        "--preset langevin-t3 --agent.critic-layer-norm --agent.critic-lr 1e-3"
        " --agent.critic-betas 0.5 0.999",
        "LayerNorm critics with Polyak targets and CrossQ's Adam: the best preset until 2026-12-07",
        presets=("polyak-ln",),
    ),
    "qsm-crossq-t3": qsm(
        f"{REFERENCE_W256} {LANGEVIN} {CROSSQ_T3}",
        "CrossQ's critic under the Langevin actor: the best preset until 2026-12-04",
        presets=("crossq-critic",),
    ),
    "qsm-best-t1-d3": qsm(
        f"{CROSSQ_CRITIC} --agent.target-sampler-steps 1 --agent.actor-every 3",
        "crossq-critic with 1 target step and the actor every 3rd update (SAC's update cost)",
        presets=("fast",),
    ),
    "qsm-w256-langevin-t3": qsm(
        f"{REFERENCE_W256} {LANGEVIN} --agent.target-sampler-steps 3",
        "256-wide nets, Langevin acting, 3 Langevin steps for the critic's target actions",
        presets=("langevin-t3",),
    ),
    "qsm-reference": qsm(
        "--preset reference",
        "the QSM paper's settings (512-wide, DDPM K = 5)",
        presets=("reference",),
    ),
}

# The baselines every method is compared with, by benchmarks/sac_baseline.py.
BASELINES: dict[str, Method] = {
    "sac": Method((), "SB3 SAC with its defaults", SB3_BASELINE),
    "crossq": Method(("--algo", "crossq"), "sb3-contrib CrossQ with its defaults", SB3_BASELINE),
}

# The published online objectives on the best preset.
OBJECTIVES: dict[str, Method] = {
    "dime-best": qsm(
        f"--preset best --agent.objective dime {DDPM}",
        "DIME's objective on the best preset, acting with DDPM",
        page="objectives/dime.md",
    ),
    "dacer-best": qsm(
        f"--preset best --agent.objective dacer {DDPM}",
        "DACER's objective on the best preset, acting with DDPM",
        page="objectives/dacer.md",
    ),
    "qvpo-best": qsm(
        "--preset best --agent.objective qvpo",
        "QVPO's objective on the best preset",
        page="objectives/qvpo.md",
    ),
}

# The screens still in use. Those named qsm-best-* that ran before 2026-12-07 ran on `polyak-ln`,
# the best preset then, and their flags say so.
LEVERS = "experiments/2026-12-07-critic-levers.md"
SCREENS: dict[str, Method] = {
    "qsm-best-rewnorm-rscale-001": qsm(
        "--preset best --agent.reward-normalization --reward-scale 0.01",
        "qsm-best-rewnorm on the env's rewards times 0.01 (returns reported in the env's units)",
        page=LEVERS,
    ),
    "qsm-crossq-rewnorm": qsm(
        f"{CROSSQ_CRITIC} --agent.reward-normalization",
        "crossq-critic, learning from rewards divided by their running mean |r|",
        page=LEVERS,
    ),
    "qsm-best-hlgauss": qsm(
        "--preset polyak-ln --agent.critic-value-bins 101",
        "polyak-ln with a categorical critic over 101 bins, fitted by HL-Gauss cross-entropy",
        page=LEVERS,
    ),
    "qsm-rewnorm-hlgauss": qsm(
        "--preset best --agent.critic-value-bins 101",
        "best (polyak-ln-rewnorm) with qsm-best-hlgauss's categorical critic over 101 bins",
        page=LEVERS,
    ),
    "qsm-best-bf16": qsm(
        "--preset polyak-ln --agent.precision bfloat16",
        "polyak-ln in bfloat16 mixed precision",
        page=LEVERS,
    ),
    "qsm-crossq-exact": qsm(
        CROSSQ_EXACT, "the Langevin actor on exactly sb3-contrib CrossQ's critic", page=LEVERS
    ),
    "qsm-crossq-exact-bf16": qsm(
        f"{CROSSQ_EXACT} --agent.precision bfloat16",
        "qsm-crossq-exact in bfloat16 mixed precision",
        page=LEVERS,
    ),
    "qsm-crossq-w512-d3": qsm(
        f"{CROSSQ_CRITIC} --agent.critic-hidden 512 512 --agent.actor-every 3",
        "512-wide CrossQ critics with the policy delay 3 (the width ladder)",
        page=LEVERS,
    ),
    "qsm-best-bro": qsm(
        "--preset polyak-ln --agent.critic-hidden 512 --agent.critic-residual-blocks 2",
        "BRO's critic (a 512-wide LayerNorm layer, 2 residual blocks) under polyak-ln",
    ),
    "qsm-best-utd2": qsm(
        "--preset best --updates-per-step 2",
        "best with 2 critic and actor updates per env step, no resets",
        page=LEVERS,
    ),
    "qsm-best-utd2-reset": qsm(
        "--preset polyak-ln --updates-per-step 2 --agent.reset-every 25000",
        "polyak-ln with 2 updates per env step and every network reset each 25k updates",
    ),
}

# Screens whose question is answered: runnable still, each with the page that ran it.
RETIRED: dict[str, Method] = {
    "qsm-best-rewnorm": retired(
        "2026-12-07-critic-levers",
        "--preset polyak-ln --agent.reward-normalization",
        "polyak-ln learning from rewards divided by their running mean |r|: now the best preset,"
        " its runs under qsm-best",
    ),
    "qsm-w256": retired(
        "2026-11-21-variant-screen", REFERENCE_W256, "the reference with 256-wide nets"
    ),
    "qsm-w256-norm": retired(
        "2026-11-21-variant-screen",
        f"{REFERENCE_W256} --agent.qsm.grad-normalization batch_mean"
        " --agent.qsm.clip-actions-for-grad --agent.critic-layer-norm",
        "qsm-w256 with batch-mean gradient normalisation, clipped actions, LayerNorm critics",
    ),
    "qsm-w256-langevin": retired(
        "2026-11-21-variant-screen",
        f"{REFERENCE_W256} {LANGEVIN}",
        "qsm-w256 acting, and drawing target actions, by 10 Langevin steps",
    ),
    "qsm-crossq-t3-d3": retired(
        "2026-11-22-critic-screen",
        f"{REFERENCE_W256} {LANGEVIN} {CROSSQ_T3} --agent.actor-every 3",
        "qsm-crossq-t3 with CrossQ's policy delay 3",
    ),
    "qsm-best-adaptive": retired(
        "2026-11-22-hopper-plateau",
        f"{CROSSQ_CRITIC} --agent.alpha-target-std 0.089",
        "crossq-critic with alpha tuned online to an action spread of 0.089",
    ),
    "qsm-best-gradnorm": retired(
        "2026-11-22-hopper-plateau",
        f"{CROSSQ_CRITIC} --agent.qsm.grad-normalization batch_mean",
        "crossq-critic with batch-mean gradient normalisation",
    ),
    "qsm-best-trained": retired(
        "2026-11-22-hopper-plateau",
        f"{CROSSQ_CRITIC} --agent.langevin-score trained",
        "crossq-critic reading the score as trained (alpha means exp(alpha Q))",
    ),
    "qsm-best-adaptive-wide": retired(
        "2026-11-22-hopper-plateau",
        f"{CROSSQ_CRITIC} --agent.alpha-target-std 0.3",
        "qsm-best-adaptive aiming at a spread of 0.3",
    ),
    "qsm-best-adaptive-chain": retired(
        "2026-11-22-hopper-plateau",
        f"{CROSSQ_CRITIC} --agent.alpha-target-std 0.089 --agent.alpha-control chain",
        "qsm-best-adaptive with the tuned alpha as the chains' temperature",
    ),
    "qsm-best-t10": retired(
        "2026-11-22-hopper-plateau",
        f"{CROSSQ_CRITIC} --agent.target-sampler-steps 10",
        "crossq-critic with 10 target steps",
    ),
    "qsm-best-critic-adam": retired(
        "2026-11-22-hopper-plateau",
        f"{CROSSQ_CRITIC} --agent.critic-lr 3e-4 --agent.critic-betas 0.9 0.999",
        "crossq-critic with the reference critic's Adam",
    ),
    "qsm-polyak-crossq-adam": retired(
        "2026-12-04-polyak-critics",
        "--preset langevin-t3 --agent.critic-lr 1e-3 --agent.critic-betas 0.5 0.999",
        "langevin-t3 with CrossQ's Adam",
    ),
    "qsm-ln-no-target": retired(
        "2026-12-04-polyak-critics",
        "--preset polyak-ln --agent.no-critic-target-network",
        "the LayerNorm critic trained by CrossQ's loss, without a target network",
    ),
    "qsm-ln-no-target-input-renorm": retired(
        "2026-12-05-input-renorm",
        "--preset polyak-ln --agent.no-critic-target-network --agent.critic-input-renorm",
        "qsm-ln-no-target with its input batch-renormalised",
    ),
    "qsm-polyak-ln-input-renorm": retired(
        "2026-12-05-input-renorm",
        "--preset polyak-ln --agent.critic-input-renorm",
        "polyak-ln with its critic's input batch-renormalised",
    ),
}

CURRENT: dict[str, Method] = {**PRESET_METHODS, **BASELINES, **OBJECTIVES, **SCREENS}
METHODS: dict[str, Method] = {**CURRENT, **RETIRED}
PLOTTED = (*PRESET_METHODS, *BASELINES)
"""The methods a suite's plots draw unless others are asked for."""


def page_name(page: str) -> str:
    """A page's name: its file name without .md (2026-12-04-polyak-critics, dime)."""
    return Path(page).stem


def screen_methods(page: str) -> list[str]:
    """The methods whose page has this name (or path)."""
    return [
        m for m, spec in METHODS.items() if spec.page and page_name(spec.page) == page_name(page)
    ]


SECTIONS = {
    "Presets (as their results were run)": PRESET_METHODS,
    "Baselines": BASELINES,
    "Online objectives": OBJECTIVES,
    "Screens in use": SCREENS,
    "Retired screens": RETIRED,
}


def method_table() -> str:
    """The tables above as text: each method and what it runs, under the page that reports it."""
    width = max(map(len, METHODS))
    lines = []
    for title, table in SECTIONS.items():
        lines.append(f"{title}:")
        by_page = any(spec.page for spec in table.values())
        for page, names in itertools.groupby(table, key=lambda m: table[m].page):
            if by_page:
                lines.append(f"  docs/{page}:" if page else "  not on a page yet:")
            for name in names:
                spec = table[name]
                presets = f" (preset {', '.join(spec.presets)})" if spec.presets else ""
                lines.append(f"{'    ' if by_page else '  '}{name:<{width}}  {spec.about}{presets}")
    return "\n".join(lines)


def build_command(
    method: str,
    suite: str,
    env: str,
    seed: int,
    steps: int,
    run_dir: Path,
    extra: Sequence[str] = (),
    sac_extra: Sequence[str] = (),
    threads: int = 1,
) -> list[str]:
    """The argv of one new run (a resume appends --resume)."""
    spec = METHODS[method]
    script = REPO / spec.script.format(suite=suite)
    if not script.is_file():
        raise FileNotFoundError(f"method {method!r} on suite {suite!r} needs {script}")
    passthrough = sac_extra if spec.family == "sac" else extra
    cmd = [sys.executable, str(script)]
    cmd += ["--env", env, "--steps", str(steps), "--seed", str(seed), "--run-dir", str(run_dir)]
    return cmd + ["--threads", str(threads), "--no-progress", *spec.flags, *passthrough]
