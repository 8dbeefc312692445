"""One sweep point as one command, the W&B sweep files, runs on several (faked) GPUs and their planned wall times."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from helpers import families as F
from helpers import planning as P
from helpers import points
from helpers.__main__ import main as cli
from helpers.looped import study as L
from helpers.parallel import gpu_slots, map_processes, worker_device
from helpers.paths import REPO_ROOT
from helpers.pretraining import study as PS
from helpers.results import find_record, validate
from helpers.sweep import SweepError, regime_cli


def _resolve(nb):
    return F.resolve(nb, "tiny", quiet=True)


def test_a_point_is_the_notebooks_own_run_and_the_notebook_loads_it(results_root, capsys):
    rc = cli(["point", "--notebook", "07", "--sweep", "grid", "--set", "lm.train.batch_size=4",
              "--set", "lm.train.grad_accum=2", "--seed", "1", "--profile", "tiny"])
    assert rc == 0
    files = list((results_root / "07_pretraining").glob("*.json"))
    assert [f.name for f in files] == ["4-x-2-" + files[0].name.split("-")[3] + "-s1.json"]
    point_rec = json.loads(files[0].read_text())
    # the notebook's section (every cell and seed) loads that point instead of training it again
    grid = PS.equal_time_grid(_resolve("07_pretraining"))
    assert grid["4 x 2", 1] == point_rec
    capsys.readouterr()
    assert cli(["point", "--notebook", "07_pretraining", "--sweep", "grid", "--lm.train.batch_size=4",
                "--lm.train.grad_accum", "2", "--seed=1", "--profile", "tiny"]) == 0    # as a W&B agent calls it
    assert "already recorded, loaded" in capsys.readouterr().out
    assert json.loads(files[0].read_text()) == point_rec                            # not retrained


@pytest.mark.parametrize("args, message", [
    (["--sweep", "nope", "--variant", "x"], "has no sweep 'nope' in the tiny profile; allowed: headline, options"),
    (["--sweep", "headline", "--variant", "x"], "has no point x; allowed: looped-linear_regression; standard-"),
    (["--sweep", "headline", "--variant", "looped-linear_regression", "--seed", "7"], "runs seeds [0, 1], not 7"),
    (["--sweep", "headline"], "name the point by --variant or by its --set overrides"),
    (["--sweep", "headline", "--variant", "x", "stray"], "give overrides as --set KEY=VALUE or --KEY=VALUE"),
])
def test_a_point_the_notebook_would_not_run_is_refused_naming_what_is_allowed(results_root, capsys, args, message):
    assert cli(["point", "--notebook", "05", "--profile", "tiny", *args]) == 2
    assert message in capsys.readouterr().err
    assert not results_root.exists()


def test_overrides_that_name_several_points_are_refused():
    run, sweeps = points.notebook_sweeps("07_pretraining", "tiny")
    with pytest.raises(SweepError, match=r"names 2 points of sweep 'grid' \(4 x 1; 4 x 2\)"):
        points.choose(sweeps["grid"], sets={"lm.train.batch_size": "4"})
    with pytest.raises(SweepError, match="unknown notebook '9'"):
        points.notebook_name("9")
    with pytest.raises(SweepError, match="04_lowrank_compression has no sweeps; notebooks with sweeps: 01_attention"):
        points.notebook_sweeps("04_lowrank_compression", "tiny")


def test_every_sweep_file_parses_and_is_a_grid_over_the_notebooks_points_and_seeds(tmp_path):
    paths = points.export("full", tmp_path)
    assert sorted(p.name for p in paths) == sorted(p.name for p in (REPO_ROOT / "sweeps" / "full").glob("*.yaml"))
    names = {p.stem.split("-")[0] for p in paths}
    assert names == {"01_attention_lowrank", "02_mlp_lowrank", "03_partial_layers", "05_looped_transformer",
                     "07_pretraining"}
    for path in paths:
        doc = yaml.safe_load(path.read_text())
        nb, name = path.stem.split("-")
        run, sweeps = points.notebook_sweeps(nb, "full", check_hub=False)
        s = sweeps[name]
        assert doc["method"] == "grid" and doc["command"][-1] == "${args}" and "--profile" in doc["command"]
        grid = 1
        for spec in doc["parameters"].values():
            grid *= len(spec["values"])
        assert grid == len(s.points) * len(s.seeds_of(s.points[0]))
        # the committed files are these (regenerate: python -m helpers sweeps --profile full)
        assert (REPO_ROOT / "sweeps" / "full" / path.name).read_text() == path.read_text()
    grid07 = yaml.safe_load((tmp_path / "07_pretraining-grid.yaml").read_text())
    assert set(grid07["parameters"]) == {"lm.train.batch_size", "lm.train.grad_accum", "seed"}   # as the seed's grid


def _agent_command(doc: dict, values: dict) -> list[str]:
    """What `wandb agent` runs for one grid point: ${env} dropped, ${interpreter} the interpreter, ${args} as
    --KEY=VALUE."""
    cmd = [sys.executable if c == "${interpreter}" else c for c in doc["command"] if c != "${env}"]
    return cmd[:-1] + [f"--{k}={v}" for k, v in values.items()]


def test_the_exported_command_runs_one_point_and_two_agents_writing_at_once_give_valid_records(tmp_path):
    paths = points.export("tiny", tmp_path / "sweeps", ["05"])
    doc = yaml.safe_load(next(p for p in paths if p.stem.endswith("headline")).read_text())
    variants, seeds = doc["parameters"]["variant"]["values"], doc["parameters"]["seed"]["values"]
    env = {**os.environ, "LAB_RESULTS": str(tmp_path / "results")}
    # two agents, each with its share of the grid, both also running the same point at the same time
    shares = [[(variants[0], seeds[0]), (variants[0], seeds[1])], [(variants[0], seeds[0]), (variants[1], seeds[0])]]
    scripts = [" && ".join(" ".join(f"'{c}'" for c in _agent_command(doc, {"variant": v, "seed": s}))
                           for v, s in share) for share in shares]
    procs = [subprocess.Popen(["bash", "-c", sc], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for sc in scripts]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    files = sorted((tmp_path / "results" / "05_looped_transformer").iterdir())
    assert len(files) == 3 and all(f.suffix == ".json" for f in files)         # no temp file left behind
    for f in files:
        validate(json.loads(f.read_text()))
    # the notebook's section finds every point the agents recorded
    os.environ["LAB_RESULTS"] = str(tmp_path / "results")
    try:
        run = _resolve("05_looped_transformer")
        s = L.headline_sweep(run.cfg)
        found = [find_record(run.notebook, p.variant, {"profile": "tiny", **p.config}, seed)
                 for p in s.points for seed in p.seeds]
    finally:
        del os.environ["LAB_RESULTS"]
    assert sum(r is not None for r in found) == 3


def test_workers_are_pinned_round_robin_to_faked_gpus_several_per_gpu():
    """Six workers, two per faked GPU, each job in a fresh process of its own (the device goes back to the pool when
    a job ends, to the worker replacing it): 4 jobs on each GPU, never more than two there at a time."""
    out = map_processes(worker_device, {i: (1.5,) for i in range(12)}, device="cuda", per_device=2, n_devices=3)
    assert gpu_slots(3, 2) == [0, 1, 2, 0, 1, 2]
    pids = [pid for pid, *_ in out.values()]
    assert len(set(pids)) == 12 and os.getpid() not in pids
    per_gpu = [[(start, end) for _, index, start, end in out.values() if index == g] for g in range(3)]
    assert [len(jobs) for jobs in per_gpu] == [4, 4, 4]
    for jobs in per_gpu:                     # at no job's start are two others of its GPU running
        assert all(sum(s <= t < e for s, e in jobs) <= 2 for t, _ in jobs)


def test_spread_wall_time_rounds_runs_over_slots_and_never_packs_a_budget():
    plan = P.NotebookPlan("x", [], [("budgets", 4 * 3600.0), ("steps", 8 * 3600.0)], "NVIDIA H100",
                          fixed=("budgets",), runs={"budgets": 4, "steps": 8}, per_device=4, pack_speedup=2.0)
    assert plan.wall_s(1, packed=False) == plan.estimate_s == 12 * 3600
    assert plan.wall_s(1) == 4 * 3600 + 2 * 3600 * 2            # steps: 2 rounds of 4, each twice a run's time
    assert plan.wall_s(8, packed=False) == 3600 + 3600           # one round of each on 8 GPUs
    assert plan.wall_s(3, packed=False) == 2 * 3600 + 3 * 3600


def test_the_full_looped_notebook_is_planned_under_four_hours_on_one_gpu_packed():
    plan = F.plan("05_looped_transformer", profile="full")
    assert plan.estimate_s > 15 * 3600 and plan.per_device == L.PROFILES["full"].per_gpu > 1
    assert plan.wall_s(1) <= 4 * 3600 and "8 runs per GPU" in plan.text()
    assert P.spread_markdown(F.all_plans()) in (REPO_ROOT / "docs" / "several-gpus.md").read_text()


def test_regime_scripts_share_one_command_line_that_refuses_unknown_points(monkeypatch, capsys):
    """helpers.sweep.regime_cli (every benchmarks/*_regime.py): --only runs just the named points, --force reaches
    the search, an unknown name stops before any run and names the allowed ones."""
    asked = []

    def search(run, points, force=False):
        asked.append((run, sorted(points), force))
        return {n: {"variant": n} for n in points}

    grid = lambda run: {"a": {}, "b": {"x": 1}}                     # noqa: E731
    monkeypatch.setattr(sys, "argv", ["prog", "--only", "b", "--force"])
    out = regime_cli("doc", lambda: "run", grid, search, lambda recs: f"table of {len(recs)}")
    assert asked == [("run", ["b"], True)] and set(out) == {"b"} and "table of 1" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["prog", "--only", "c"])
    with pytest.raises(SystemExit, match=r"unknown grid point\(s\) \['c'\]; allowed: \['a', 'b'\]"):
        regime_cli("doc", lambda: "run", grid, search, len)
    assert len(asked) == 1
