"""After `mutmut run`: the mutation score per package, and a failure for every surviving mutant
that docs/mutation.md does not list as equivalent. `make mutate` runs it from the repository root.

docs/mutation.md lists the equivalent mutants in a table between the markers below, one row per
mutant: `| `mutant id` | `the mutated line` | why it cannot change a result |`. The mutated line is
compared with the mutant's diff, so a row whose id now names another mutation (after an edit of
the function) fails instead of silently excusing it. A listed mutant that no longer survives
fails too: the list must stay exact.

Exit status: 0 when every survivor is listed and every row still holds, 1 otherwise.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "mutation.md"
BEGIN, END = "<!-- equivalents -->", "<!-- /equivalents -->"
# The packages [tool.mutmut] mutates (pyproject.toml).
PACKAGES = ("schedules", "samplers", "objectives", "nets")
# Detected: the tests failed, or the mutant ran past its time limit (an endless loop is caught).
DETECTED = {"killed", "timeout"}
# Undetected: a test run passed, or no selected test runs the mutated function.
UNDETECTED = {"survived", "no tests"}


def load_results() -> dict[str, tuple[str, str]]:
    """mutant id -> (source path, status), from the .meta files `mutmut run` leaves in mutants/."""
    results = {}
    for meta in sorted((ROOT / "mutants" / "diffpolicy").rglob("*.py.meta")):
        source = meta.relative_to(ROOT / "mutants").as_posix()[: -len(".meta")]
        for mutant, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            results[mutant] = (source, status_by_exit_code[code])
    return results


def load_equivalents() -> dict[str, tuple[str, str]]:
    """mutant id -> (mutated line, reason), from the table in docs/mutation.md."""
    text = DOC.read_text()
    table = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue  # header, separator or blank
        mutant, mutated, reason = (c.strip("`") for c in cells)
        if mutant in rows:
            sys.exit(f"{DOC.name}: {mutant} is listed twice")
        rows[mutant] = (mutated.replace("\\|", "|"), reason)
    return rows


def mutated_lines(mutant: str, source: str) -> str:
    """The lines the mutant adds, stripped and joined by ' / ' (how the table quotes them)."""
    diff = get_diff_for_mutant(mutant, path=source)
    added = [line[1:].strip() for line in diff.splitlines() if re.match(r"\+(?!\+\+)", line)]
    return " / ".join(added)


def package_of(source: str) -> str:
    return source.split("/")[1]


def main() -> int:
    if not (ROOT / "mutants").is_dir():
        print("no mutants/ folder: run `make mutate`")
        return 1
    results = load_results()
    equivalents = load_equivalents()
    problems = []

    counts: dict[str, Counter] = {p: Counter() for p in PACKAGES}
    for mutant, (source, status) in results.items():
        listed = mutant in equivalents
        if status in UNDETECTED and listed:
            status = "equivalent"
        elif status in UNDETECTED:
            diff = get_diff_for_mutant(mutant, path=source)
            problems.append(f"{status}: {mutant} ({source})\n{diff}\n")
        elif status not in DETECTED:  # not checked, suspicious, segfault, interrupted
            problems.append(f"{status}: {mutant} ({source}): the run did not finish cleanly")
        counts[package_of(source)][status] += 1

    for mutant, (mutated, _) in equivalents.items():
        if mutant not in results:
            problems.append(f"listed as equivalent but no such mutant: {mutant}")
            continue
        source, status = results[mutant]
        if status not in UNDETECTED:
            problems.append(f"listed as equivalent but {status}: {mutant}")
        elif mutated_lines(mutant, source) != mutated:
            problems.append(
                f"listed as equivalent, but {mutant} is now another mutation:\n"
                f"  listed: {mutated}\n  now:    {mutated_lines(mutant, source)}"
            )

    print(
        f"{'package':<12}{'mutants':>8}{'killed':>8}{'timeout':>8}{'equiv.':>8}{'undet.':>8}"
        f"{'score':>8}"
    )
    for package, c in counts.items():
        total = sum(c.values())
        detected = c["killed"] + c["timeout"]
        undetected = c["survived"] + c["no tests"]
        # The score counts detected mutants among those that are not equivalent.
        score = detected / max(total - c["equivalent"], 1)
        print(
            f"{package:<12}{total:>8}{c['killed']:>8}{c['timeout']:>8}{c['equivalent']:>8}"
            f"{undetected:>8}{score:>8.1%}"
        )

    for problem in problems:
        print(problem)
    if problems:
        print(
            f"{len(problems)} problem(s): kill each survivor with a test, or list it as "
            f"equivalent in {DOC.relative_to(ROOT)} with its reason"
        )
        return 1
    print("every surviving mutant is listed as equivalent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
