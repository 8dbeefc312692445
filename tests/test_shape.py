"""The family shape: one registry; every family is a package under helpers/ with a study and a torch-free report
module; a family imports the shared layer and never another family; reports and the other torch-free modules import
without torch; no import cycle between helpers modules, function-level imports and the registry's by-name study
imports counted; no module grows past the size the project keeps."""
import ast
import subprocess
import sys

import pytest

from helpers import families
from helpers.paths import REPO_ROOT

HELPERS = REPO_ROOT / "helpers"
FAMILY_PACKAGES = {f.package for f in families.FAMILIES}
# read by Analysis.ipynb, the notebook runner and the README generator: they must import without torch
TORCH_FREE = ("analysis", "families", "planning", "memory", "profiles", "results", "provenance", "stats", "plots",
              "paths", "hub", "readme", "notebooks", "layers", "surgery.ops", "surgery.experiments", "models",
              "precision", "tracking", "looped.verdicts", "surgery.summary", "surgery.claims", "sft.verdicts",
              "pretraining.tables",
              *(f"{f.package}.report" for f in families.FAMILIES))
MAX_LINES = 400


def modules() -> dict:
    """{dotted name under helpers ('results', 'looped.study'): path}; a package's __init__ is named by the package."""
    out = {}
    for path in HELPERS.rglob("*.py"):
        parts = path.relative_to(HELPERS).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts) or "__init__"] = path
    return out


def family_of(module: str) -> str | None:
    head = module.split(".")[0]
    return head if "." in module and head in FAMILY_PACKAGES else None


@pytest.mark.parametrize("fam", families.FAMILIES, ids=lambda f: f.package)
def test_every_family_is_a_package_with_a_study_and_a_report_with_the_family_interface(fam):
    study = fam.study_module()
    assert set(study.PROFILES) == {"tiny", "local", "gpu-small", "full"} and callable(study.full_plan)
    assert callable(fam.report.report) and isinstance(fam.title, str)
    assert fam.report.__name__ == f"helpers.{fam.package}.report" and study.__name__ == f"helpers.{fam.package}.study"
    assert all((REPO_ROOT / "notebooks" / f"{nb}.ipynb").exists() for nb in fam.notebooks)
    # each study module opens with its sections in order: a header docstring and __all__, what its notebook uses
    assert study.__doc__ and isinstance(study.__all__, (list, tuple)) and all(hasattr(study, n) for n in study.__all__)


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


def imports_of(module: str, path, known: set[str], top_only: bool = False) -> set[str]:
    """The helpers modules `module` imports (relative or absolute, `from . import x` resolved to the module x where
    x is one), at any depth of the module unless top_only. Names are dotted under helpers, as in modules()."""
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_only else ast.walk(tree)
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            base_names = [a.name.split(".")[1:] for a in node.names if a.name.startswith("helpers.")]
            out.update(".".join(b) for b in base_names)
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            base = base + (node.module.split(".") if node.module else [])
        elif (node.module or "").split(".")[0] == "helpers":
            base = node.module.split(".")[1:]
        else:
            continue
        for a in node.names:                  # `from pkg import mod` names a module; `from mod import f` does not
            sub = ".".join(base + [a.name])
            out.add(sub if sub in known else ".".join(base))
    return {m for m in out if m in known and m != module}


def import_graph() -> dict[str, set[str]]:
    """{module: helpers modules it imports}, at any depth of the module (function-level imports too), plus the
    family registry's study modules, which it imports by name."""
    mods = modules()
    graph = {name: imports_of(name, path, set(mods)) for name, path in mods.items()}
    graph["families"] |= {f"{f.package}.study" for f in families.FAMILIES}
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
    assert "pretraining.study" in graph["families"] and "looped.report" in graph["looped.study"]  # the real graph
    assert "factorize" not in graph and "lowrank" in graph["compression.factorize"]
    assert not cycles(graph), cycles(graph)
    # the check finds a cycle when there is one (a study importing the registry would close one)
    assert "families" in cycles({**graph, "baselines.study": graph["baselines.study"] | {"families"}})


def test_a_family_imports_the_shared_layer_and_never_another_family():
    """The shared layer is helpers' flat modules; a family package may import those and its own modules only. The
    registry (families), the CLI and the README generator are shared modules that read every family by design."""
    graph = import_graph()
    crossing = {(m, d) for m, deps in graph.items() if (fam := family_of(m))
                for d in deps if family_of(d) not in (None, fam)}
    assert not crossing, sorted(crossing)
    # the shared layer reaches a family only through the registry and the entry points that read it
    readers = {"families", "__main__", "readme", "points", "notebooks"}
    upward = {(m, d) for m, deps in graph.items() if family_of(m) is None and m not in readers and "." not in m
              for d in deps if family_of(d)}
    assert not upward, sorted(upward)
    # the check sees a crossing when there is one
    bad = {**graph, "sft.study": graph["sft.study"] | {"looped.model"}}
    assert any(family_of(m) != family_of(d) for m, deps in bad.items() if family_of(m) for d in deps if family_of(d))


def test_torch_free_modules_import_no_torch_module_at_their_top():
    """The top-level imports of the torch-free modules reach only torch-free modules (their own function-level
    imports of torch are the stated exceptions)."""
    mods = modules()
    torch_free = set(TORCH_FREE) | {f.package for f in families.FAMILIES} | {"__init__"}
    for name in TORCH_FREE:
        tree = ast.parse(mods[name].read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert not any(n.split(".")[0] in ("torch", "peft", "trl") for n in names), (name, names)
        top = imports_of(name, mods[name], set(mods), top_only=True)
        assert top <= torch_free, (name, top - torch_free)


# modules allowed past MAX_LINES, each with the reason it is one module
LONG_OK: dict[str, str] = {}


def test_no_helpers_module_is_longer_than_the_project_keeps():
    long = {name: n for name, p in modules().items()
            if (n := len(p.read_text().splitlines())) > MAX_LINES and name not in LONG_OK}
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
    from helpers.looped.study import regime_point
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
