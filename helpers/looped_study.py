"""Notebook 05: looped vs standard transformers learning in context (seed 002), as sections that write records.

The fixed test set is generated at the FINAL curriculum setting (the seed's test set used the starting one, so its
"test loss" never measured the final task). Every section takes the resolved run and returns its record(s); the
tables, figures and conclusion are functions of records only, shared by the notebook and `report()` (Analysis).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import icl
from .icl_train import (
    TEST_SEED,
    ICLTrainConfig,
    baseline_errors,
    errors_vs_k,
    errors_vs_loops,
    fixed,
    fixed_test_set,
    train_model,
)
from .looped import LoopedTransformer
from .looped_report import K_LABELS, tuning_table
from .memory import MemoryPlan
from .models import LoopedConfig, count_params
from .paths import checkpoints_dir
from .planning import NotebookPlan
from .results import load_or_run, run_config, run_id
from .sweep import Point, run_points, sweep


@dataclass
class LoopedStudyConfig:
    model: LoopedConfig = field(default_factory=LoopedConfig)
    standard_layers: int = 12
    train: ICLTrainConfig = field(default_factory=ICLTrainConfig)
    options: dict = field(default_factory=lambda: {
        "save_n_tokens=0.9": {"save_n_tokens": 0.9}, "save_n_tokens=0.5": {"save_n_tokens": 0.5},
        "feed_block (2 blocks)": {"feed_block": True, "n_layer": 2}, "use_ssm": {"use_ssm": True},
        "skip_connection": {"skip_connection": True}})
    option_steps: int = 1000
    option_seeds: tuple = (0,)
    eval_loops: tuple = (1, 2, 5, 10, 20, 50, 100)
    seeds: tuple = (0,)
    # the same learning-rate search for both arms: each candidate trained with every tune seed (never a reported
    # seed: whether a run leaves the predict-zero plateau depends on its seed), scored on validation prompts drawn
    # with val_seed (not the test set's seed), chosen by its mean; () keeps train.lr
    tune_lrs: tuple = ()
    tune_seeds: tuple = (100,)
    val_seed: int = 4321
    baseline_prompts: int = 256     # the other tasks' test prompts (their baselines fit per prompt: slow)
    tasks: tuple = ("noisy_linear_regression", "sparse_linear_regression", "relu_2nn", "decision_tree")
    task_steps: int = 1000
    workers: int = 1                # CPU: models trained side by side, one process and one thread each

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = LoopedConfig(**self.model)
        if isinstance(self.train, dict):
            self.train = ICLTrainConfig(**self.train)
        if self.train.points.end > self.model.n_positions:
            raise ValueError(f"the curriculum reaches {self.train.points.end} points but the model holds "
                             f"{self.model.n_positions} positions")
        if not self.seeds or not self.option_seeds:
            raise ValueError(f"seeds and option_seeds must each name at least one seed, got {self.seeds}, "
                             f"{self.option_seeds}")
        if self.val_seed == TEST_SEED:
            raise ValueError(f"val_seed {self.val_seed} is the test set's seed: choose any other")
        if self.tune_lrs and (not self.tune_seeds or set(self.tune_seeds) & set(self.seeds)):
            raise ValueError(f"tune_seeds {self.tune_seeds} must be given and must not hold a reported seed "
                             f"{self.seeds}: choose others")
        if any(lr <= 0 for lr in self.tune_lrs):
            raise ValueError(f"tune_lrs must be positive, got {self.tune_lrs}")
        if any(L < 1 for L in self.eval_loops):
            raise ValueError(f"inference loops must be >= 1, got {self.eval_loops}")
        for opts in self.options.values():
            dataclasses.replace(self.model, **opts)          # validate every option now, not mid-notebook
        bad = [t for t in self.tasks if t not in icl.TASKS]
        if bad:
            raise ValueError(f"unknown task(s) {bad}; allowed: {', '.join(icl.TASKS)}")


# local: chosen by benchmarks/looped_regime.py (records in results/05_looped_transformer/regime-*): see the notebook.
PROFILES = {
    "tiny": LoopedStudyConfig(
        model=LoopedConfig(n_dims=2, n_positions=6, width=16, n_head=2, loops=3, window=2, token_format="extra_dim"),
        standard_layers=2,
        train=ICLTrainConfig(steps=4, batch_size=16, lr=1e-3, dims=fixed(2), points=fixed(6), loops=fixed(3),
                             test_prompts=32, log_every=1),
        option_steps=3, eval_loops=(1, 2, 6), seeds=(0, 1), tune_lrs=(1e-3, 3e-3), baseline_prompts=16,
        task_steps=3),
    "local": LoopedStudyConfig(
        model=LoopedConfig(n_dims=4, n_positions=11, width=64, n_head=4, loops=8, window=4, token_format="extra_dim"),
        standard_layers=3,
        # a run is its steps (1,200: ~150 s for the looped model on one core); the budget is only a safety stop
        train=ICLTrainConfig(steps=1200, batch_size=128, lr=1e-3, warmup=50, time_budget_s=1800, dims=fixed(4),
                             points=fixed(11), loops=icl.Schedule(4, 8, 2, 100), test_prompts=1024, log_every=50),
        option_steps=1200, eval_loops=(1, 2, 4, 8, 16, 32, 64), seeds=(0, 1, 2), tune_lrs=(5e-4, 1e-3, 2e-3),
        tune_seeds=(100, 101, 102),
        baseline_prompts=256, task_steps=500, workers=2),
    "full": LoopedStudyConfig(
        model=LoopedConfig(n_dims=20, n_positions=41, width=256, n_head=8, loops=30, window=15), standard_layers=12,
        train=ICLTrainConfig(steps=100_000, batch_size=64, lr=1e-4, dims=icl.Schedule(5, 20, 1, 5000),
                             points=icl.Schedule(11, 41, 2, 5000), loops=icl.Schedule(15, 30, 2, 500),
                             test_prompts=1280, log_every=500),
        option_steps=20_000, eval_loops=(1, 5, 10, 20, 30, 50, 100, 200, 500), seeds=(0, 1, 2),
        baseline_prompts=512, task_steps=100_000),
}

# the paper's loops per task (b, T); at other scales the profile's own loops are scaled by the same ratio
TASK_LOOPS = {"linear_regression": (30, 15), "noisy_linear_regression": (30, 15), "sparse_linear_regression": (20, 10),
              "decision_tree": (70, 15), "relu_2nn": (12, 5)}


# ------------------------------------------------------------------------------------------------ building blocks
def standard_config(cfg: LoopedStudyConfig) -> LoopedConfig:
    return dataclasses.replace(cfg.model, looped=False, n_layer=cfg.standard_layers, feed_block=False,
                               save_n_tokens=0, skip_connection=False)


def at_dims(cfg: LoopedStudyConfig, d: int) -> dict:
    """Overrides that move a study to regression dimension d with 2d + 3 points (k = 2d is then inside the prompt)."""
    n = 2 * d + 3
    return {"model.n_dims": d, "model.n_positions": n, "train.dims": fixed(d), "train.points": fixed(n)}


def at_k(mean_over_k, active: int) -> dict:
    """{"k=d": .., "k=2d": ..} from an error-per-k sequence (positions past the prompt are left out)."""
    return {label: float(mean_over_k[k]) for label, k in zip(K_LABELS, (active, 2 * active)) if k < len(mean_over_k)}


def result_of(res: dict, errors=None, active: int | None = None) -> dict:
    """A record's parts from a training result (and its test errors (P, n)): steps, wall time, steps/s, the error at
    k = d and 2d (metrics err.k=d, err.k=2d) and the error-per-k curve."""
    metrics = {"steps": res["steps"], "wall_s": res["wall_s"], "steps_per_s": res["steps_per_s"]}
    curves = {"train_loss": res["curve"]}
    if errors is not None:
        mean = errors.mean(0)
        metrics.update({f"err.{k}": v for k, v in at_k(mean, active).items()}, d=active)
        curves["err_vs_k"] = {k: float(v) for k, v in enumerate(mean)}
    return {"metrics": metrics, "curves": curves, "params": {"total": res["params"]},
            "provenance": {"wall_s": res["wall_s"], "steps_per_s": res["steps_per_s"]}}


def arms(cfg: LoopedStudyConfig) -> dict[str, LoopedConfig]:
    """The two models compared: the looped model and a standard transformer of the same width."""
    return {"looped": cfg.model, "standard": standard_config(cfg)}


def _status(res: dict) -> str:
    # a run is defined by its steps: one cut short by the safety time budget is partial, never the run itself
    return "partial" if res.get("stopped_by_budget") else "ok"


def _train_and_score(mcfg: LoopedConfig, tcfg: ICLTrainConfig, seed: int, device: str, prompts_seed: int = TEST_SEED):
    """Train, score on the fixed prompts drawn with prompts_seed at the final setting: (a record's parts, model)."""

    res = train_model(mcfg, tcfg, seed, device)
    xs, ys, active = fixed_test_set(tcfg, mcfg.n_dims, seed=prompts_seed)
    return {**result_of(res, errors_vs_k(res["model"], xs, ys, active), active), "status": _status(res)}, res["model"]


def train_and_score(mcfg: LoopedConfig, tcfg: ICLTrainConfig, seed: int, device: str = "cpu") -> dict:
    """One sweep job: train a model, score it on the fixed test set at the final setting; a record's parts."""
    return _train_and_score(mcfg, tcfg, seed, device)[0]


def validation_job(mcfg: LoopedConfig, tcfg: ICLTrainConfig, val_seed: int, seed: int, device: str = "cpu") -> dict:
    """One tuning candidate: train, score on validation prompts (drawn with val_seed, never the test set's)."""
    out = _train_and_score(mcfg, tcfg, seed, device, prompts_seed=val_seed)[0]
    out["metrics"].update(lr=tcfg.lr, val_seed=val_seed)
    return out


def saved_model_job(mcfg: LoopedConfig, tcfg: ICLTrainConfig, path: str, seed: int, device: str = "cpu") -> dict:
    """Train, save the weights to `path` (sections 2 and 3 and a rerun read them), score on the test set."""

    out, model = _train_and_score(mcfg, tcfg, seed, device)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, path)
    return out


