"""Notebook 04: low-rank compression of a pretrained model, seed 001 done right: the sections the notebook runs.

Sections, in the notebook's order (each loads its record or computes and records it):
  prepare          the teacher, its data and calibration statistics, the teacher's losses: loaded on first use
  a. exp3          the notes' experiment 3: one middle layer's MLP at rank 16 by plain SVD, teacher vs student + CI
  b. method_sweep  svd / whiten / scaled at several parameter reductions, for MLP, attention and both
  c. fitting       closed form vs the seed's Adam fit on the same captured activations and rank; the one-prompt trap
  d. sensitivity   loss increase when one layer at a time is compressed (attention and MLP separately)
  e. healing       a short fine-tune of the compressed model's factors and the loss it recovers
  f. whitening     whiten's centring policies (SVD-LLM's uncentred, centred, centred except v_proj) over
                   calibration draws on both held-out sets: the measurement that chose `whitening`'s default
The config and PROFILES are helpers.compression.config, the measurements helpers.compression.measure (a-e) and
helpers.compression.whitening (f), the GPU plan helpers.compression.plan.
"""
from __future__ import annotations

from ..provenance import track
from ..results import load_or_run
from . import whitening as W
from .calibrate import calibrate
from .config import PROFILES
from .data import load
from .measure import (
    block_modules,
    heldout_losses,
    measure_exp3,
    measure_fitting,
    measure_healing,
    measure_sensitivity,
    measure_sweep,
)
from .plan import full_plan

# the notebook's sections, and what the family registry reads (PROFILES, full_plan)
__all__ = ["PROFILES", "full_plan", "prepare", "exp3", "method_sweep", "fitting", "sensitivity", "healing",
           "whitening"]


# ------------------------------------------------------------------------------------------------ the data
class Prepared(dict):
    """The data every section reads, loaded on first use: a rerun whose sections are all recorded never loads
    the teacher or calibrates (keys read with [] trigger it; .get() does not)."""

    def __init__(self, run):
        super().__init__()
        self.run, self.loaded = run, False

    def __missing__(self, key):
        if self.loaded:
            raise KeyError(key)
        self.loaded = True
        self.update(_prepare(self.run))
        return self[key]


def prepare(run) -> Prepared:
    """Teacher and data, every block Linear's calibration statistics, the teacher's losses: loaded when a section
    first needs them (not at all when every section is recorded)."""
    return Prepared(run)


def _prepare(run) -> dict:
    """Load the teacher and data, calibrate every block Linear's input statistics, evaluate the teacher."""

    data = load(run.cfg, run.device)
    with track(run.device) as t:
        data["stats"] = calibrate(data["model"], data["calib_batches"], block_modules(data["model"]), run.device)
        data["teacher"] = heldout_losses(data["model"], data, device=run.device)
    data["calibration_s"] = t.wall_s
    print(f"calibration: {next(iter(data['stats'].values())).n:,} tokens, {len(data['stats'])} Linears, "
          f"{t.wall_s:.0f} s")
    return data


def exp3(run, data, force: bool = False) -> dict:
    """a. The notes' experiment 3: one middle layer's MLP at rank exp3_rank by plain SVD, teacher vs student with a
    paired bootstrap interval per evaluation set."""

    def compute():
        with track(run.device) as t:
            a = measure_exp3(data, run.cfg, data["teacher"], run.device)
        rows = [{"set": name, **r} for name, r in a["table"].items()]
        return {"metrics": {k: a["metrics"][k] for k in ("layer", "rank", "params_after")},
                "tables": {"heldout": rows}, "params": a["params"], "provenance": t.as_dict()}

    return load_or_run(run, "a_exp3", "svd-mlp-one-layer", compute, force=force)


def method_sweep(run, data, force: bool = False) -> dict:
    """b. Every (method, group, reduction) on held-out English (rows: params, loss, delta to the teacher)."""

    def compute():
        with track(run.device) as t:
            b = measure_sweep(data, run.cfg, data["stats"], run.device)
        return {"metrics": {"teacher_loss": b["teacher_loss"], "teacher_params": b["teacher_params"]},
                "tables": {"rows": b["rows"]}, "provenance": t.as_dict()}

    return load_or_run(run, "b_sweep", "methods-x-reductions", compute, force=force)


