"""Notebook 05: looped vs standard transformers learning in context (seed 002), over training seeds.

  jobs           arm_job: one model trained with one seed and scored on the fixed test prompts; run_key
  1. baselines   the task's baselines and predicting zero on the test prompts
  2. headline    the looped model and a standard transformer of the same width, every seed of cfg.seeds
  3. options     each of the seed's options against the plain looped model
  4. tasks       each other task and its baselines on the same prompts
  sweeps         the sections' sweeps (helpers.points)
  regime search  regime_point, regime_key, regime_search (benchmarks/looped_regime.py), regime: its records
The settings (LoopedStudyConfig, PROFILES) are helpers.looped.config; the GPU plan `full_plan`, helpers.looped.plan.

The paper (Yang et al. 2023, on Garg et al. 2022) claims parity: a one-block looped transformer matches a deep
standard one on linear regression in context, both near least squares. Here both arms run the same steps and
curriculum at the lr the regime search chose (`make looped-regime`, benchmarks/looped_regime.py: validation prompts,
tuning seeds that are never reported), with cfg.seeds training seeds each; every training job scores its model on the
fixed test prompts (all positions k) and, for the looped model, against the number of inference loops, and keeps
those numbers in its record: later sections and Analysis read records only, so a fresh clone loads instead of
retraining. The verdicts (the gate, escape rates, Welch and TOST, loop drift) are in helpers.looped.verdicts.

The test prompts are drawn at the FINAL curriculum setting (the seed's test set used the starting one). Sections
return {(variant, seed): record}: baselines, headline, options, tasks.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..models import LoopedConfig
from ..results import keyed, load_or_run, load_records
from ..sweep import Point, Sweep, run_sweep, sweep
from .config import PROFILES, LoopedStudyConfig, arm_train, arms, shortened, task_config
from .plan import flops_per_prediction, full_plan
from .report import K_LABELS
from .tasks import NOISE, error_scale, expected_averaging_error
from .training import (
    ICLTrainConfig,
    baseline_errors,
    errors_vs_k,
    errors_vs_loops,
    fixed,
    fixed_test_set,
    train_model,
)

# the family registry (PROFILES, full_plan), helpers.points (sweeps) and notebook 05's sections
__all__ = ["PROFILES", "full_plan", "sweeps", "baselines", "headline", "options", "tasks", "regime", "regime_key"]


# ------------------------------------------------------------------------------------------------ jobs
def _status(res: dict) -> str:
    # a run is defined by its steps: one cut short by the safety time budget is partial, never the run itself
    return "partial" if res.get("stopped_by_budget") else "ok"


def _at_k(prefix: str, mean_over_k, active: int) -> dict:
    """{"<prefix>.k=d": .., "<prefix>.k=2d": ..} from an error per position k (positions past the prompt left out)."""
    return {f"{prefix}.{label}": float(mean_over_k[k]) for label, k in zip(K_LABELS, (active, 2 * active))
            if k < len(mean_over_k)}


def _errors_table(errors: np.ndarray) -> list[dict]:
    """Per-prompt errors (P, n) as record rows: one row per position k with the P errors (6 significant digits)."""
    return [{"k": k, "errors": [float(f"{e:.6g}") for e in errors[:, k]]} for k in range(errors.shape[1])]


def arm_job(mcfg: LoopedConfig, tcfg: ICLTrainConfig, eval_loops: tuple, seed: int, device: str = "cpu") -> dict:
    """Train one model with one seed and score it on the fixed test prompts: mean error per k (curve err_vs_k), the
    per-prompt errors (table test_errors; the report's bands, ratios and tests need them), err.k=d / err.k=2d, and
    for a looped model the error at k = 2d against the number of inference loops (table loops). A record's parts."""
    res = train_model(mcfg, tcfg, seed, device)
    xs, ys, active = fixed_test_set(tcfg, mcfg.n_dims)
    scale = error_scale(tcfg.task, active)
    errors = errors_vs_k(res["model"], xs, ys, scale)
    mean = errors.mean(0)
    k2 = 2 * active
    metrics = {"steps": res["steps"], "wall_s": res["wall_s"], "steps_per_s": res["steps_per_s"], "d": active,
               "test_prompts": len(xs), "trained_loops": mcfg.loops if mcfg.looped else None,
               "flops_per_prediction": flops_per_prediction(mcfg, ys.shape[1]), **_at_k("err", mean, active)}
    tables = {"test_errors": _errors_table(errors)}
    if mcfg.looped and eval_loops and k2 < len(mean):
        tables["loops"] = [{"loops": L, "error": v}
                           for L, v in errors_vs_loops(res["model"], xs, ys, scale, eval_loops, k2).items()]
    return {"metrics": metrics, "curves": {"train_loss": res["curve"], "err_vs_k": dict(enumerate(mean.tolist()))},
            "tables": tables, "params": {"total": res["params"]},
            "provenance": {"wall_s": res["wall_s"], "steps_per_s": res["steps_per_s"]}, "status": _status(res)}


def run_key(mcfg: LoopedConfig, tcfg: ICLTrainConfig, eval_loops: tuple = ()) -> dict:
    return {"model": dataclasses.asdict(mcfg), "train": dataclasses.asdict(tcfg), "eval_loops": list(eval_loops)}


# ------------------------------------------------------------------------------------------------ sections
def baselines(run, force: bool = False) -> dict:
    """Section 1: the task's baselines (least squares, averaging, 3-NN) and predicting zero on the test prompts,
    per prompt and k, and averaging's expected error (d + 1) / k."""
    cfg = run.cfg

    def compute():
        metrics, tables = _baseline_parts(cfg.train, cfg.model.n_dims)
        d, n = metrics["d"], cfg.train.points.end
        metrics["test_prompts"] = cfg.train.test_prompts
        if cfg.train.task == "linear_regression":
            metrics.update({f"averaging_expected.{label}": expected_averaging_error(d, k)
                            for label, k in zip(K_LABELS, (d, 2 * d)) if k < n})
        return {"metrics": metrics, "tables": tables}

    key = {"task": cfg.train.task, "dims": cfg.train.dims.end, "points": cfg.train.points.end,
           "test_prompts": cfg.train.test_prompts, "n_dims": cfg.model.n_dims, "noise": NOISE,
           "parity_margin": cfg.parity_margin}       # what the report judges parity by, stated before the data
    return load_or_run(run, "baselines", f"baselines-{cfg.train.task}", compute, key, force)


def headline(run, force: bool = False) -> dict:
    """Section 2: the looped model and a standard transformer of the same width, every seed of cfg.seeds, the same
    steps, curriculum and lr (but for cfg.standard_lr, where a profile sets it): {(arm, seed): record}."""
    return run_sweep(run, headline_sweep(run.cfg), run.cfg.workers, force)


def headline_sweep(cfg: LoopedStudyConfig) -> Sweep:
    points = [Point(arm, f"{arm}-{cfg.train.task}", (mcfg, tcfg, tuple(cfg.eval_loops)),
                    run_key(mcfg, tcfg, cfg.eval_loops), seeds=tuple(cfg.seeds))
              for arm, mcfg in arms(cfg).items() for tcfg in [arm_train(cfg, arm)]]
    return Sweep("headline", points, arm_job, desc="looped vs standard", per_device=cfg.per_gpu)


def options(run, headline_records: dict, force: bool = False) -> dict:
    """Section 3: each of the seed's options against the plain looped model, cfg.option_seeds each; at the
    headline's steps the plain arm is the headline's looped runs (no run twice), else a plain arm of its own."""
    cfg = run.cfg
    out = run_sweep(run, options_sweep(cfg), cfg.workers, force)
    if (cfg.option_steps or cfg.train.steps) == cfg.train.steps:
        out.update({("plain", r["seed"]): r for r in headline_records.values() if r["experiment"] == "looped"
                    and r["seed"] in cfg.option_seeds})
    return out


def options_sweep(cfg: LoopedStudyConfig) -> Sweep:
    steps = cfg.option_steps or cfg.train.steps
    tcfg = shortened(cfg.train, steps)
    variants = {name: dataclasses.replace(cfg.model, **opts) for name, opts in cfg.options.items()}
    if steps != cfg.train.steps:
        variants = {"plain": cfg.model, **variants}
    # the SSM's sequential scan makes it ~3x slower per step: submitted first, it overlaps the short runs
    order = sorted(variants, key=lambda n: not variants[n].use_ssm)
    points = [Point("options", name, (variants[name], tcfg, ()), run_key(variants[name], tcfg),
                    seeds=tuple(cfg.option_seeds)) for name in order]
    return Sweep("options", points, arm_job, per_device=cfg.per_gpu)


def tasks(run, force: bool = False) -> dict:
    """Section 4: each other task, cfg.task_seeds each, and its baselines on the same prompts (one record per task,
    experiment task_baselines): {(variant, seed): record} of both kinds."""
    cfg = run.cfg
    out = {}
    for task in cfg.tasks:
        mcfg, tcfg = task_config(cfg, task)
        out.update(load_or_run(run, "task_baselines", f"baselines-{task}",
                               lambda t=tcfg, m=mcfg: _task_baselines(t, m), run_key(mcfg, tcfg), force))
    out.update(run_sweep(run, tasks_sweep(cfg), cfg.workers, force))
    return out


def tasks_sweep(cfg: LoopedStudyConfig) -> Sweep:
    points = [Point("tasks", task, (mcfg, tcfg, ()), run_key(mcfg, tcfg), seeds=tuple(cfg.task_seeds))
              for task in cfg.tasks for mcfg, tcfg in [task_config(cfg, task)]]
    return Sweep("tasks", points, arm_job, per_device=cfg.per_gpu)


def sweeps(run, params: dict | None = None) -> dict[str, Sweep]:
    """The notebook's sweeps at run.cfg (helpers.points): headline, options, tasks."""
    return {"headline": headline_sweep(run.cfg), "options": options_sweep(run.cfg), "tasks": tasks_sweep(run.cfg)}


def _baseline_parts(tcfg: ICLTrainConfig, n_dims: int) -> tuple[dict, dict]:
    """The task's baselines and predicting zero on the fixed test prompts: metrics (d and each at k = d, 2d) and
    their per-prompt errors as tables."""
    xs, ys, active = fixed_test_set(tcfg, n_dims)
    base = baseline_errors(tcfg.task, xs, ys, active, len(xs))
    metrics = {"d": active}
    for name, e in base.items():
        metrics.update(_at_k(name, e.mean(0), active))
    return metrics, {f"errors.{name}": _errors_table(e) for name, e in base.items()}


def _task_baselines(tcfg: ICLTrainConfig, mcfg: LoopedConfig) -> dict:
    metrics, tables = _baseline_parts(tcfg, mcfg.n_dims)
    return {"metrics": {**metrics, "scale": error_scale(tcfg.task, metrics["d"])}, "tables": tables}


# ------------------------------------------------------------------------------------------------ regime search
def at_dims(cfg: LoopedStudyConfig, d: int) -> dict:
    """Overrides that move a study to regression dimension d with 2d + 3 points (k = 2d is then inside the prompt)."""
    n = 2 * d + 3
    return {"model.n_dims": d, "model.n_positions": n, "train.dims": fixed(d), "train.points": fixed(n)}


def regime_point(cfg: LoopedStudyConfig, seed: int, device: str = "cpu") -> dict:
    """One (point, tuning seed) of the regime search: both arms trained with the point's settings, scored on the
    validation prompts (cfg.val_seed, never the test set's) against averaging on the same prompts at k = 2d."""
    out, curves = {}, {}
    for arm, mcfg in arms(cfg).items():
        res = train_model(mcfg, arm_train(cfg, arm), seed, device)
        xs, ys, active = fixed_test_set(cfg.train, mcfg.n_dims, seed=cfg.val_seed)
        scale = error_scale(cfg.train.task, active)
        err = errors_vs_k(res["model"], xs, ys, scale).mean(0)
        out.update({f"{arm}.k=2d": float(err[2 * active]), f"{arm}.steps": res["steps"],
                    f"{arm}.wall_s": res["wall_s"], f"{arm}.params": res["params"]})
        curves[f"{arm}.train_loss"] = res["curve"]
    avg = baseline_errors(cfg.train.task, xs, ys, active, len(xs))["averaging"].mean(0)[2 * active]
    out.update({"d": active, "averaging.k=2d": float(avg),
                **{f"{arm}.ratio_to_averaging": out[f"{arm}.k=2d"] / avg for arm in ("looped", "standard")}})
    return {"metrics": out, "curves": curves}


def regime_key(cfg: LoopedStudyConfig) -> dict:
    """What a regime point's result depends on: both arms and their training, and the validation prompts."""
    return {"model": dataclasses.asdict(cfg.model), "standard_layers": cfg.standard_layers,
            "train": dataclasses.asdict(cfg.train), "val_seed": cfg.val_seed,
            **({"standard_lr": cfg.standard_lr} if cfg.standard_lr is not None else {})}


def regime_search(run, points: dict, seeds: tuple = (100, 101, 102), force: bool = False) -> dict:
    """{(name, seed): record} for each point {name: dotted overrides of run.cfg} and tuning seed, through the sweep
    runner (recorded points, keyed by their models and training, are loaded)."""
    out = sweep(run, "regime", {f"regime {n}": o for n, o in points.items()}, regime_point, seeds, run.cfg.workers,
                force, "regimes", key=regime_key)
    return {(n, s): out[f"regime {n}", s] for n in points for s in seeds}


def regime(run) -> dict:
    """The recorded regime search of this profile (benchmarks/looped_regime.py; never run from the notebook, whose
    reported seeds it must not choose), collected into the run: {(variant, seed): record}; empty when not run."""
    recs = [r for r in load_records(notebook=run.notebook, report=False)
            if r["experiment"] == "regime" and r["profile"] == run.profile]
    run.collect(*recs)
    return keyed(*recs)
