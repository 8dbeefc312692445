import os

# Under `make test` the files are spread over one pytest worker per core (pytest-xdist): each worker, and every
# process it starts (notebook kernels, point commands), computes with one torch thread, so that two workers never
# oversubscribe the cores. This must run before the first `import torch`: OpenMP reads OMP_NUM_THREADS once, when
# torch loads it, so a variable set after the import leaves the worker at one thread per core. (It did until
# commit 5d02a00, where the import below came first: a 3.7 s test took 125 s beside a dry run in the other worker,
# two threads per worker, four on two cores, the idle ones spinning.)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402 - after the thread settings above
import torch  # noqa: E402
from dryrun_support import full_offline  # noqa: E402,F401 - the GPU-profile dry runs' fixture, for every file

if os.environ.get("PYTEST_XDIST_WORKER"):
    assert torch.get_num_threads() == 1, "conftest: torch was imported before OMP_NUM_THREADS was set"


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
# the tiny notebooks' session (~9 minutes on one worker) and the heaviest dry runs start at once instead of last.
# Collection order only if xdist's own reordering (files with more tests first, on by default) is off: with it on,
# the SFT dry run's file (two tests) started last and the suite ended on it, one worker idle (pytest_configure).
FIRST = ("test_notebooks.py", "test_dryrun_sft.py", "test_dryrun_compression.py", "test_engines.py",
         "test_full_dryrun.py", "test_dryrun_looped.py", "test_points.py", "test_bitwise.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))     # stable: each file keeps its own order


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):      # pytest-xdist's --no-loadscope-reorder, set here for any run
        config.option.loadscopereorder = False
