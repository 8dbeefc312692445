"""Engines that run a notebook's sweep points: a W&B agent (the point logs into the agent's run, offline here), and
engines beyond W&B (`python -m helpers points --list`, one command a line, through `xargs -P`); and `make run` on a
GPU profile, which fetches no offline assets."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import families as F
from helpers import points
from helpers.paths import REPO_ROOT
from helpers.results import load_records
from helpers.sweep import run_points

BIN = Path(sys.executable).parent


def _agent_command(doc: dict, values: dict) -> list[str]:
    """What `wandb agent` runs for one grid point: ${env} (/usr/bin/env) dropped, ${interpreter} the interpreter,
    ${args} as --KEY=VALUE."""
    cmd = [sys.executable if c == "${interpreter}" else c for c in doc["command"] if c != "${env}"]
    return cmd[:-1] + [f"--{k}={v}" for k, v in values.items()]


def _wandb_records(path: Path) -> list:
    """The records of an offline run's .wandb file (W&B's leveldb-style log: a 7-byte header, 32 KiB blocks of
    chunks, each with a 7-byte header: crc32, length, type 1 full / 2 first / 3 middle / 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:              # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def _fold(items, into: dict) -> dict:
    for it in items:
        into[it.key or "/".join(it.nested_key)] = json.loads(it.value_json)
    return into


def test_a_point_under_a_wandb_agent_logs_its_run_from_start_to_summary_and_record_file(tmp_path):
    """As `wandb agent` runs it (WANDB_SWEEP_ID set, WANDB_MODE unset by the agent: offline here, no network), the
    point command from the sweep file starts its W&B run before it trains, ends it with the record's metrics as the
    summary (the sweep's metric, eval_loss, among them) and saves the record's JSON file with it."""
    path = next(p for p in points.export("tiny", tmp_path / "sweeps", ["07"]) if p.stem.endswith("-grid"))
    doc = yaml.safe_load(path.read_text())
    assert doc["command"][:2] == ["${env}", "${interpreter}"] and doc["metric"]["name"] == "eval_loss"
    env = {**os.environ, "WANDB_SWEEP_ID": "abc123xy", "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path),
           "WANDB_SILENT": "true", "LAB_RESULTS": str(tmp_path / "results")}
    env.pop("LAB_WANDB", None)
    cmd = _agent_command(doc, {"lm.train.batch_size": 4, "lm.train.grad_accum": 1, "seed": 0})
    r = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    [rec_file] = (tmp_path / "results" / "07_pretraining").glob("*.json")
    rec = json.loads(rec_file.read_text())
    [run_dir] = (tmp_path / "wandb").glob("offline-run-*")
    records = _wandb_records(next(run_dir.glob("run-*.wandb")))
    kinds = [r.WhichOneof("record_type") for r in records]
    run = records[kinds.index("run")].run
    assert run.sweep_id == "abc123xy"
    summary = _fold((s for r in records if r.WhichOneof("record_type") == "summary" for s in r.summary.update),
                    _fold(run.summary.update, {}))
    numeric = {k: v for k, v in rec["metrics"].items() if isinstance(v, (int, float))}
    assert "eval_loss" in numeric and {k: summary.get(k) for k in numeric} == numeric
    config = _fold((c for r in records if r.WhichOneof("record_type") == "config" for c in r.config.update),
                   _fold(run.config.update, {}))
    assert config["variant"] == rec["variant"] == "4 x 1" and config["seed"] == 0 and config["sweep"] == "grid"
    # the run started before the point trained (a long point shows as running), not once its record existed: it
    # holds what the point printed while training (the sweep runner's progress bar)
    printed = "".join(r.output_raw.line for r in records if r.WhichOneof("record_type") == "output_raw")
    assert "07_pretraining grid: 4 x 1" in printed, printed[-2000:]
    saved = [f.path for r in records if r.WhichOneof("record_type") == "files" for f in r.files.files]
    assert rec_file.name in saved
    assert json.loads((run_dir / "files" / rec_file.name).read_text()) == rec
    assert not (run_dir / "files" / rec_file.name).is_symlink()


