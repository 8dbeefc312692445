"""The one W&B logger: `log_record(rec)` logs a record (or a job's result: {"metrics", "curves"}) as one W&B run;
`start_run` opens a run ahead of its record (a sweep point under `wandb agent`), which log_record then fills.

Whether W&B is on stays with the caller (a W&B sweep agent: helpers.points; a profile's `wandb` setting: notebook
07's study); this module only logs. wandb is imported where it is used, so a machine without it still runs: there the
call warns and returns. The training core's own curves during a run go through transformers' W&B integration
(TrainConfig.wandb -> report_to), not through here.
"""
from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path

from .paths import REPO_ROOT

CURVES = ("train_loss", "lr")       # the curves a run logs step by step (train/<name>)


def identity(rec: dict) -> dict:
    """The config a record's W&B run is logged with when the caller gives none: what names the run."""
    return {k: rec[k] for k in ("notebook", "variant", "seed", "run_id", "profile") if k in rec}


def start_run(config: dict | None = None, project: str | None = None, offline: bool = False):
    """Start a W&B run now and return it (None where wandb is not installed): a sweep point under `wandb agent`
    starts its run before it trains, so that a multi-hour point shows as running. offline: WANDB_MODE=offline unless
    set (`wandb sync wandb/` uploads later). The run goes under $LAB_WANDB, else $WANDB_DIR, else the repository
    root; project None: W&B's (an agent's sweep sets it; under an agent W&B ignores any other)."""
    try:
        import wandb  # optional: imported where it is used, so that a machine without it still runs
    except ImportError:
        warnings.warn("wandb is not installed: this run is not logged to W&B (pip install wandb to log it)",
                      stacklevel=3)
        return None
    if offline:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
    folder = os.environ.get("LAB_WANDB") or os.environ.get("WANDB_DIR") or str(REPO_ROOT)
    return wandb.init(project=project, dir=folder, config=config, reinit="finish_previous")


def active_run():
    """The W&B run this process has open (a sweep point's, started by start_run), else None."""
    wandb = sys.modules.get("wandb")
    return getattr(wandb, "run", None) if wandb is not None else None


def log_record(rec: dict, config: dict | None = None, project: str | None = None, offline: bool = False,
               run=None, files: tuple = ()) -> None:
    """Log `rec` to W&B: its CURVES by step, its numeric metrics as the run's summary, `config` (default: the
    record's identity) as its config, `files` (e.g. the record's JSON file) saved with the run. Into `run`, or the
    run this process already has open (a sweep point's: a job that logs itself adds to the agent's run instead of
    finishing it), left open for its starter to finish; else into a new run (start_run's project, offline) that
    is finished here."""
    own = False
    if run is None:
        run = active_run()
    if run is None:
        run = start_run(identity(rec) if config is None else config, project, offline)
        if run is None:
            return
        own = True
    else:
        run.config.update(identity(rec) if config is None else config, allow_val_change=True)
    try:
        first = 0 if own else next_step(run)     # an open run may hold these curves already (its job logged them)
        for name in CURVES:
            curve = (rec.get("curves") or {}).get(name)
            if isinstance(curve, dict):
                for step, v in sorted(curve.items(), key=lambda kv: int(kv[0])):
                    if int(step) >= first:
                        run.log({f"train/{name}": v}, step=int(step))
        run.summary.update(summary(rec))
        for path in files:
            save_file(run, Path(path))
    finally:
        if own:
            run.finish()


def next_step(run) -> int:
    try:
        return int(run.step)
    except Exception:       # a disabled or shared-mode run has no step to ask for
        return 0


def summary(rec: dict) -> dict:
    """The numeric metrics of a record (or a job's result), as a W&B run's summary takes them."""
    return {k: v for k, v in (rec.get("metrics") or {}).items() if isinstance(v, (int, float))}


def save_file(run, path: Path) -> None:
    """A copy of `path` saved with the run (a copy in the run's folder, not a link: the run, synced later, keeps the
    file as it was; offline runs keep it until `wandb sync`)."""
    copy = Path(run.dir) / path.name
    shutil.copyfile(path, copy)
    run.save(str(copy), base_path=run.dir, policy="now")