def load_model(mcfg: LoopedConfig, path, device: str = "cpu"):
    model = LoopedTransformer(mcfg)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).eval()


def model_path(run, variant: str, key: dict, seed: int):
    """Where a section-1 model's weights live: checkpoints/<notebook>/<its record's run id>.pt (git-ignored)."""

    return checkpoints_dir() / run.notebook / f"{run_id(variant, run_config(run, key), seed)}.pt"


def bands(errors: dict) -> dict:
    """{name: {"mean", "lo", "hi"} lists over k}: 90% bootstrap bands; errors per name (P, n) or, over training
    seeds, (S, P, n) (the band then covers seeds and prompts)."""
    out = {}
    for name, e in errors.items():
        mean, lo, hi = icl.bootstrap_band(e)
        out[name] = {"mean": mean.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
    return out


def seed_rows(errors: dict, active: int, extra: dict | None = None) -> list[dict]:
    """One row per model: the error at k = d and k = 2d as the mean over seeds (each seed's mean over the test
    prompts) and the sd across seeds (None for one seed); `extra` {name: {column: value}} adds columns."""

    rows = []
    for name, e in errors.items():
        per_seed = e.mean(1) if e.ndim == 3 else e.mean(0)[None]                  # (S, n)
        row = {"model": name, "seeds": int(per_seed.shape[0])}
        for label, k in zip(K_LABELS, (active, 2 * active)):
            row[label] = float(per_seed[:, k].mean())
            row[f"{label} sd"] = float(np.std(per_seed[:, k], ddof=1)) if per_seed.shape[0] > 1 else None
        rows.append({**row, **(extra or {}).get(name, {})})
    return rows


# ------------------------------------------------------------------------------------------------ sections
def tune(run, force: bool = False) -> dict:
    """Section 1: the same learning-rate search for both arms: every lr of cfg.tune_lrs trained with each of
    cfg.tune_seeds (the run's steps), scored on validation prompts drawn with cfg.val_seed, so the test prompts
    never choose a setting. Returns {(variant, seed): record} (empty when cfg.tune_lrs is ())."""

    cfg = run.cfg
    points = []
    for arm, mcfg in arms(cfg).items():
        for lr in cfg.tune_lrs:
            tcfg = dataclasses.replace(cfg.train, lr=lr)
            points.append(Point("tune", f"tune {arm} lr={lr:g}", (mcfg, tcfg, cfg.val_seed),
                                {"model": dataclasses.asdict(mcfg), "train": dataclasses.asdict(tcfg),
                                 "val_seed": cfg.val_seed}, seeds=tuple(cfg.tune_seeds)))
    return run_points(run, points, validation_job, None, cfg.workers, force, "tuning (validation prompts)")


def chosen_lrs(cfg: LoopedStudyConfig, tune_records: dict) -> dict:
    """{arm: lr}: each arm's lr with the lowest mean validation error at k = 2d over its tuning seeds (runs cut by
    the safety budget are not candidates); cfg.train.lr for an arm with no tuning record."""
    rows = tuning_table(tune_records).reset_index().to_dict("records") if tune_records else []
    chosen = {r["arm"]: r["lr"] for r in rows if r["chosen"]}
    return {arm: chosen.get(arm, cfg.train.lr) for arm in arms(cfg)}


def looped_vs_standard(run, lrs: dict | None = None, force: bool = False) -> dict:
    """Section 2: the looped model and a standard transformer of equal width, every seed of cfg.seeds, the same
    number of steps, each at its own chosen lr (`lrs`, from chosen_lrs; default cfg.train.lr). The weights are
    kept (checkpoints/, git-ignored), so a rerun loads recorded runs; one whose weights are gone is trained again.
    Returns {"records": {(arm, seed): record}, "models": {(arm, seed): model}, "errors": {arm: (S, P, n)}} on
    the test prompts (the models feed sections 3 and 4)."""

    cfg = run.cfg
    points = []
    for arm, mcfg in arms(cfg).items():
        tcfg = dataclasses.replace(cfg.train, lr=(lrs or {}).get(arm, cfg.train.lr))
        key = {"model": dataclasses.asdict(mcfg), "train": dataclasses.asdict(tcfg)}
        variant = f"{arm}-{cfg.train.task}"
        for seed in cfg.seeds:
            points.append(Point(arm, variant, (mcfg, tcfg, str(model_path(run, variant, key, seed))), key,
                                seeds=(seed,)))
    recs = run_points(run, points, saved_model_job, None, cfg.workers,
                      lambda p, seed: force or not Path(p.args[2]).exists(), "looped vs standard")
    models = {(p.experiment, p.seeds[0]): load_model(p.args[0], p.args[2], run.device) for p in points}
    xs, ys, active = fixed_test_set(cfg.train, cfg.model.n_dims)
    errors = {arm: np.stack([errors_vs_k(models[arm, s], xs, ys, active) for s in cfg.seeds]) for arm in arms(cfg)}
    return {"records": {(p.experiment, p.seeds[0]): recs[p.variant, p.seeds[0]] for p in points},
            "models": models, "errors": errors}


def ratio_interval(num, den, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """mean(num) / mean(den) with a bootstrap interval: num (S, P) of S training seeds and den (P,) on the same P
    prompts; each replicate resamples the seeds and, paired across the two, the prompts."""

    num = np.atleast_2d(num)
    rng = np.random.default_rng(seed)
    S, P = num.shape
    reps = np.empty(n_boot)
    for b in range(n_boot):
        idx, sdx = rng.integers(0, P, size=P), rng.integers(0, S, size=S)
        reps[b] = num[sdx][:, idx].mean() / den[idx].mean()
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return {"ratio": float(num.mean() / den.mean()), "lo": float(lo), "hi": float(hi), "level": level,
            "seeds": S, "prompts": P}


def error_vs_k(run, pair: dict, force: bool = False) -> dict:
    """Section 3: error against k for the trained models and the task's baselines, all on the same test prompts;
    averaging also at its expected value (d + 1) / k. The record holds the 90% bootstrap bands (over seeds and
    prompts), the table at k = d and 2d and the looped / baseline ratios at k = 2d with 95% intervals. Loaded when
    recorded (unless force): the recorded models give the same errors."""

    cfg = run.cfg
    return load_or_run(run, "baselines", f"baselines-{cfg.train.task}", lambda: _error_vs_k(cfg, pair), force=force)


def _error_vs_k(cfg: LoopedStudyConfig, pair: dict) -> dict:
    xs, ys, active = fixed_test_set(cfg.train, cfg.model.n_dims)
    base = baseline_errors(cfg.train.task, xs, ys, active, len(xs))
    errors = {**pair["errors"], **base}
    rows = seed_rows(errors, active)
    if cfg.train.task == "linear_regression":
        rows.append({"model": "averaging, expected (d+1)/k", "seeds": None,
                     **{label: icl.expected_averaging_error(active, k)
                        for label, k in zip(K_LABELS, (active, 2 * active)) if k < xs.shape[1]}})
    k = 2 * active
    ratios = {f"{arm} / {b}": ratio_interval(pair["errors"][arm][:, :, k], base[b][:, k])
              for arm in pair["errors"] for b in ("averaging", "zero") if b in base} if k < xs.shape[1] else {}
    curves = {f"{n}{part}": dict(enumerate(c[stat])) for n, c in bands(errors).items()
              for part, stat in (("", "mean"), (".lo", "lo"), (".hi", "hi"))}
    return {"metrics": {"d": active, "test_prompts": len(xs), "baseline_prompts": len(xs)},
            "tables": {"at_k": rows, "ratios_k2d": [{"comparison": n, **r} for n, r in ratios.items()]},
            "curves": curves}


def error_vs_loops(run, pair: dict, force: bool = False) -> dict:
    """Section 4: error at k = 2d against the number of inference loops, per seed and the mean: does the loop
    settle at a fixed point past the loops it was trained with? Loaded when recorded (unless force)."""

    return load_or_run(run, "loops", "error-vs-inference-loops", lambda: _error_vs_loops(run.cfg, pair), force=force)


def _error_vs_loops(cfg: LoopedStudyConfig, pair: dict) -> dict:
    xs, ys, active = fixed_test_set(cfg.train, cfg.model.n_dims)
    per_seed = {s: errors_vs_loops(pair["models"]["looped", s], xs, ys, active, cfg.eval_loops, 2 * active)
                for s in cfg.seeds}
    mean = {L: float(np.mean([v[L] for v in per_seed.values()])) for L in cfg.eval_loops}
    return {"metrics": {"trained_loops": cfg.model.loops, "k": 2 * active},
            "tables": {"loops": [{"loops": L, "mean": mean[L], **{f"seed {s}": per_seed[s][L] for s in cfg.seeds}}
                                 for L in cfg.eval_loops]}}


def options(run, force: bool = False) -> dict:
    """Section 5: the plain looped model and each seed option, the same number of steps, every option seed, as
    one sweep (recorded points are loaded). Returns {(name, seed): record}."""

    cfg = run.cfg
    tcfg = dataclasses.replace(cfg.train, steps=cfg.option_steps)      # the train's budget: a safety stop only
    variants = {"plain": cfg.model, **{name: dataclasses.replace(cfg.model, **opts)
                                       for name, opts in cfg.options.items()}}
    # the SSM's sequential scan makes it ~3x slower per step: submitted first, it overlaps the short runs
    order = sorted(variants, key=lambda n: not variants[n].use_ssm)
    points = [Point("options", name, (variants[name], tcfg),
                    {"model": dataclasses.asdict(variants[name]), "train": dataclasses.asdict(tcfg)})
              for name in order]
    out = run_points(run, points, train_and_score, cfg.option_seeds, cfg.workers, force, "options")
    return {(n, s): out[n, s] for n in variants for s in cfg.option_seeds}


def task_config(cfg: LoopedStudyConfig, task: str) -> tuple[LoopedConfig, ICLTrainConfig]:
    """A task's model and training: cfg.task_steps steps, b / T in the paper's per-task proportion to linear
    regression's 30 / 15."""
    tb, tt = TASK_LOOPS[task]
    b = max(1, round(cfg.model.loops * tb / 30))
    T = max(1, min(b, round(cfg.model.window * tt / 15)))
    loops = cfg.train.loops
    sched = (icl.Schedule(min(loops.start, b), b, loops.inc, loops.interval) if loops.inc > 0
             else icl.Schedule(b, b, 0, 1))
    tcfg = dataclasses.replace(cfg.train, task=task, steps=cfg.task_steps, loops=sched,
                               test_prompts=min(cfg.train.test_prompts, cfg.baseline_prompts))
    return dataclasses.replace(cfg.model, loops=b, window=T), tcfg


def task_job(mcfg: LoopedConfig, tcfg: ICLTrainConfig, seed: int, device: str = "cpu") -> dict:
    """One task: train, then the looped model and the task's baselines on the same test prompts (table at_k)."""

    res = train_model(mcfg, tcfg, seed, device)
    xs, ys, active = fixed_test_set(tcfg, mcfg.n_dims)
    errors = {"looped": errors_vs_k(res["model"], xs, ys, active),
              **baseline_errors(tcfg.task, xs, ys, active, len(xs))}
    out = {**result_of(res, errors["looped"], active), "status": _status(res)}
    out["tables"] = {"at_k": [{"model": n, **at_k(e.mean(0), active)} for n, e in errors.items()]}
    out["metrics"]["loops"], out["metrics"]["window"] = mcfg.loops, mcfg.window
    return out


def tasks(run, force: bool = False) -> dict:
    """Section 6: each other task against its own baselines, as one sweep. Returns {task: record}."""

    cfg = run.cfg
    points = []
    for task in cfg.tasks:
        mcfg, tcfg = task_config(cfg, task)
        points.append(Point("tasks", task, (mcfg, tcfg),
                            {"model": dataclasses.asdict(mcfg), "train": dataclasses.asdict(tcfg)}))
    out = run_points(run, points, task_job, (run.seed,), cfg.workers, force, "tasks")
    return {task: out[task, run.seed] for task in cfg.tasks}


def regime_point(cfg: LoopedStudyConfig, seed: int = 0, device: str = "cpu") -> dict:
    """One point of a regime search: train the looped model of `cfg` (its train budget), score it on the
    final-setting test set against averaging and least squares (same prompts); a record's parts."""

    res = train_model(cfg.model, cfg.train, seed, device)
    xs, ys, active = fixed_test_set(cfg.train, cfg.model.n_dims)
    err = errors_vs_k(res["model"], xs, ys, active).mean(0)
    base = {n: e.mean(0) for n, e in baseline_errors(cfg.train.task, xs, ys, active, len(xs)).items()}
    out = {"d": active, "steps": res["steps"], "wall_s": res["wall_s"], "steps_per_s": res["steps_per_s"],
           "final_train_loss": list(res["curve"].values())[-1]}
    for label, v in at_k(err, active).items():
        out[f"looped.{label}"] = v
    for name in ("averaging", "least_squares"):
        for label, v in at_k(base[name], active).items():
            out[f"{name}.{label}"] = v
    out["ratio_to_averaging.k=2d"] = out["looped.k=2d"] / out["averaging.k=2d"]
    return {"metrics": out, "params": {"total": res["params"]}, "curves": {"train_loss": res["curve"]}}


def regime_key(cfg: LoopedStudyConfig) -> dict:
    """What a regime point's result depends on: the looped model and its training (not the notebook's sections)."""
    return {"model": dataclasses.asdict(cfg.model), "train": dataclasses.asdict(cfg.train)}


def regime_search(run, points: dict, seed: int = 0, force: bool = False) -> dict:
    """{name: record} for each point {name: dotted overrides of run.cfg}, all under the same train budget,
    cfg.workers at a time, through the sweep runner (recorded points, keyed by their model and training
    settings, are loaded)."""

    out = sweep(run, "regime", {f"regime {n}": o for n, o in points.items()}, regime_point, (seed,),
                run.cfg.workers, force, "regimes", key=regime_key)
    return {n: out[f"regime {n}", seed] for n in points}


# ------------------------------------------------------------------------------------------------ from records


# ------------------------------------------------------------------------------------------------ full-profile plan
def full_plan(notebook: str, b: dict, cfg=None) -> NotebookPlan:
    """The full profile's plan: the looped model's memory and steps/s from the GPU benchmark (helpers.planning)."""
    cfg = cfg or PROFILES["full"]

    with torch.device("meta"):
        n = count_params(LoopedTransformer(cfg.model))
    tokens = cfg.train.batch_size * 2 * cfg.model.n_positions
    # every loop's block activations are kept for backward (fp32): ~20 floats per token and width, per loop
    act = tokens * cfg.model.loops * 20 * cfg.model.width * 4
    mem = MemoryPlan("looped d=20", n, n, 4 * n, 4 * n, 8 * n, act, setting=f"fp32, batch {cfg.train.batch_size}, "
                     f"{cfg.model.loops} loops")
    row = (b.get("cases") or {}).get("05 looped d=20")
    lps, sps = (row["looped_steps_per_s"], row["standard_steps_per_s"]) if row else (None, None)
    seeds = len(cfg.seeds)
    task_steps = sum(max(1, task_config(cfg, t)[0].loops) / cfg.model.loops for t in cfg.tasks) * cfg.task_steps
    work = [(f"looped and standard, {seeds} seeds x {cfg.train.steps:,} steps",
             lps and seeds * cfg.train.steps * (1 / lps + 1 / sps)),
            (f"{len(cfg.options)} options x {cfg.option_steps:,} steps",
             lps and len(cfg.options) * cfg.option_steps / lps),
            (f"{len(cfg.tasks)} tasks x {cfg.task_steps:,} steps (scaled by their loops)", lps and task_steps / lps)]
    return NotebookPlan(notebook, [mem], work, b.get("gpu"),
                        "steps/s measured at the final curriculum point (the largest prompts): an upper bound")
