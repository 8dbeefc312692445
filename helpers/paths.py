"""Where things live. Every location can be moved by an environment variable.

- LAB_CACHE:   downloaded packages, prepared corpora, converted models, trained tokenizers (git-ignored).
               Default: <repo>/data/cache.
- LAB_RESULTS: the JSON run records. Default: <repo>/results. Tests point it at a temporary folder.
- LAB_CHECKPOINTS: training checkpoints of long (full-profile) runs, one folder per run, removed when the run has
               finished; and the trained models a later section reads (05's models, 06's adapters), kept
               (git-ignored). Default: <repo>/checkpoints.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


ASSET_STEPS = ("debs", "corpora", "smollm2", "tokenizers")     # helpers.assets' steps, in their order


def check_asset_steps(steps) -> tuple[str, ...]:
    """The steps, or a ValueError naming the unknown ones and what is allowed. Here, not in helpers.assets, so that
    the CLI refuses a bad step at once instead of after importing torch and transformers (~6 s)."""
    steps = tuple(steps)
    unknown = set(steps) - set(ASSET_STEPS)
    if unknown:
        raise ValueError(f"unknown asset step(s) {sorted(unknown)}; allowed: {', '.join(ASSET_STEPS)}")
    return steps


def cache_dir() -> Path:
    return Path(os.environ.get("LAB_CACHE", REPO_ROOT / "data" / "cache")).expanduser()


def results_dir() -> Path:
    return Path(os.environ.get("LAB_RESULTS", REPO_ROOT / "results")).expanduser()


def checkpoints_dir() -> Path:
    return Path(os.environ.get("LAB_CHECKPOINTS", REPO_ROOT / "checkpoints")).expanduser()


# --------------------------------------------------------------------------------------------- prepared assets
# `python -m helpers assets` prepares each asset once under LAB_CACHE; a finished step leaves a stamp (.done) in its
# folder and is skipped next time (helpers.assets, helpers.corpora)
FETCH_CMD = "python -m helpers assets   (or: make setup)"


class AssetError(RuntimeError):
    """A local asset is missing or could not be prepared. The message always names the fix."""


def stamp(path: Path) -> Path:
    """The file that marks a prepared asset's folder as finished."""
    return path / ".done"


def is_done(path: Path) -> bool:
    return stamp(path).exists()


def mark_done(path: Path, info: dict | None = None) -> None:
    stamp(path).write_text(json.dumps(info or {}, indent=1))


def run_quiet(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """A command's result with its output captured; the caller reads returncode and names the fix."""
    return subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)
