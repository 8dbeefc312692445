"""`make gpu-check` (benchmarks/gpu_check.py) in its CPU mode, and the planning hook that reads its record
(helpers.planning.gpu_check_records, bench, measured_memory)."""
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import families, planning

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cpu_record(tmp_path_factory):
    """The CPU mode's record: the whole script in a subprocess, its record in a temporary LAB_RESULTS."""
    root = tmp_path_factory.mktemp("results")
    env = {**os.environ, "LAB_RESULTS": str(root), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    paths = list((root / "benchmarks").glob("gpu-check-cpu-*.json"))
    assert len(paths) == 1, paths
    return json.loads(paths[0].read_text())


def test_cpu_mode_record(cpu_record):
    rec = cpu_record
    assert rec["experiment"] == "gpu_check" and rec["status"] == "ok" and rec["config"]["cpu_mode"] is True
    prec = rec["tables"]["precision"][0]
    assert prec["precision"] == "fp32" and prec["model_dtype"] == "float32" and prec["sdpa_runs"]
    assert prec["sdpa_math_works"] is True
    steps = rec["tables"]["steps"]
    for nb in families.NOTEBOOKS:
        for profile in ("gpu-small", "full"):
            rows = [r for r in steps if (r["notebook"], r["profile"], r["variant"]) == (nb, profile, "main")]
            assert len(rows) == 1, (nb, profile)
            r = rows[0]
            if nb in ("03_partial_layers", "04_lowrank_compression", "06_sft_dpo"):    # plans of several steps
                assert r["step"] == families.plan(nb, [], profile=profile).peak.name   # the largest, on a stand-in
            assert r["peak_gib"] > 0 and r["plan_gib"] > 0 and r["tokens_per_s"] > 0, r
            assert r["loss_finite"] and math.isfinite(r["loss"]), r
    levers = {r["case"]: r for r in rec["tables"]["levers"]}
    assert set(levers) == {"off", "default", "on"}
    assert levers["on"]["compiled"] and not levers["off"]["compiled"] and levers["on"]["compile_backend"] == "eager"
    assert all(r["tokens_per_s"] > 0 and math.isfinite(r["loss"]) for r in levers.values())
    alone, packed = rec["tables"]["looped"]
    assert alone["steps_per_s"] > 0 and alone["standard_steps_per_s"] > 0
    assert packed["runs"] == 2 and packed["steps_per_s_summed"] > 0
    cases = {r["case"] for r in rec["tables"]["cases"]}
    assert {"05 looped d=20", "05 looped d=20 packed"} <= cases


def test_plans_never_read_a_cpu_record(cpu_record):
    assert planning.gpu_check_records([cpu_record]) == []


def _record(gpu: str, cases: list[dict], steps: list[dict] = (), created: str = "2030-01-01T00:00:00+00:00"):
    return {"experiment": "gpu_check", "status": "ok", "created": created, "config": {"gpu": gpu, "cpu_mode": False},
            "tables": {"cases": list(cases), "steps": list(steps)}}


BENCH = {"experiment": "bench_gpu", "status": "ok", "created": "2029-01-01T00:00:00+00:00",
         "config": {"gpu": "NVIDIA H100 80GB HBM3"},
         "tables": {"cases": [{"case": "pythia-410m train sdpa", "tokens_per_s": 1.0, "flops_per_s": 1.0},
                              {"case": "05 looped d=20", "looped_steps_per_s": 10.0, "standard_steps_per_s": 20.0}]}}


def test_bench_prefers_the_gpu_check_on_the_same_card():
    check = _record("NVIDIA H100 80GB HBM3", [{"case": "05 looped d=20", "looped_steps_per_s": 99.0,
                                               "standard_steps_per_s": 98.0}])
    b = planning.bench([BENCH, check])
    assert b["cases"]["05 looped d=20"]["looped_steps_per_s"] == 99.0
    assert b["cases"]["pythia-410m train sdpa"]["tokens_per_s"] == 1.0          # not measured by the check: kept
    t4 = _record("Tesla T4", [{"case": "05 looped d=20", "looped_steps_per_s": 5.0, "standard_steps_per_s": 5.0}])
    assert planning.bench([BENCH, t4])["cases"]["05 looped d=20"]["looped_steps_per_s"] == 10.0   # another card
    alone = planning.bench([t4])                                                # no bench_gpu record: the check
    assert alone["gpu"] == "Tesla T4" and alone["cases"]["05 looped d=20"]["looped_steps_per_s"] == 5.0


def test_plan_on_a_card_reads_its_measured_peak():
    p = families.plan("07_pretraining", [], profile="gpu-small")
    m = p.peak
    t4 = planning.CARDS["t4"]
    step = {"notebook": p.notebook, "profile": "gpu-small", "variant": "main", "step": m.name, "setting": m.setting,
            "peak_gib": 9.0}
    shown = p.on(t4)
    assert shown.peak.total == m.total                                          # no record: as planned
    got = planning.measured_memory(p, t4, [_record("Tesla T4", [], [step])])
    assert got[0].total == pytest.approx(9.0 * planning.GiB) and "gpu-check" in got[0].setting
    other = dataclasses.replace(m, setting=m.setting + ", another batch")        # another setting: not this step
    assert planning.measured_memory(dataclasses.replace(p, memory=[other]), t4,
                                    [_record("Tesla T4", [], [step])])[0].total == other.total
    assert planning.measured_memory(p, planning.CARDS["h100"], [_record("Tesla T4", [], [step])])[0] is m


def test_on_reads_the_record_from_results(results_root):
    from helpers.results import save_run

    p = families.plan("07_pretraining", [], profile="gpu-small")
    m = p.peak
    step = {"notebook": p.notebook, "profile": "gpu-small", "variant": "main", "step": m.name, "setting": m.setting,
            "peak_gib": 9.0}
    save_run("benchmarks", "gpu_check", "gpu-check-t4", {"gpu": "Tesla T4", "cpu_mode": False}, {}, profile="gpu",
             seed=0, tables={"steps": [step], "cases": []})
    assert p.on(planning.CARDS["t4"]).peak.total == pytest.approx(9.0 * planning.GiB)
