import json
import os

import pytest

from helpers.results import (
    SCHEMA_VERSION,
    ResultsError,
    config_hash,
    find_record,
    load_records,
    load_runs,
    run_id,
    save_run,
    validate,
)


def _save(cfg, seed=0, variant="v", metrics=None, root=None):
    return save_run("00_x.ipynb", "exp", variant, cfg, metrics or {"loss": 1.0}, profile="tiny", seed=seed, root=root)


def test_run_id_is_deterministic_and_config_sensitive():
    a = run_id("LoRA r=8", {"lr": 1e-3, "steps": [1, 2]}, 0)
    assert a == run_id("LoRA r=8", {"steps": [1, 2], "lr": 1e-3}, 0)  # key order does not matter
    assert a != run_id("LoRA r=8", {"lr": 2e-3, "steps": [1, 2]}, 0)
    assert a != run_id("LoRA r=8", {"lr": 1e-3, "steps": [1, 2]}, 1)
    assert a.startswith("LoRA-r-8-") and a.endswith("-s0")


def test_same_config_overwrites_different_config_gets_new_file(results_root):
    p1 = _save({"lr": 1}, metrics={"loss": 2.0})
    p2 = _save({"lr": 1}, metrics={"loss": 1.5})
    p3 = _save({"lr": 2})
    assert p1 == p2 and p1 != p3
    assert json.loads(p1.read_text())["metrics"]["loss"] == 1.5
    assert sorted(p.name for p in p1.parent.iterdir()) == sorted([p1.name, p3.name])  # no temp files left


def test_record_schema_and_provenance(results_root):
    rec = json.loads(_save({"a": 1}).read_text())
    validate(rec)
    assert rec["schema_version"] == SCHEMA_VERSION and rec["notebook"] == "00_x"
    prov = rec["provenance"]
    for key in ("commit", "dirty", "versions", "device"):
        assert key in prov
    assert prov["versions"]["torch"].startswith("2.")


def test_hash_collision_is_refused_and_old_record_kept(results_root):
    path = _save({"lr": 1})
    rec = json.loads(path.read_text())
    rec["config"] = {"lr": 999}  # pretend another config landed on this id
    path.write_text(json.dumps(rec))
    with pytest.raises(ResultsError, match="different config"):
        _save({"lr": 1})
    assert json.loads(path.read_text())["config"] == {"lr": 999}


def test_corrupt_files_are_reported_not_fatal(results_root):
    _save({"lr": 1})
    bad = results_root / "00_x" / "broken.json"
    bad.write_text("{not json")
    (results_root / "00_x" / "old.json").write_text(json.dumps({"schema_version": 0}))
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        df = load_runs()
    assert len(df) == 1 and len(df.attrs["bad"]) == 2
    assert df.loc[0, "metrics.loss"] == 1.0


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_folder_raises_clear_error_and_keeps_records(results_root):
    path = _save({"lr": 1})
    os.chmod(path.parent, 0o500)
    try:
        with pytest.raises(ResultsError, match="LAB_RESULTS"):
            _save({"lr": 2})
    finally:
        os.chmod(path.parent, 0o700)
    assert json.loads(path.read_text())["config"] == {"lr": 1}


