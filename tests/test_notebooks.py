"""Every notebook executes top to bottom in the tiny profile and writes schema-valid records; Analysis.ipynb runs
against those records (plus a corrupt file it must report, not crash on); committed notebooks follow the contract."""
import ast
import json
import shutil
import time

import nbformat
import pytest

from helpers.notebooks import ANALYSIS, NotebookError, execute, list_notebooks
from helpers.results import iter_records

NOTEBOOKS = list_notebooks()
pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Execute all notebooks once (tiny profile, results into a temp folder); per-notebook outcome and wall time."""
    root = tmp_path_factory.mktemp("tiny")
    results, outcome = root / "results", {}
    env = {"NB_PROFILE": "tiny", "LAB_RESULTS": str(results), "LAB_CHECKPOINTS": str(root / "checkpoints")}
    for nb in NOTEBOOKS:
        t0 = time.time()
        try:
            execute(nb, root / "runs" / nb.name, env=env, timeout=600)
            outcome[nb.stem] = (None, time.time() - t0)
        except NotebookError as e:
            outcome[nb.stem] = (str(e), time.time() - t0)
    return root, results, outcome


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_tiny_profile_and_saves_records(tiny_run, nb):
    _, results, outcome = tiny_run
    err, wall = outcome[nb.stem]
    assert err is None, err
    records = [(p, rec, e) for p, rec, e in iter_records(results) if p.parent.name == nb.stem]
    assert records, f"{nb.stem} wrote no record under {results}"
    for path, rec, e in records:
        assert e is None, f"{path}: {e}"
        assert rec["profile"] == "tiny" and rec["status"] == "ok"
        bad = _non_finite(rec["metrics"])
        assert not bad, f"{path.name}: non-finite metrics {bad}"
    print(f"{nb.stem}: {wall:.1f} s in the tiny profile, {len(records)} records")


def _non_finite(metrics, prefix: str = "") -> list[str]:
    """Dotted names of the NaN / infinite numbers in a record's metrics (nested dicts and lists included): a tiny run
    that trains to NaN must fail its test, not pass because a record was written."""
    import math

    if isinstance(metrics, dict):
        return [k for key, v in metrics.items() for k in _non_finite(v, f"{prefix}{key}.")]
    if isinstance(metrics, list):
        return [k for i, v in enumerate(metrics) for k in _non_finite(v, f"{prefix}{i}.")]
    return [prefix.rstrip(".")] if isinstance(metrics, float) and not math.isfinite(metrics) else []


def test_analysis_runs_on_tiny_results_and_reports_corrupt_files(tiny_run):
    root, results, _ = tiny_run
    full = root / "Analysis-all.ipynb"               # every family present: every section renders
    shutil.copy(ANALYSIS, full)
    execute(full, full, env={"LAB_RESULTS": str(results)})
    text = "\n".join(json.dumps(c.get("outputs", [])) for c in nbformat.read(full, 4).cells)
    assert "not run yet" not in text and "least_squares" in text
    partial = root / "partial-results"               # every family but 05, plus a corrupt record
    shutil.copytree(results, partial, ignore=shutil.ignore_patterns("05_*"))
    (partial / "00_data_and_baselines" / "truncated.json").write_text('{"schema_version": 1, "run_id"')
    out = root / "Analysis.ipynb"
    shutil.copy(ANALYSIS, out)
    execute(out, out, env={"LAB_RESULTS": str(partial)})
    text = "\n".join(json.dumps(c.get("outputs", [])) for c in nbformat.read(out, 4).cells)
    assert "1 unreadable" in text and "truncated.json" in text
    assert "in-context learning (seed 002): not run yet" in text   # a family without records says so
    assert "neox-from-scratch" in text                              # the 00 records are shown
    assert "linear-lora-8-no-dense-8" in text                       # the seed-000 table
    assert "whiten" in text                                         # the seed-001 method table


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_contract(path):
    nb = nbformat.read(path, 4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "header first"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in _code_cells(nb)), \
        f"{path.name} is committed with outputs: strip them"
    params = [c for c in _code_cells(nb) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged `parameters`"
    for node in ast.parse(params[0].source).body:   # literals only, so papermill can override any of them
        assert isinstance(node, ast.Assign), ast.dump(node)
        ast.literal_eval(node.value)
    assert "PROFILE" in params[0].source
    setup = _code_cells(nb)[0]
    assert "google.colab" in setup.source and "KAGGLE" in setup.source, "first code cell is the Colab/Kaggle setup"
    for c in _code_cells(nb):
        tree = ast.parse("\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        assert not any(isinstance(n, ast.ClassDef) for n in ast.walk(tree)), "no classes in notebooks"
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            assert fn.end_lineno - fn.lineno < 10, f"long function {fn.name} belongs in helpers/"


def test_analysis_is_committed_with_outputs():
    nb = nbformat.read(ANALYSIS, 4)
    assert any(c.get("outputs") for c in _code_cells(nb)), "Analysis.ipynb should keep its outputs (run `make run`)"


def test_unknown_notebook_selection():
    with pytest.raises(NotebookError, match="no notebook matches '99'"):
        list_notebooks("99")


def test_non_finite_metrics_are_found_at_any_depth():
    nan, inf = float("nan"), float("inf")
    assert _non_finite({"a": 1.0, "b": {"c": nan, "d": 2}, "e": [0.5, inf], "f": None, "g": "x"}) == ["b.c", "e.1"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_hosted_setup_installs_once_and_a_restarted_kernel_steps_back_into_the_clone(path, tmp_path, monkeypatch):
    """The setup cell on a simulated Colab: the first run clones, installs (keeping the hosted torch: no torch pin
    reinstalled) and, without a GPU, prepares the assets, then works inside the clone; after a kernel restart (the
    working folder is the session's again) it installs nothing and steps back into the clone; off Colab/Kaggle it
    does nothing; with a GPU (a GPU profile, which loads from the hub) it prepares no assets."""
    import os
    import subprocess
    import sys
    import types

    source = "\n".join(line for line in _code_cells(nbformat.read(path, 4))[0].source.splitlines()
                       if not line.lstrip().startswith("%"))
    calls = []

    def fake_run(cmd, **kw):
        calls.append((cmd, kw.get("cwd")))
        if isinstance(cmd, list) and cmd[:2] == ["git", "clone"]:
            (tmp_path / "llm-lowrank-lab").mkdir()
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    exec(source, {})                                                   # not hosted: nothing happens
    assert calls == [] and os.getcwd() == str(tmp_path)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(source, {})
    assert [c[0][:2] if isinstance(c[0], list) else "pip" for c in calls] == [
        ["git", "clone"], "pip", [sys.executable, "-m"]]
    assert "grep -v '^torch=='" in calls[1][0] and calls[1][1] == calls[2][1] == "llm-lowrank-lab"
    assert os.getcwd() == str(tmp_path / "llm-lowrank-lab")
    monkeypatch.chdir(tmp_path)                                        # a kernel restart
    exec(source, {})
    assert len(calls) == 3 and os.getcwd() == str(tmp_path / "llm-lowrank-lab")
    # a hosted GPU machine runs a GPU profile, which loads from the hub: no offline assets prepared
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    (tmp_path / "gpu").mkdir()
    monkeypatch.chdir(tmp_path / "gpu")
    calls.clear()
    tmp_path = tmp_path / "gpu"
    exec(source, {})
    assert [c[0][:2] if isinstance(c[0], list) else "pip" for c in calls] == [["git", "clone"], "pip"]
