"""The family shape: every study module has the same interface, reports need no torch, and no import cycle."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.paths import REPO_ROOT

STUDIES = ("data_study", "surgery_study", "compression_study", "looped_study", "pretrain_study")


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_has_the_family_interface(name):
    import importlib

    mod = importlib.import_module(f"helpers.{name}")
    assert set(mod.PROFILES) == {"tiny", "local", "full"}
    assert callable(mod.report) and isinstance(mod.TITLE, str)
    assert getattr(mod, "NOTEBOOK", None) or getattr(mod, "NOTEBOOKS", None)


def test_reports_run_without_torch(tmp_path):
    """Analysis needs pandas and matplotlib only: import every study and build every report with torch blocked."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import matplotlib; matplotlib.use('Agg')\n"
        "from helpers import analysis as A\n"
        "rec = {'notebook': '05_looped_transformer', 'experiment': 'regime', 'variant': 'regime d=5', 'seed': 0,\n"
        "       'profile': 'local', 'run_id': 'r', 'created': '2026', 'params': {'total': 5},\n"
        "       'metrics': {'d': 5, 'steps': 3, 'steps_per_s': 1.0, 'looped.k=d': 0.5, 'looped.k=2d': 0.2,\n"
        "                   'averaging.k=2d': 0.8, 'ratio_to_averaging.k=2d': 0.25}}\n"
        "reps = A.family_reports([rec])\n"
        "assert len(reps[3].tables) == 1 and not reps[0].records, reps\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def _module_imports(path: Path) -> set[str]:
    """helpers modules a module imports at its top level (function-level imports do not form cycles at import)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out.update([node.module] if node.module else [a.name for a in node.names])
    return out


def test_no_import_cycle_between_helpers_modules():
    mods = {p.stem: _module_imports(p) for p in (REPO_ROOT / "helpers").glob("*.py")}
    # any cycle, through top-level or lazy imports, between assets and data is gone
    src = {p.stem: p.read_text() for p in (REPO_ROOT / "helpers").glob("*.py")}
    assert "from .data import" not in src["assets"]

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for m in mods.get(todo.pop(), ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    cyclic = [m for m in mods if m in reach(m)]
    assert not cyclic, cyclic


def test_sweep_grid_reads_a_wandb_declaration_and_rejects_bad_ones():
    from helpers.sweep import SweepError, grid

    pts = grid({"method": "grid", "parameters": {"train.lr": {"values": [1e-3, 3e-3]}, "seeds": {"value": [0]},
                                                 "train.batch_size": {"values": [4, 8]}}})
    assert len(pts) == 4 and pts["train.lr=0.001,seeds=[0],train.batch_size=8"] == {
        "train.lr": 1e-3, "seeds": [0], "train.batch_size": 8}
    with pytest.raises(SweepError, match="'grid'"):
        grid({"method": "bayes", "parameters": {"a": {"values": [1]}}})
    with pytest.raises(SweepError, match="parameter 'a'"):
        grid({"parameters": {"a": [1, 2]}})


def test_sweep_runs_missing_points_only_and_reruns_a_changed_setting(results_root):
    from helpers.looped_study import PROFILES, regime_point
    from helpers.profiles import resolve
    from helpers.sweep import sweep

    run = resolve("05_looped_transformer", PROFILES, "tiny", quiet=True)
    first = sweep(run, "regime", {"a": {}}, regime_point)
    both = sweep(run, "regime", {"a": {}, "b": {"train.lr": 2e-3}}, regime_point)
    assert both["a", 0]["created"] == first["a", 0]["created"]            # loaded
    assert both["b", 0]["config"]["train"]["lr"] == 2e-3                   # new point trained
    changed = sweep(run, "regime", {"a": {"train.steps": 5}}, regime_point)
    assert changed["a", 0]["metrics"]["steps"] == 5 and changed["a", 0]["run_id"] != first["a", 0]["run_id"]
    forced = sweep(run, "regime", {"a": {}}, regime_point, force=True)
    assert forced["a", 0]["run_id"] == first["a", 0]["run_id"]