def test_wandb_stays_off_for_an_ordinary_run_and_follows_the_agent_under_one(monkeypatch):
    for sweep_id, mode in ((None, "disabled"), ("abc123xy", None)):
        monkeypatch.delenv("WANDB_MODE", raising=False)
        if sweep_id:
            monkeypatch.setenv("WANDB_SWEEP_ID", sweep_id)
        else:
            monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
        F.resolve("05_looped_transformer", "tiny", quiet=True)
        assert os.environ.get("WANDB_MODE") == mode


XARGS_LINES = 2      # of 02's 7 listed points: the first (a run 02 shares with 01, recorded under 01) and one more


def test_a_point_list_run_by_two_xargs_workers_records_every_point_the_notebook_then_loads(tmp_path):
    """Notebook 02 (the fewest points of the tiny profile's notebooks with sweeps: 7, each listed once): its point
    list, every line of the same form; two of its lines through `xargs -P 2`, as a Slurm array or a shell would run
    them, two processes at once; the notebook's own sweeps then load each of those records and train nothing. (All 7
    lines, each a process importing torch and the helpers, took ~100 s of the suite's 15-minute budget; the lines
    differ only in --variant, and the point command itself is test_points'.)"""
    env = {**os.environ, "LAB_RESULTS": str(tmp_path / "results"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    listed = subprocess.run([sys.executable, "-m", "helpers", "points", "--list", "--profile", "tiny", "--notebook",
                             "02"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert listed.returncode == 0, listed.stderr[-2000:]
    lines = listed.stdout.splitlines()
    assert len(lines) == len(set(lines)) == 7
    assert all(ln.startswith("python -m helpers point --notebook 02_mlp_lowrank --sweep ") for ln in lines)
    ran = lines[:XARGS_LINES]
    r = subprocess.run(["xargs", "-d", "\n", "-P", "2", "-I{}", "bash", "-c", "{}"], input="\n".join(ran) + "\n",
                       cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    root = tmp_path / "results"
    assert len(load_records(root)) == len(ran)            # one record per point run (the first is 01's shared run)
    variants = {ln.split(" --variant ")[1].split()[0] for ln in ran}
    os.environ["LAB_RESULTS"] = str(root)
    try:
        run, sweeps = points.notebook_sweeps("02_mlp_lowrank", "tiny")

        def boom(*args):
            raise AssertionError("a listed point was trained again")

        # those variants as the notebook runs them (its seeds, not the lines'), each found, none trained
        mine = [p for s in sweeps.values() for p in s.points if p.variant in variants]
        found = run_points(run, mine, boom, None, 1, False, None)
    finally:
        del os.environ["LAB_RESULTS"]
    assert len(mine) == len(found) == len(ran) and all(rec["status"] == "ok" for rec in found.values())


def _make_run(profile: str, **env) -> str:
    r = subprocess.run(["make", "-n", "run", f"PROFILE={profile}", *[f"{k}={v}" for k, v in env.items()]],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "-m helpers notebooks --profile " + profile in r.stdout
    return r.stdout


@pytest.mark.parametrize("profile, assets", [("full", False), ("gpu-small", False), ("local", True), ("tiny", True)])
def test_make_run_fetches_offline_assets_for_cpu_profiles_only(profile, assets):
    assert ("-m helpers assets" in _make_run(profile)) == assets


@pytest.mark.parametrize("cuda, assets", [("True", False), ("False", True)])
def test_make_run_auto_fetches_offline_assets_only_without_a_cuda_gpu(tmp_path, cuda, assets):
    """PROFILE=auto asks the venv's torch whether it sees a CUDA GPU (a fake venv here answers)."""
    fake = tmp_path / "venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\necho {cuda}\n")
    fake.chmod(0o755)
    assert ("-m helpers assets" in _make_run("auto", VENV=tmp_path / "venv")) == assets
