"""The family shape: one registry; every family has a study and a torch-free report module; reports and the other
torch-free modules import without torch; no import cycle between helpers modules, function-level imports and the
registry's by-name study imports counted; no module grows past the size the project keeps."""
import ast
import subprocess
import sys

import pytest

from helpers import families
from helpers.paths import REPO_ROOT

HELPERS = REPO_ROOT / "helpers"
# read by Analysis.ipynb, the notebook runner and the README generator: they must import without torch
TORCH_FREE = ("analysis", "families", "planning", "memory", "profiles", "results", "provenance", "stats", "plots",
              "paths", "hub", "readme", "notebooks", "layers", "surgery", "surgery_experiments", "models",
              *(f.report.__name__.split(".")[-1] for f in families.FAMILIES))
MAX_LINES = 560


@pytest.mark.parametrize("fam", families.FAMILIES, ids=lambda f: f.study)
def test_every_family_has_a_study_and_a_report_with_the_family_interface(fam):
    study = fam.study_module()
    assert set(study.PROFILES) == {"tiny", "local", "gpu-small", "full"} and callable(study.full_plan)
    assert callable(fam.report.report) and isinstance(fam.title, str)
    assert fam.report.__name__ == f"helpers.{fam.study.removesuffix('_study')}_report"
    assert all((REPO_ROOT / "notebooks" / f"{nb}.ipynb").exists() for nb in fam.notebooks)


def test_every_notebook_is_in_the_registry_and_analysis_looks_reports_up_by_notebook():
    on_disk = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(families.NOTEBOOKS) == on_disk
    analysis = (REPO_ROOT / "Analysis.ipynb").read_text()
    assert "reports[" in analysis and not any(f"reports[{i}]" in analysis for i in range(10))
    for nb in {f.notebooks[0] for f in families.FAMILIES}:
        assert f'reports[\\"{nb}\\"]' in analysis, nb
    with pytest.raises(ValueError, match="unknown notebook '99_x'; allowed: 00_data_and_baselines"):
        families.family("99_x")


def test_torch_free_modules_and_every_report_import_and_run_without_torch():
    """Analysis needs pandas and matplotlib only: import the torch-free modules and build every family's report from
    every committed record, then check that neither torch nor transformers (which loads torch) was imported."""
    code = (
        "import sys, importlib, matplotlib; matplotlib.use('Agg')\n"
        f"for m in {TORCH_FREE!r}: importlib.import_module('helpers.' + m)\n"
        "from helpers import families\n"
        "from helpers.results import load_records\n"
        "reps = families.reports(load_records())\n"
        "assert reps['05_looped_transformer'].tables and reps['01_attention_lowrank'].text\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'peft', 'trl'})\n"
        "assert not loaded, loaded\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def import_graph() -> dict[str, set[str]]:
    """{module: helpers modules it imports}, at any depth of the module (function-level imports too), plus the
    family registry's study modules, which it imports by name."""
    mods = {p.stem for p in HELPERS.glob("*.py")}
    graph = {}
    for path in HELPERS.glob("*.py"):
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                out.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers"):
                parts = node.module.split(".")
                out.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        graph[path.stem] = out & mods
    graph["families"] |= {f.study for f in families.FAMILIES}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[str]:
    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for m in graph.get(todo.pop(), ()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    return sorted(m for m in graph if m in reach(m))


def test_no_import_cycle_between_helpers_modules_counting_function_level_imports():
    graph = import_graph()
    assert "fullplan" not in graph and "pretrain_study" in graph["families"]       # the graph is the real one
    assert not cycles(graph), cycles(graph)
    # the check finds a cycle when there is one (a study importing the registry would close one)
    assert "families" in cycles({**graph, "data_study": graph["data_study"] | {"families"}})


def test_torch_free_modules_import_no_torch_module_at_their_top():
    """The top-level imports of the torch-free modules reach only torch-free modules (their own function-level
    imports of torch are the stated exceptions)."""
    torch_free = set(TORCH_FREE)
    for name in TORCH_FREE:
        tree = ast.parse((HELPERS / f"{name}.py").read_text())
        top = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                top.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert not any(n.split(".")[0] in ("torch", "peft", "trl") for n in names), (name, names)
        assert top <= torch_free, (name, top - torch_free)


def test_no_helpers_module_is_longer_than_the_project_keeps():
    long = {p.name: n for p in HELPERS.glob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


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
    from helpers.families import resolve
    from helpers.looped_study import regime_point
    from helpers.sweep import sweep

    run = resolve("05_looped_transformer", "tiny", quiet=True)
    first = sweep(run, "regime", {"a": {}}, regime_point)
    both = sweep(run, "regime", {"a": {}, "b": {"train.lr": 2e-3}}, regime_point)
    assert both["a", 0]["created"] == first["a", 0]["created"]            # loaded
    assert both["b", 0]["config"]["train"]["lr"] == 2e-3                   # new point trained
    changed = sweep(run, "regime", {"a": {"train.steps": 5}}, regime_point)
    assert changed["a", 0]["metrics"]["looped.steps"] == 5 and changed["a", 0]["run_id"] != first["a", 0]["run_id"]
    forced = sweep(run, "regime", {"a": {}}, regime_point, force=True)
    assert forced["a", 0]["run_id"] == first["a", 0]["run_id"]
