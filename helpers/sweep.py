"""The sweep runner: many runs of one study, one record each, skipping what is already recorded.

A sweep is a set of points. Each point names its record (experiment, variant), the arguments of the job function,
and the config its record is keyed by. `run_points` trains every (point, seed) whose record does not exist yet
(status ok, same result-determining config), spreads CPU jobs over worker processes (helpers.parallel), writes one
record per job as soon as that job is done, and returns the records, loaded or new, in point order.

Declaring a grid: `grid({"method": "grid", "parameters": {"train.lr": {"values": [1e-3, 3e-3]}}})` reads the same
dictionary a W&B sweep is declared with (`wandb sweep`), and returns {point name: dotted overrides}; `sweep()` runs
such a {name: overrides} mapping over a notebook's resolved settings (one-factor-at-a-time searches are plain
mappings too).

    records = sweep(run, "regime", points, fn)     # fn(cfg, seed, device) -> {"metrics", "tables", "curves", ...}

A notebook's sweeps are also named objects (`Sweep`: points, job function, seeds), built by its study's
`sweeps(run)`: the notebook's sections run them here, and `python -m helpers point` runs one point of one of them
(helpers.points), which is how W&B agents on several GPUs or machines share a sweep.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from .parallel import map_processes
from .profiles import apply_overrides
from .results import find_record, save_result


@dataclass
class Point:
    experiment: str        # the record's experiment
    variant: str           # the record's variant (the run id's prefix)
    args: tuple            # fn(*args, seed, device)
    config: dict           # what the record is keyed by (its result-determining part gives the run id)
    seeds: tuple = field(default=())   # empty: the runner's seeds
    notebook: str | None = None        # the record's home notebook when it is not the running one (a shared run)
    overrides: dict = field(default_factory=dict)   # the dotted overrides that made it, for a grid's points


@dataclass
class Sweep:
    """One named sweep of a notebook as its section runs it: the points, fn(*point.args, seed, device), the seeds of
    points that name none, and whether its runs are wall-clock budgets (then one run per device at a time: a
    neighbour on the same GPU would change what a budget buys; per_device is then 1)."""
    experiment: str
    points: list[Point]
    fn: Callable
    seeds: tuple | None = None
    desc: str | None = None
    budgeted: bool = False
    per_device: int = 1          # runs side by side on one GPU (small models: helpers.parallel)

    def seeds_of(self, p: Point, default: int = 0) -> tuple:
        return point_seeds(p, self.seeds, default)


def point_seeds(p: Point, seeds: tuple | None, default: int) -> tuple:
    """The seeds a point runs: its own, else the sweep's, else the run's one seed."""
    return p.seeds or seeds or (default,)


class SweepError(ValueError):
    pass


STATS: list[dict] = []   # one entry per run_points call of this process: runs, wall time, the runner's overhead


def _timed(fn, *args):
    """Run fn in the worker; return (start, end, result) as wall-clock timestamps (one clock for all processes of
    the machine), from which the runner's own overhead is measured. The result's provenance gets the device and the
    torch thread count of the process that computed it, read there when the job ends (the record is written by the
    parent, whose own thread count says nothing about the job's)."""
    import torch

    from .provenance import device_name

    start = time.time()
    out = fn(*args)
    end = time.time()
    if isinstance(out, dict):
        out["provenance"] = {**(out.get("provenance") or {}), "device": device_name(args[-1]),
                             "torch_threads": torch.get_num_threads()}
    return start, end, out


def grid(declaration: dict) -> dict[str, dict]:
    """A W&B-style sweep declaration {"method": "grid", "parameters": {key: {"values": [...]} or {"value": v}}}
    -> {"key=v,key2=w": {key: v, key2: w}} for every combination, in declaration order."""
    method = declaration.get("method", "grid")
    if method != "grid":
        raise SweepError(f"sweep method {method!r} is not run here (no sweep server); allowed: 'grid'")
    params = declaration.get("parameters") or {}
    if not params:
        raise SweepError("a sweep declaration needs 'parameters' with at least one key")
    keys, values = [], []
    for key, spec in params.items():
        if not isinstance(spec, dict) or not ("values" in spec or "value" in spec):
            raise SweepError(f"parameter {key!r}: give {{'values': [...]}} or {{'value': v}}, got {spec!r}")
        vals = spec["values"] if "values" in spec else [spec["value"]]
        if not vals:
            raise SweepError(f"parameter {key!r} has no values")
        keys.append(key)
        values.append(list(vals))
    return {",".join(f"{k}={v}" for k, v in zip(keys, combo)): dict(zip(keys, combo))
            for combo in itertools.product(*values)}


def run_points(run, points: list[Point], fn, seeds: tuple | None = None, workers: int = 1, force=False,
               desc: str | None = "runs", per_device: int = 1) -> dict:
    """{(variant, seed): record} for every point and seed (run.seed when no seeds are given): loaded when a record
    of the same config exists (unless force), else fn(*point.args, seed, device) is run and its record written.
    `force` is a bool or a function (point, seed) -> bool (e.g. retrain a recorded run whose saved model is gone).
    A job's result may carry "status" ("partial": cut by a safety time budget); the default is "ok". On CUDA the
    jobs go to every visible GPU, per_device at a time on each (helpers.parallel)."""
    def seeds_of(p: Point) -> tuple:
        return point_seeds(p, seeds, run.seed)

    keys = [(p.variant, s) for p in points for s in seeds_of(p)]
    if len(set(keys)) != len(keys):
        raise SweepError(f"two points share a variant name and seed: {sorted({k for k in keys if keys.count(k) > 1})}")
    forced = force if callable(force) else (lambda p, seed: force)
    t_start = time.time()
    out, jobs, where = {}, {}, {}
    for p in points:
        for seed in seeds_of(p):
            key = (p.variant, seed)
            home = p.notebook or run.notebook
            rec = None if forced(p, seed) else find_record(home, p.variant, {"profile": run.profile, **p.config}, seed)
            if rec is not None:
                out[key] = rec
                run.collect(rec)
            else:
                jobs[key] = (fn, *p.args, seed, run.device)
                where[key] = p
    if out:
        print(f"{desc or 'sweep'}: {len(out)} run(s) already recorded, loaded; {len(jobs)} to run", flush=True)
    t_submit = time.time()
    lookup_s, spans, costs = t_submit - t_start, [], []

    def record(key, timed):          # written as soon as the job is done: a later failure loses nothing finished
        received = time.time()
        start, end, res = timed
        p = where[key]
        home = dataclasses.replace(run, notebook=p.notebook or run.notebook, seed=key[1])
        rec = save_result(home, p.experiment, p.variant, res, config=p.config, status=res.pop("status", "ok"))
        spans.append((start, end))
        costs.append((received - end) + (time.time() - received))     # result transfer + record write
        return rec

    out.update(map_processes(_timed, jobs, workers, desc, run.device, on_done=record, per_device=per_device))
    if jobs:
        # the runner's own cost: looking records up, starting the workers (until the first job starts), sending
        # results back and writing records; the jobs themselves (training, evaluation) are not overhead
        startup = max(0.0, min(s for s, _ in spans) - t_submit)
        overhead = lookup_s + startup + sum(costs)
        STATS.append({"desc": desc, "runs": len(jobs), "loaded": len(out) - len(jobs),
                      "wall_s": time.time() - t_start, "job_s": sum(e - s for s, e in spans),
                      "lookup_s": lookup_s, "startup_s": startup, "transfer_and_write_s": sum(costs),
                      "overhead_per_run_s": overhead / len(jobs)})
    return {(p.variant, s): out[p.variant, s] for p in points for s in seeds_of(p)}


def overrides_sweep(run, experiment: str, overrides: dict[str, dict], fn, seeds: tuple | None = None,
                    desc: str | None = None, key=dataclasses.asdict, budgeted: bool = False) -> Sweep:
    """The Sweep of {name: dotted overrides of run.cfg}: each point runs fn(cfg_with_overrides, seed, device) and is
    recorded as (experiment, variant = name) keyed by key(overridden config) (default: the whole config). An
    override naming a setting the config does not have raises before anything runs."""
    points = []
    for name, over in overrides.items():
        cfg = apply_overrides(run.cfg, over, f"sweep point '{name}'")
        points.append(Point(experiment, name, (cfg,), key(cfg), overrides=dict(over)))
    return Sweep(experiment, points, fn, seeds, desc or experiment, budgeted)


def run_sweep(run, s: Sweep, workers: int = 1, force=False) -> dict:
    """run_points over a Sweep: {(variant, seed): record}."""
    return run_points(run, s.points, s.fn, s.seeds, workers, force, s.desc or s.experiment,
                      1 if s.budgeted else s.per_device)


def sweep(run, experiment: str, overrides: dict[str, dict], fn, seeds: tuple | None = None, workers: int = 1,
          force: bool = False, desc: str | None = None, key=dataclasses.asdict) -> dict:
    """run_sweep of overrides_sweep(...): {(name, seed): record}."""
    return run_sweep(run, overrides_sweep(run, experiment, overrides, fn, seeds, desc, key), workers, force)


# ------------------------------------------------------------------------------------------------ regime scripts
def regime_cli(doc: str, make_run, grid, search, table, width: int = 220) -> dict:
    """The command line every regime search script shares (benchmarks/*_regime.py): `--only NAME ...` runs those
    grid points (an unknown name is refused, naming the allowed ones), `--force` retrains points already recorded
    (otherwise they are loaded). make_run() gives the Run, grid(run) its {name: overrides}, search(run, points,
    force=...) the {name: record} it prints with table(records). Returns that {name: record}."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="names of grid points to run (default: all)")
    ap.add_argument("--force", action="store_true", help="retrain points that already have a record")
    args = ap.parse_args()
    run = make_run()
    points = grid(run)
    if args.only:
        unknown = sorted(set(args.only) - set(points))
        if unknown:
            raise SystemExit(f"unknown grid point(s) {unknown}; allowed: {sorted(points)}")
        points = {n: points[n] for n in args.only}
    records = search(run, points, force=args.force)
    with pd.option_context("display.width", width, "display.max_columns", 20, "display.precision", 3):
        print(table(list(records.values())))
    return records
