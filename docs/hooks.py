"""mkdocs hook: the figures that live beside their data (benchmarks/results/**/*.png, the
examples' pictures) are published with the site, so pages link them without a copy in docs/."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]
# (folder the site path starts from, glob under it): results/... and examples/... in the site.
FIGURES = ((REPO / "benchmarks", "results/**/*.png"), (REPO, "examples/*.png"))


def on_files(files, config):
    for root, pattern in FIGURES:
        for png in sorted(root.glob(pattern)):
            path = str(png.relative_to(root))
            files.append(File(path, str(root), config["site_dir"], config["use_directory_urls"]))
    return files
