import os

import pytest
from dryrun_support import full_offline  # noqa: F401 - the GPU-profile dry runs' fixture, for every file

# Under `make test` the files are spread over one pytest worker per core (pytest-xdist): each worker, and every
# process it starts (notebook kernels, point commands), computes with one torch thread, so that two workers never
# oversubscribe the cores (two workers of two threads each took 38 minutes at commit c1410ba against 17.5 for one
# worker; most likely idle OpenMP threads spinning while they wait, four of them on two cores).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def checkpoints_root(tmp_path, monkeypatch):
    """Saved models and checkpoints go to the test's own folder, never the repository's checkpoints/."""
    root = tmp_path / "checkpoints"
    monkeypatch.setenv("LAB_CHECKPOINTS", str(root))
    return root


@pytest.fixture
def results_root(tmp_path, monkeypatch):
    root = tmp_path / "results"
    monkeypatch.setenv("LAB_RESULTS", str(root))
    return root


@pytest.fixture
def tiny_blocks():
    """Deterministic token blocks with learnable structure: each block counts upwards modulo the vocabulary."""
    import torch
    from datasets import Dataset

    g = torch.Generator().manual_seed(0)
    starts = torch.randint(0, 64, (96,), generator=g)
    rows = [{"input_ids": [(int(s) + i) % 64 for i in range(32)]} for s in starts]
    return Dataset.from_list(rows[:80]), Dataset.from_list(rows[80:])


@pytest.fixture
def tiny_model():
    from helpers.models import NeoXSize, from_config, neox_config

    def make(seed=0):
        import torch

        torch.manual_seed(seed)
        return from_config(neox_config(NeoXSize(hidden=32, layers=2, heads=2), vocab_size=64))

    return make


# The longest files first: pytest-xdist hands whole files (--dist loadfile) to its workers in collection order, so
# the tiny notebooks' session (~7 minutes on one worker) and the heaviest dry runs start at once instead of last.
FIRST = ("test_notebooks.py", "test_dryrun_sft.py", "test_dryrun_compression.py", "test_engines.py",
         "test_full_dryrun.py", "test_dryrun_looped.py", "test_points.py", "test_bitwise.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))     # stable: each file keeps its own order

