"""Where things live. Every location can be moved by an environment variable.

- LAB_CACHE:   downloaded packages, prepared corpora, converted models, trained tokenizers (git-ignored).
               Default: <repo>/data/cache.
- LAB_RESULTS: the JSON run records. Default: <repo>/results. Tests point it at a temporary folder.
- LAB_CHECKPOINTS: training checkpoints of long (full-profile) runs, one folder per run, removed when the run has
               finished; and the trained models a later section reads (05's models, 06's adapters), kept
               (git-ignored). Default: <repo>/checkpoints.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    return Path(os.environ.get("LAB_CACHE", REPO_ROOT / "data" / "cache")).expanduser()


def results_dir() -> Path:
    return Path(os.environ.get("LAB_RESULTS", REPO_ROOT / "results")).expanduser()


def checkpoints_dir() -> Path:
    return Path(os.environ.get("LAB_CHECKPOINTS", REPO_ROOT / "checkpoints")).expanduser()
