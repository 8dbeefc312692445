"""One sweep point as one command, and a notebook's sweeps as W&B sweep files: how several GPUs or machines share a
notebook's sweeps.

    python -m helpers point --notebook 07 --sweep grid --set lm.train.batch_size=8 --set lm.train.grad_accum=1 --seed 0
    python -m helpers point --notebook 05 --sweep headline --variant looped-linear_regression --seed 1
    python -m helpers sweeps --profile full                   # sweeps/full/<notebook>-<sweep>.yaml, one per sweep
    wandb sweep sweeps/full/07_pretraining-grid.yaml          # then on every GPU: CUDA_VISIBLE_DEVICES=i wandb agent ID

A point trains exactly what the notebook's section would: the notebook's parameters cell (its OVERRIDES, SEED and,
for 01-03, EXPERIMENTS) resolved in the profile, the study's `sweeps(run, params)` (the Sweep objects the sections
run), the one point chosen, through the sweep runner: the same record under the same run id, and a point already
recorded is loaded, not trained. Several agents may write into one results folder (ids are deterministic, every
record is written atomically: helpers.results), and the notebook, run afterwards, loads what they recorded.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import shlex
import warnings
from pathlib import Path

import yaml

from . import families
from .paths import REPO_ROOT, results_dir
from .results import run_id
from .sweep import Point, Sweep, SweepError, run_points
from .tracking import log_record, start_run

SWEEPS_DIR = REPO_ROOT / "sweeps"
RESERVED = {"seed", "variant"}          # W&B parameters the point command reads itself


def notebook_name(name: str) -> str:
    """'07' or '07_pretraining' -> '07_pretraining'."""
    hits = [nb for nb in families.NOTEBOOKS if nb == name or nb.split("_")[0] == name]
    if len(hits) != 1:
        raise SweepError(f"unknown notebook {name!r}; allowed: {', '.join(families.NOTEBOOKS)} (or their numbers)")
    return hits[0]


def parameters(notebook: str) -> dict:
    """The literals of a notebook's `parameters` cell ({"PROFILE": None, "SEED": 0, "OVERRIDES": {}, ...})."""
    nb = json.loads((REPO_ROOT / "notebooks" / f"{notebook}.ipynb").read_text())
    cell = next((c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise SweepError(f"{notebook} has no cell tagged 'parameters'")
    out = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def notebook_sweeps(notebook: str, profile: str | None = None, check_hub: bool = True):
    """(run, {sweep name: Sweep}) of a notebook as its parameters cell runs it in `profile` (default: the cell's)."""
    study = families.family(notebook).study_module()
    if not hasattr(study, "sweeps"):
        raise SweepError(f"{notebook} has no sweeps; notebooks with sweeps: {', '.join(with_sweeps())}")
    params = parameters(notebook)
    run = families.resolve(notebook, profile or params.get("PROFILE"), seed=params.get("SEED", 0),
                           overrides=params.get("OVERRIDES") or None, check_hub=check_hub, quiet=True)
    return run, study.sweeps(run, params)


def with_sweeps() -> list[str]:
    return [nb for f in families.FAMILIES if hasattr(f.study_module(), "sweeps") for nb in f.notebooks]


def _matches(p: Point, sets: dict[str, str]) -> bool:
    """Does the point have these overrides (values as typed on a command line: '8', '0.001', 'cosine')? The keys
    every point of a sweep shares may be left out (a W&B file lists only the keys that vary)."""
    return set(sets) <= set(p.overrides) and all(
        str(p.overrides[k]) == v or p.overrides[k] == yaml.safe_load(v) for k, v in sets.items())


def choose(s: Sweep, variant: str | None = None, sets: dict[str, str] | None = None) -> Point:
    """The sweep's point named `variant`, or made by the dotted overrides `sets`."""
    if (variant is None) == (not sets):
        raise SweepError("name the point by --variant or by its --set overrides (one of the two)")
    hits = [p for p in s.points if (p.variant == variant if variant is not None else _matches(p, sets))]
    if not hits:
        allowed = ("; ".join(p.variant for p in s.points) if variant is not None else
                   "; ".join(",".join(f"{k}={v}" for k, v in p.overrides.items()) for p in s.points)
                   or "none (name its points by --variant)")
        raise SweepError(f"sweep {s.experiment!r} has no point {variant if variant is not None else sets}; "
                         f"allowed: {allowed}")
    if len(hits) > 1:
        raise SweepError(f"{sets} names {len(hits)} points of sweep {s.experiment!r} "
                         f"({'; '.join(p.variant for p in hits)}): give more of their overrides")
    return hits[0]


def run_point(notebook: str, sweep: str, variant: str | None = None, sets: dict[str, str] | None = None,
              seed: int | None = None, profile: str | None = None, force: bool = False) -> dict:
    """Train (or load) one point of one of a notebook's sweeps for one seed; returns its record."""
    notebook = notebook_name(notebook)
    run, sweeps = notebook_sweeps(notebook, profile)
    if sweep not in sweeps:
        raise SweepError(f"{notebook} has no sweep {sweep!r} in the {run.profile} profile; "
                         f"allowed: {', '.join(sweeps)}")
    s = sweeps[sweep]
    p = choose(s, variant, sets)
    seeds = s.seeds_of(p, run.seed)
    if seed is None and len(seeds) == 1:
        seed = seeds[0]
    if seed not in seeds:
        raise SweepError(f"point {p.variant!r} of {notebook}'s sweep {sweep!r} runs seeds {list(seeds)}, not {seed}")
    one = dataclasses.replace(p, seeds=(seed,))
    # under `wandb agent` (WANDB_SWEEP_ID): the agent's run starts now, so that a point of hours shows as running,
    # and ends with the record's metrics as its summary (the sweep's table and metric) and the record file saved
    # with it; elsewhere the record is all (W&B stays off: helpers.profiles)
    wb = start_run({"notebook": notebook, "sweep": sweep, "variant": p.variant, "seed": seed,
                    "profile": run.profile}) if os.environ.get("WANDB_SWEEP_ID") else None
    try:
        rec = run_points(run, [one], s.fn, None, 1, force, f"{notebook} {sweep}: {p.variant}")[p.variant, seed]
        if wb is not None:
            missing = [m for m in metric_names(notebook) if not isinstance(rec["metrics"].get(m), (int, float))]
            if missing:
                warnings.warn(f"{notebook}'s record {rec['run_id']} lacks the sweep's metric(s) {missing}",
                              stacklevel=2)
            log_record(rec, run=wb, files=[record_path(rec)])
    except BaseException:
        if wb is not None:
            wb.finish(exit_code=1)
        raise
    if wb is not None:
        wb.finish()
    return rec


def metric_names(notebook: str) -> list[str]:
    """The metric a notebook's W&B sweep files declare (METRICS), as a list: [] where they declare none."""
    metric = METRICS.get(families.family(notebook).package)
    return [metric["name"]] if metric else []


def record_path(rec: dict) -> Path:
    """Where a record is stored (helpers.results.write_record)."""
    return results_dir() / rec["notebook"] / f"{rec['run_id']}.json"


# ------------------------------------------------------------------------------------------------ point lists
def point_commands(profile: str, notebooks=None, python: str = "python") -> list[str]:
    """One point command per line for every point of every sweep of the notebooks with sweeps (or `notebooks`) in
    `profile`, each seed: the work list of an engine other than W&B (a Slurm array, `xargs -P`; docs/several-gpus.md).
    A run two sweeps share (the same record) is listed once."""
    lines, seen = [], set()
    for nb in [notebook_name(n) for n in notebooks] if notebooks else with_sweeps():
        run, sweeps = notebook_sweeps(nb, profile, check_hub=False)
        for name, s in sweeps.items():
            for p in s.points:
                for seed in s.seeds_of(p, run.seed):
                    rid = (p.notebook or nb, run_id(p.variant, {"profile": run.profile, **p.config}, seed))
                    if rid in seen:
                        continue
                    seen.add(rid)
                    lines.append(shlex.join([python, "-m", "helpers", "point", "--notebook", nb, "--sweep", name,
                                             "--variant", p.variant, "--seed", str(seed), "--profile", run.profile]))
    return lines


# ------------------------------------------------------------------------------------------------ W&B sweep files
def sweep_file(notebook: str, name: str, s: Sweep, profile: str, seed: int = 0) -> dict:
    """The W&B sweep configuration of one Sweep: a grid over its points and seeds, whose command is the point
    command. The points are given by the overrides that vary among them when they are exactly those overrides' full
    grid (as the seed declares a W&B grid: notebook 07's batch x accumulation), else by name (--variant)."""
    seeds = {s.seeds_of(p, seed) for p in s.points}
    if len(seeds) != 1:
        raise SweepError(f"{notebook}'s sweep {name!r} gives its points different seeds {sorted(seeds)}: one W&B grid "
                         "cannot run it")
    keys = {tuple(p.overrides) for p in s.points}
    params = {"variant": {"values": [p.variant for p in s.points]}}
    if len(keys) == 1 and not RESERVED.intersection(*keys):
        # the overrides that vary, as a W&B grid declares them, when the points are exactly their full grid
        varying = {k: _unique(p.overrides[k] for p in s.points) for k in next(iter(keys))}
        varying = {k: v for k, v in varying.items() if len(v) > 1}
        combos = {tuple(str(p.overrides[k]) for k in varying) for p in s.points}
        if varying and len(combos) == len(s.points) == math.prod(len(v) for v in varying.values()):
            params = {k: {"values": v} for k, v in varying.items()}
    params["seed"] = {"values": list(next(iter(seeds)))}
    metric = METRICS.get(families.family(notebook).package)
    return {"name": f"{notebook} {name} ({profile})", "program": "helpers",
            "description": f"{len(s.points)} points x {len(params['seed']['values'])} seed(s) of {notebook}'s sweep "
                           f"{name!r} in the {profile} profile; generated by `python -m helpers sweeps`",
            "method": "grid", **({"metric": metric} if metric else {}),
            "parameters": params,
            "command": ["${env}", "${interpreter}", "-m", "helpers", "point", "--notebook", notebook, "--sweep", name,
                        "--profile", profile, "${args}"]}


METRICS = {"pretraining": {"name": "eval_loss", "goal": "minimize"}}     # by family package (families.FAMILIES)


def _unique(values) -> list:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def export(profile: str = "full", folder: Path | None = None, notebooks=None) -> list[Path]:
    """Write one W&B sweep file per sweep of every notebook with sweeps (or `notebooks`); returns their paths."""
    folder = Path(folder) if folder else SWEEPS_DIR / profile
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for nb in [notebook_name(n) for n in notebooks] if notebooks else with_sweeps():
        run, sweeps = notebook_sweeps(nb, profile, check_hub=False)
        for name, s in sweeps.items():
            path = folder / f"{nb}-{name}.yaml"
            path.write_text(f"# {HEADER}\n" + yaml.safe_dump(sweep_file(nb, name, s, run.profile, run.seed),
                                                            sort_keys=False, width=120))
            paths.append(path)
    return paths


HEADER = "generated by `python -m helpers sweeps`: regenerate, do not edit (docs/several-gpus.md)"