def fitting(run, data, force: bool = False) -> dict:
    """c. Closed form vs the seed's Adam fit (rows per fit), and the one-prompt trap (metrics trap.*)."""

    return load_or_run(run, "c_fitting", f"{run.cfg.fit_module}-rank{run.cfg.fit_rank}",
                       lambda: _fitting(run, data), force=force)


def _fitting(run, data) -> dict:
    with track(run.device) as t:
        c = measure_fitting(data, run.cfg, run.device)
    rows = [{"fit": "closed form (whiten)", "steps": None, **c["closed_form"]},
            {"fit": "plain SVD", "steps": None, "wall_s": None, **c["svd"]},
            *[{"fit": "Adam", "steps": int(k), **v} for k, v in c["adam"].items()]]
    metrics = {"path": c["path"], "rank": c["rank"], "calib_tokens": c["calib_tokens"],
               "heldout_tokens": c["heldout_tokens"], "adam_wall_s": c["adam_wall_s"],
               **{f"trap.{k}": v for k, v in c["trap"].items() if k != "warnings"}}
    return {"metrics": metrics, "tables": {"fit": rows, "trap_warnings": [{"warning": w} for w in
                                                                          c["trap"]["warnings"]]},
            "provenance": t.as_dict()}


def sensitivity(run, data, force: bool = False) -> dict:
    """d. Loss increase when one layer's attention or MLP alone is compressed (rows: layer, attention, mlp)."""

    def compute():
        with track(run.device) as t:
            d = measure_sensitivity(data, run.cfg, run.device)
        rows = [{"layer": layer, **{f"{g}{suffix}": v[key] for g, v in (("attention", a), ("mlp", m))
                                    for suffix, key in (("", "delta"), ("_lo", "lo"), ("_hi", "hi"))}}
                for layer, a, m in zip(d["layers"], d["delta"]["attention"], d["delta"]["mlp"])]
        return {"metrics": {"teacher_loss": d["teacher_loss"], "rank": d["rank"]}, "tables": {"layers": rows},
                "provenance": t.as_dict()}

    return load_or_run(run, "d_sensitivity", f"svd-rank{run.cfg.sens_rank}-per-layer", compute, force=force)


def healing(run, data, force: bool = False) -> dict:
    """e. A short fine-tune of the compressed model's factors and the share of the loss increase it recovers, over
    training seeds (cfg.heal_seeds), each beside its control arm (the teacher fine-tuned the same way):
    {(variant, seed): record}."""
    cfg, out = run.cfg, {}
    for seed in cfg.heal_seeds or (run.seed, run.seed + 1):
        r = run.with_seed(seed)
        out.update(load_or_run(r, "e_healing", f"{cfg.heal_method}-{int(cfg.heal_reduction * 100)}pct",
                               lambda s=seed: measure_healing(data, cfg, data["stats"], run.device, s), force=force))
        out.update(load_or_run(r, "e_healing", "teacher-control",
                               lambda s=seed: measure_healing(data, cfg, data["stats"], run.device, s, control=True),
                               force=force))
    return out


def whitening(run, data, force: bool = False) -> dict:
    """f. whiten's centring policies, a record per calibration draw (its seed; W.draw_stats), on both held-out sets:
    {(variant, draw): record}, keyed by what determines it (not by `whitening`, the default it chooses)."""
    key, out = {k: getattr(run.cfg, k) for k in W.DETERMINED_BY}, {}
    for draw in range(run.cfg.center_draws):
        out.update(load_or_run(run.with_seed(draw), "f_whitening", "centring-policies",
                               lambda d=draw: _whitening(run, data, d), config=key, force=force))
    return out


def _whitening(run, data, draw: int) -> dict:
    with track(run.device) as t:
        res = W.measure_draw(data, run.cfg, draw, lambda m: heldout_losses(m, data, device=run.device), run.device)
    return {**res, "provenance": t.as_dict()}
