"""The one W&B logger: `log_record(rec)` logs a record (or a job's result: {"metrics", "curves"}) as one W&B run.

Whether W&B is on stays with the caller (a W&B sweep agent: helpers.points; a profile's `wandb` setting: notebook
07's study); this module only logs. wandb is imported where it is used, so a machine without it still runs: there the
call warns and returns. The training core's own curves during a run go through transformers' W&B integration
(TrainConfig.wandb -> report_to), not through here.
"""
from __future__ import annotations

import os
import warnings

from .paths import REPO_ROOT

CURVES = ("train_loss", "lr")       # the curves a run logs step by step (train/<name>)


def identity(rec: dict) -> dict:
    """The config a record's W&B run is logged with when the caller gives none: what names the run."""
    return {k: rec[k] for k in ("notebook", "variant", "seed", "run_id", "profile") if k in rec}


def log_record(rec: dict, config: dict | None = None, project: str | None = None, offline: bool = False) -> None:
    """One W&B run for `rec`: its CURVES by step, its numeric metrics as the run's summary, `config` (default: the
    record's identity) as its config. offline: WANDB_MODE=offline unless set (`wandb sync wandb/` uploads later).
    The run goes under $LAB_WANDB (default: the repository root); project None: W&B's (an agent's sweep sets it)."""
    try:
        import wandb  # optional: imported where it is used, so that a machine without it still runs
    except ImportError:
        warnings.warn("wandb is not installed: this run is not logged to W&B (pip install wandb to log it)",
                      stacklevel=3)
        return
    if offline:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(project=project, dir=os.environ.get("LAB_WANDB", str(REPO_ROOT)),
                     config=identity(rec) if config is None else config, reinit="finish_previous")
    try:
        for name in CURVES:
            curve = (rec.get("curves") or {}).get(name)
            if isinstance(curve, dict):
                for step, v in sorted(curve.items(), key=lambda kv: int(kv[0])):
                    run.log({f"train/{name}": v}, step=int(step))
        run.summary.update({k: v for k, v in (rec.get("metrics") or {}).items() if isinstance(v, (int, float))})
    finally:
        run.finish()
