"""Hand-made mutants of the functions mutmut skips: `make mutate` runs this after `mutmut run`.

mutmut does not mutate a function with a decorator other than `staticmethod` or `classmethod`
(here: properties and context managers). docs/mutation.md lists a hand-made mutant for each such
function of the mutated packages, one row each between the markers below:
`| `path::Qualified.name` | `original` | `mutant` | `tests` |`: a piece of the function's source,
what the mutant writes instead, and the tests (pytest ids, space-separated) that must notice it.

For each row: copy diffpolicy/ into a temporary folder, replace the piece (it must occur exactly
once in that function), and run the tests with the copy first on the import path; the mutant is
killed when they fail. The unmutated copy must pass the same tests first (so that a failure means
the mutation, not the copy). Fails for a surviving mutant, for a stale row, and for a skipped
function with no row.

    python tests/mutation/hand_mutants.py          # every row
    python tests/mutation/hand_mutants.py --check  # the table against the source only (instant)

Exit status: 0 when every row holds and every mutant is killed, 1 otherwise.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from fnmatch import fnmatch
from pathlib import Path
from typing import NamedTuple

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib


ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "mutation.md"
BEGIN, END = "<!-- hand mutants -->", "<!-- /hand mutants -->"


class HandMutant(NamedTuple):
    function: str
    """path::qualified name, e.g. diffpolicy/nets/averaging.py::frozen."""
    original: str
    mutant: str
    tests: tuple[str, ...]


def load_table() -> list[HandMutant]:
    text = DOC.read_text()
    table = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue  # header, separator or blank
        function, original, mutant, tests = (c.strip("`").replace("\\|", "|") for c in cells)
        rows.append(HandMutant(function, original, mutant, tuple(tests.split())))
    return rows


def functions(path: Path) -> dict[str, ast.FunctionDef]:
    """Qualified name -> definition, for every function and method of a module."""
    found: dict[str, ast.FunctionDef] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found[prefix + child.name] = child
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(ast.parse(path.read_text()), "")
    return found


def skipped_by_mutmut(node: ast.FunctionDef) -> bool:
    """mutmut's rule (mutmut/mutation/file_mutation.py): any decorator but a lone staticmethod or
    classmethod. An abstract method's body (a docstring) has nothing to mutate."""
    names = [d.id if isinstance(d, ast.Name) else None for d in node.decorator_list]
    if not names or names in (["staticmethod"], ["classmethod"]):
        return False
    return "abstractmethod" not in names


def mutated_files() -> list[Path]:
    """The files `[tool.mutmut]` in pyproject.toml mutates."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    files = sorted(ROOT.glob("diffpolicy/**/*.py"))
    rel = [f.relative_to(ROOT).as_posix() for f in files]
    return [
        ROOT / r
        for r in rel
        if any(fnmatch(r, p) for p in cfg["only_mutate"])
        and not any(fnmatch(r, p) for p in cfg.get("do_not_mutate", []))
    ]


def source_span(function: str) -> tuple[Path, int, int]:
    """(file, first line index, end line index) of the function's definition, decorators
    excluded; KeyError for a function that does not exist."""
    path, name = function.split("::")
    node = functions(ROOT / path)[name]
    return ROOT / path, node.lineno - 1, node.end_lineno


def mutate(source: str, first: int, end: int, row: HandMutant) -> str:
    lines = source.splitlines(keepends=True)
    body = "".join(lines[first:end])
    if body.count(row.original) != 1:
        raise ValueError(f"{row.function}: `{row.original}` occurs {body.count(row.original)}x")
    mutated = "".join([*lines[:first], body.replace(row.original, row.mutant), *lines[end:]])
    compile(mutated, row.function, "exec")  # a syntax error would be "killed" by any test
    return mutated


def table_problems(rows: list[HandMutant]) -> list[str]:
    """Rows that no longer match the source, and skipped functions without a row."""
    problems = []
    for row in rows:
        try:
            path, first, end = source_span(row.function)
            mutate(path.read_text(), first, end, row)
        except (KeyError, ValueError, SyntaxError) as err:
            problems.append(f"stale row {row.function}: {err!r}")
        if not row.tests:
            problems.append(f"{row.function}: no tests named")
    covered = {row.function for row in rows}
    for path in mutated_files():
        for name, node in functions(path).items():
            function = f"{path.relative_to(ROOT).as_posix()}::{name}"
            if skipped_by_mutmut(node) and function not in covered:
                problems.append(f"mutmut skips {function} and no hand-made mutant covers it")
    return problems


def run_tests(copy: Path, tests: tuple[str, ...]) -> int:
    """pytest's exit status for `tests`, importing diffpolicy from `copy`."""
    # No bytecode cache: a restored file could otherwise load its mutant's .pyc (same size and
    # modification second).
    env = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HYPOTHESIS_PROFILE": "mutation",
    }
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    ids = [str(ROOT / t) for t in tests]
    done = subprocess.run([*command, *ids], cwd=copy, env=env, capture_output=True, text=True)
    return done.returncode


def main() -> int:
    rows = load_table()
    problems = table_problems(rows)
    if problems or "--check" in sys.argv[1:]:
        print("\n".join(problems) or f"{len(rows)} hand-made mutants, every row matches the source")
        return 1 if problems else 0
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        shutil.copytree(
            ROOT / "diffpolicy", copy / "diffpolicy", ignore=shutil.ignore_patterns("__pycache__")
        )
        every_test = tuple(dict.fromkeys(t for row in rows for t in row.tests))
        if run_tests(copy, every_test) != 0:
            print("the unmutated copy fails the hand-made mutants' tests: fix those first")
            return 1
        survivors = 0
        for row in rows:
            path, first, end = source_span(row.function)
            target = copy / path.relative_to(ROOT)
            original = target.read_text()
            target.write_text(mutate(original, first, end, row))
            killed = run_tests(copy, row.tests) != 0
            target.write_text(original)
            survivors += not killed
            print(f"{'killed' if killed else 'SURVIVED'}: {row.function}: {row.mutant}", flush=True)
    print(f"{len(rows)} hand-made mutants, {len(rows) - survivors} killed, {survivors} survived")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
