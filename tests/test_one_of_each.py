"""The shared layer has one of each: one W&B logger, and notebook names spelled once (in the family registry's
report modules) and read from the registry by the shared modules."""
import re

from helpers import families as F
from helpers.paths import REPO_ROOT


def test_there_is_one_wandb_logger(monkeypatch):
    """helpers.tracking.log_record is the only code that starts a W&B run; notebook 07's study and the sweep agent's
    point command call it (whether W&B is on stays theirs: the profile's `wandb`, an agent's WANDB_SWEEP_ID)."""
    starts = [p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "helpers").rglob("*.py")
              if "wandb.init(" in p.read_text()]
    assert starts == ["helpers/tracking.py"]
    import importlib
    import pkgutil

    import helpers.points as PT
    import helpers.pretraining as PRE
    from helpers.pretraining import study as S

    # notebook 07's logger, in whichever module of its package defines it
    mods = [importlib.import_module(f"helpers.pretraining.{m.name}") for m in pkgutil.iter_modules(PRE.__path__)]
    home = next(m for m in mods if getattr(getattr(m, "log_wandb", None), "__module__", None) == m.__name__)
    assert PT.log_record.__module__ == home.log_record.__module__ == "helpers.tracking"
    seen = []
    monkeypatch.setattr(home, "log_record", lambda rec, **kw: seen.append((rec, kw)))
    result = {"metrics": {"eval_loss": 1.0}, "curves": {}}
    home.log_wandb(S.PROFILES["tiny"], 3, result)
    assert seen[0][0] is result and seen[0][1]["offline"] and seen[0][1]["config"]["seed"] == 3


def test_notebook_names_are_spelled_once_and_read_from_the_registry():
    for f in F.FAMILIES:
        spelled = getattr(f.report, "NOTEBOOKS", None) or (f.report.NOTEBOOK,)
        assert f.notebooks == tuple(spelled)
    assert F.notebooks_of("baselines") == ("00_data_and_baselines",)
    names = re.compile("|".join(re.escape(f'"{nb}"') for nb in F.NOTEBOOKS))
    shared = [p for p in (REPO_ROOT / "helpers").glob("*.py") if p.name not in ("families.py", "readme.py")]
    assert [p.name for p in shared if names.search(p.read_text())] == []
