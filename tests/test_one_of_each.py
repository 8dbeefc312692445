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


def test_prepared_data_is_held_in_one_memo():
    """helpers.data.prepared is the one in-process memo of prepared data: 07's token blocks and 06's encoded chats
    are built once per key through it, and no other module keeps a module-level dict of its own for them."""
    import ast
    from types import SimpleNamespace

    from helpers import data as D
    from helpers import pretrain
    from helpers.sft import chats

    a = pretrain.lm_data("ru", "bytes", 32, 40, 8, "cyrillic")
    assert pretrain.lm_data("ru", "bytes", 32, 40, 8, "cyrillic") is a
    assert [k for k, v in D._PREPARED.items() if v is a][0][0] == "lm"
    built = []
    class Cfg:                                    # any setting the data key reads: its own name
        def __getattr__(self, name):
            return name
    cfg = Cfg()
    orig = chats._prepare
    try:
        chats._prepare = lambda c: built.append(c) or {"rows": len(built)}
        first, second = chats.prepare(SimpleNamespace(cfg=cfg)), chats.prepare(SimpleNamespace(cfg=cfg))
    finally:
        chats._prepare = orig
    assert first is second and len(built) == 1
    holders = []
    for path in (REPO_ROOT / "helpers").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Dict) and not node.value.keys
                    and node.target.id in ("_CACHE", "_MEMO", "_PREPARED")):
                holders.append(f"{path.relative_to(REPO_ROOT)}:{node.target.id}")
    assert holders == ["helpers/data.py:_PREPARED"], holders