def test_results_root_that_is_a_file_raises_clear_error(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(ResultsError, match="cannot write results"):
        _save({"lr": 1}, root=blocker)
    assert blocker.read_text() == "not a folder"


def test_nan_and_numpy_values_are_json_safe(results_root):
    import numpy as np

    rec = json.loads(_save({"a": np.int64(3)}, metrics={"loss": float("nan"), "x": np.float32(0.5)}).read_text())
    assert rec["metrics"] == {"loss": None, "x": 0.5} and rec["config"] == {"a": 3}


def test_config_hash_changes_with_nested_values():
    assert config_hash({"train": {"lr": 1}}) != config_hash({"train": {"lr": 2}})


def test_execution_settings_stay_out_of_the_run_id():
    cfg = {"lr": 1e-3, "workers": 2, "train": {"max_steps": 10, "progress": True, "log_every": 5, "run_name": "a",
                                               "wandb": False}}
    same = {"lr": 1e-3, "workers": 1, "train": {"max_steps": 10, "progress": False, "log_every": 50,
                                                "run_name": "b", "wandb": True}}
    assert run_id("v", cfg, 0) == run_id("v", same, 0)
    assert run_id("v", cfg, 0) != run_id("v", {**cfg, "train": {**cfg["train"], "max_steps": 11}}, 0)
    # a new option that is off (None) by default leaves the ids of existing configs unchanged
    assert run_id("v", cfg, 0) == run_id("v", {**cfg, "train": {**cfg["train"], "drop_after_s": None}}, 0)


def test_rerun_with_other_execution_settings_replaces_its_record(results_root):
    p1 = _save({"lr": 1, "workers": 2}, metrics={"loss": 2.0})
    p2 = _save({"lr": 1, "workers": 1}, metrics={"loss": 1.5})
    assert p1 == p2 and json.loads(p2.read_text())["config"]["workers"] == 1


def test_tables_are_rows_and_find_record_finds_exactly_this_config(results_root):
    rows = [{"method": "svd", "reduction": 0.2, "delta": 1.5}, {"method": "whiten", "reduction": 0.2, "delta": 0.1}]
    path = save_run("00_x.ipynb", "exp", "v", {"lr": 1}, {}, profile="tiny", seed=0, tables={"sweep": rows})
    rec = json.loads(path.read_text())
    assert rec["tables"]["sweep"] == rows and rec["config_hash"] in rec["run_id"]
    assert find_record("00_x", "v", {"lr": 1, "workers": 3}, 0)["tables"] == {"sweep": rows}
    assert find_record("00_x", "v", {"lr": 2}, 0) is None and find_record("00_x", "v", {"lr": 1}, 1) is None
    assert [r["run_id"] for r in load_records()] == [rec["run_id"]]
    with pytest.raises(ResultsError, match="list of row objects"):
        save_run("00_x.ipynb", "exp", "v", {"lr": 1}, {}, profile="tiny", seed=0, tables={"bad": [1, 2]})


def test_dirty_tree_provenance_holds_a_diff_hash(monkeypatch):
    from helpers import provenance

    skip = ("--", ".", *provenance.OUTPUTS)
    outputs = {("rev-parse", "HEAD"): "abc\n", ("status", "--porcelain", "--untracked-files=no", *skip): " M x.py\n",
               ("diff", "HEAD", *skip): "--- a\n+++ b\n"}
    monkeypatch.setattr(provenance, "_git", lambda *a: outputs[a])
    state = provenance.git_state()
    assert state["dirty"] is True and state["commit"] == "abc" and len(state["diff_sha1"]) == 12
    outputs[("diff", "HEAD", *skip)] = "--- a\n+++ c\n"
    assert provenance.git_state()["diff_sha1"] != state["diff_sha1"]
    outputs[("status", "--porcelain", "--untracked-files=no", *skip)] = ""
    assert "diff_sha1" not in provenance.git_state()


def _write_many(root, worker, n):
    for i in range(n):
        save_run("00_x.ipynb", "exp", f"w{worker}", {"i": i}, {"loss": float(i)}, profile="tiny", seed=0, root=root)


def test_two_processes_writing_into_one_folder_leave_every_record_valid(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(tmp_path, w, 15)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    recs = load_records(tmp_path)
    assert len(recs) == 30 and not list((tmp_path / "00_x").glob(".*.tmp"))


def test_rewritten_records_do_not_make_the_tree_dirty(tmp_path, monkeypatch):
    """A real repository: a changed record or Analysis.ipynb is an output; a changed helper is code."""
    import subprocess

    from helpers import provenance

    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results" / "00_x").mkdir(parents=True)
    for name in ("results/00_x/r.json", "Analysis.ipynb", "code.py"):
        (tmp_path / name).write_text("1")
    git("add", "-A")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x")
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    (tmp_path / "results/00_x/r.json").write_text("2")
    (tmp_path / "Analysis.ipynb").write_text("2")
    assert provenance.git_state()["dirty"] is False
    (tmp_path / "code.py").write_text("2")
    assert provenance.git_state()["dirty"] is True


def test_a_recorded_section_is_loaded_a_partial_one_recomputed_and_force_recomputes(results_root):
    from helpers.profiles import Run
    from helpers.results import load_or_run

    run = Run(notebook="00_data_and_baselines", profile="tiny", seed=0, device="cpu", cfg={"a": 1})
    calls = []

    def compute(status="ok"):
        calls.append(status)
        return {"metrics": {"n": len(calls)}, "status": status}

    def section(*a, **k):                     # a section returns {(variant, seed): record}: its one record here
        (rec,) = load_or_run(run, *a, **k).values()
        return rec

    first = section("sec", "v", compute, {"a": 1})
    again = section("sec", "v", compute, {"a": 1})
    assert calls == ["ok"] and again["metrics"] == first["metrics"] == {"n": 1}
    assert section("sec", "v", compute, {"a": 1}, force=True)["metrics"] == {"n": 2}
    assert section("sec", "v", compute, {"a": 2})["metrics"] == {"n": 3}      # another config: computed
    cut = section("sec", "w", lambda: compute("partial"), {"a": 1})
    assert cut["status"] == "partial"
    section("sec", "w", lambda: compute("partial"), {"a": 1})                # a partial run is never loaded
    assert calls == ["ok", "ok", "ok", "partial", "partial"]
    # the run holds what its sections wrote or loaded, the newest record of each run id
    assert {r["run_id"]: r["metrics"]["n"] for r in run.records} == {first["run_id"]: 2, cut["run_id"]: 5,
                                                                      run.records[1]["run_id"]: 3}


def test_compression_data_is_loaded_only_when_a_section_needs_it(monkeypatch):
    from helpers.compression import study as S

    loads = []
    monkeypatch.setattr(S, "_prepare", lambda run: loads.append(run) or {"model": "teacher", "stats": {}})
    data = S.prepare("run")
    assert loads == [] and data.get("model") is None                   # nothing loaded yet (.get does not load)
    assert data["model"] == "teacher" and data["stats"] == {} and loads == ["run"]
    with pytest.raises(KeyError):
        data["absent"]
    assert loads == ["run"]                                            # loaded once
