"""Notebook 05: training and evaluating looped and standard transformers on in-context tasks (seed 002).

The fixed test set is generated at the FINAL curriculum setting (the seed's test set used the starting one, so its
"test loss" never measured the final task); an optional second test set at the start is labelled as such.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from . import icl
from .looped import LoopedConfig, LoopedTransformer, count_params

NOTEBOOK = "05_looped_transformer"


@dataclass
class ICLTrainConfig:
    task: str = "linear_regression"
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-4
    warmup: int = 0
    time_budget_s: float | None = None
    dims: icl.Schedule = field(default_factory=lambda: icl.Schedule(5, 20, 1, 5000))
    points: icl.Schedule = field(default_factory=lambda: icl.Schedule(11, 41, 2, 5000))
    loops: icl.Schedule = field(default_factory=lambda: icl.Schedule(15, 30, 2, 500))
    test_prompts: int = 1280
    log_every: int = 50

    def __post_init__(self):
        for name in ("dims", "points", "loops"):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, icl.Schedule(**getattr(self, name)))
        if self.task not in icl.TASKS:
            raise ValueError(f"unknown task '{self.task}'; allowed: {', '.join(icl.TASKS)}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        if self.loops.end > 100 and self.loops.start == 20:
            warnings.warn(f"loops {self.loops.start} -> {self.loops.end}: the seed config's placeholder, which both "
                          "original run scripts override (b = 30 for linear regression)", stacklevel=2)


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
    baseline_prompts: int = 256
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
        if any(L < 1 for L in self.eval_loops):
            raise ValueError(f"inference loops must be >= 1, got {self.eval_loops}")
        for opts in self.options.values():
            dataclasses.replace(self.model, **opts)          # validate every option now, not mid-notebook
        bad = [t for t in self.tasks if t not in icl.TASKS]
        if bad:
            raise ValueError(f"unknown task(s) {bad}; allowed: {', '.join(icl.TASKS)}")


def fixed_test_set(cfg: ICLTrainConfig, n_dims: int, at: str = "final", seed: int = 1234):
    """A fixed test set (xs, ys, active dims) at the curriculum's final (or, labelled, start) setting."""
    g = torch.Generator().manual_seed(seed)
    active = cfg.dims.end if at == "final" else cfg.dims.start
    n = cfg.points.end if at == "final" else cfg.points.start
    xs = icl.sample_xs(cfg.test_prompts, n, n_dims, active, g)
    return xs, icl.sample_task(cfg.task, xs, active, g), active


def train_model(mcfg: LoopedConfig, tcfg: ICLTrainConfig, seed: int = 0, device: str = "cpu") -> dict:
    """Adam on fresh prompts every step with the curricula; returns the model, curves, steps/s and wall time."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = LoopedTransformer(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(tcfg.warmup, 1)))
    curve, t0, step = {}, time.perf_counter(), 0
    for step in range(1, tcfg.steps + 1):
        active, n = tcfg.dims(step), tcfg.points(step)
        xs = icl.sample_xs(tcfg.batch_size, n, mcfg.n_dims, active, g)
        ys = icl.sample_task(tcfg.task, xs, active, g)
        b = tcfg.loops(step) if mcfg.looped else 1
        preds = model(xs.to(device), ys.to(device), loops=b, window=min(mcfg.window, b))
        loss = sum(((p - ys.to(device)) ** 2).mean() for p in preds) / len(preds) / active
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % tcfg.log_every == 0 or step == 1:
            curve[step] = loss.item()
        if tcfg.time_budget_s is not None and time.perf_counter() - t0 >= tcfg.time_budget_s:
            break
    wall = time.perf_counter() - t0
    return {"model": model, "curve": curve, "steps": step, "wall_s": wall, "steps_per_s": step / wall,
            "params": count_params(model)}


@torch.no_grad()
def errors_vs_k(model, xs, ys, active: int, loops: int | None = None) -> np.ndarray:
    """Normalized squared error per prompt and position (P, n) of the model's last-loop prediction."""
    model.eval()
    pred = model(xs, ys, loops=loops, window=1)[-1]
    return icl.normalized_sq_error(pred, ys, active).numpy()


def baseline_errors(task: str, xs, ys, active: int, n_prompts: int) -> dict:
    out = {}
    for name in icl.TASK_BASELINES[task]:
        pred = icl.BASELINES[name](xs[:n_prompts], ys[:n_prompts])
        out[name] = icl.normalized_sq_error(pred, ys[:n_prompts], active).numpy()
    out["zero"] = icl.normalized_sq_error(torch.zeros_like(ys[:n_prompts]), ys[:n_prompts], active).numpy()
    return out


def curve_summary(errors: dict, active: int) -> dict:
    """{name: {"mean", "lo", "hi"} lists over k} plus the table at k = d and k = 2d; errors per name are (P, n) or,
    over training seeds, (S, P, n) (the band then covers seeds and prompts)."""
    out, table = {}, {}
    for name, e in errors.items():
        mean, lo, hi = icl.bootstrap_band(e)
        out[name] = {"mean": mean.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}
        table[name] = {f"k={k}": float(mean[k]) for k in (active, 2 * active) if k < len(mean)}
    return {"curves": out, "table": table}


def errors_vs_loops(model, xs, ys, active: int, loops: tuple, k: int) -> dict:
    """Error at k in-context examples against the number of inference loops: does the loop reach a fixed point?"""
    return {L: float(errors_vs_k(model, xs, ys, active, loops=L)[:, k].mean()) for L in loops}


def loops_by_seed(trained: dict, xs, ys, active: int, loops: tuple, k: int) -> dict:
    """{seed: {loops: error at k}} for every looped model of a {(name, seed): result} dict, plus "mean" over seeds."""
    out = {seed: errors_vs_loops(r["model"], xs, ys, active, loops, k)
           for (name, seed), r in trained.items() if name == "looped"}
    out["mean"] = {L: float(np.mean([v[L] for v in out.values()])) for L in loops}
    return out


# ------------------------------------------------------------------------------------------------ notebook sections
def standard_config(cfg: LoopedStudyConfig) -> LoopedConfig:
    return dataclasses.replace(cfg.model, looped=False, n_layer=cfg.standard_layers, feed_block=False,
                               save_n_tokens=0, skip_connection=False)


def result_of(res: dict, errors: np.ndarray | None = None, active: int | None = None) -> dict:
    """A run record's parts: metrics (error at k = d and 2d on the final-setting test set, as err.k=d and
    err.k=2d, with d), curves, params."""
    metrics = {"steps": res["steps"], "wall_s": res["wall_s"], "steps_per_s": res["steps_per_s"]}
    curves = {"train_loss": res["curve"]}
    if errors is not None:
        mean = errors.mean(0)
        metrics.update({f"err.{label}": float(mean[k]) for label, k in (("k=d", active), ("k=2d", 2 * active))
                        if k < len(mean)})
        metrics["d"] = active
        curves["err_vs_k"] = {k: float(v) for k, v in enumerate(mean)}
    return {"metrics": metrics, "curves": curves, "params": {"total": res["params"]},
            "provenance": {"wall_s": res["wall_s"], "steps_per_s": res["steps_per_s"]}}


def looped_vs_standard(cfg: LoopedStudyConfig, device: str = "cpu") -> dict:
    """{(name, seed): result} for name in (looped, standard) and every seed of cfg.seeds: the looped model and a
    standard transformer of equal width trained for the same wall time (with workers > 1 each pair runs side by side,
    one core each, so both see the same machine load); with no time budget, for the same number of steps."""
    from .parallel import map_processes

    jobs = {}
    for seed in cfg.seeds:
        jobs[("looped", seed)] = (cfg.model, cfg.train, seed, device)
        jobs[("standard", seed)] = (standard_config(cfg), cfg.train, seed, device)
    return map_processes(train_model, jobs, cfg.workers, "looped vs standard", device)


def seed_errors(trained: dict, xs, ys, active: int) -> dict:
    """{(name, seed): result} -> {name: errors (S, P, n)} on the fixed test set, seeds stacked in order."""
    names = dict.fromkeys(name for name, _ in trained)
    return {n: np.stack([errors_vs_k(r["model"], xs, ys, active) for (m, _), r in trained.items() if m == n])
            for n in names}


def options_study(cfg: LoopedStudyConfig, device: str = "cpu") -> dict:
    """{(name, seed): result}: the plain looped model and each seed option trained for the same number of steps,
    for every seed of cfg.option_seeds."""
    from .parallel import map_processes

    tcfg = dataclasses.replace(cfg.train, steps=cfg.option_steps, time_budget_s=None)
    variants = {"plain": cfg.model, **{name: dataclasses.replace(cfg.model, **opts)
                                       for name, opts in cfg.options.items()}}
    # the SSM's sequential scan makes it ~3x slower per step: submitted first, it overlaps the short runs
    order = sorted(variants, key=lambda n: not variants[n].use_ssm)
    jobs = {(name, seed): (variants[name], tcfg, seed, device) for seed in cfg.option_seeds for name in order}
    out = map_processes(train_model, jobs, cfg.workers, "options", device)
    return {(name, seed): out[name, seed] for seed in cfg.option_seeds for name in variants}


def seed_table(errors: dict, active: int, extra: dict | None = None) -> "pd.DataFrame":
    """One row per model: error at k = d and k = 2d as the mean over seeds (each seed's mean over the test prompts)
    and the standard deviation across seeds; `extra` {name: {column: value}} adds columns."""
    import pandas as pd

    rows = {}
    for name, e in errors.items():
        per_seed = e.mean(1) if e.ndim == 3 else e.mean(0)[None]                  # (S, n)
        row = {"seeds": per_seed.shape[0]}
        for label, k in (("k=d", active), ("k=2d", 2 * active)):
            row[label] = float(per_seed[:, k].mean())
            row[f"{label} sd"] = float(per_seed[:, k].std(ddof=1)) if per_seed.shape[0] > 1 else float("nan")
        rows[name] = {**row, **(extra or {}).get(name, {})}
    return pd.DataFrame(rows).T


def regime_point(cfg: LoopedStudyConfig, seed: int = 0, device: str = "cpu") -> dict:
    """Train the looped model of `cfg` (its train budget) and score it on the final-setting test set against
    averaging and least squares: the metrics of one point of a regime search (no model is returned)."""
    res = train_model(cfg.model, cfg.train, seed, device)
    xs, ys, active = fixed_test_set(cfg.train, cfg.model.n_dims)
    err = errors_vs_k(res["model"], xs, ys, active).mean(0)
    base = {n: e.mean(0) for n, e in baseline_errors(cfg.train.task, xs, ys, active, len(xs)).items()}
    out = {"d": active, "steps": res["steps"], "wall_s": res["wall_s"], "steps_per_s": res["steps_per_s"],
           "params": res["params"], "final_train_loss": list(res["curve"].values())[-1]}
    for label, k in (("k=d", active), ("k=2d", 2 * active)):
        out[f"looped.{label}"] = float(err[k])
        out[f"averaging.{label}"] = float(base["averaging"][k])
        out[f"least_squares.{label}"] = float(base["least_squares"][k])
    out["ratio_to_averaging.k=2d"] = out["looped.k=2d"] / out["averaging.k=2d"]
    return out


def regime_search(cfg: LoopedStudyConfig, variants: dict, seed: int = 0, device: str = "cpu") -> dict:
    """{name: metrics} for each variant {name: dotted overrides of cfg} (e.g. {"model.width": 32}), every point
    under the same train budget, `cfg.workers` at a time."""
    from .parallel import map_processes
    from .profiles import apply_overrides

    jobs = {name: (apply_overrides(cfg, over, f"regime '{name}'"), seed, device) for name, over in variants.items()}
    return map_processes(regime_point, jobs, cfg.workers, "regimes", device)


def at_dims(cfg: LoopedStudyConfig, d: int) -> dict:
    """Overrides that move a study to regression dimension d with 2d + 3 points (k = 2d is then inside the prompt)."""
    n = 2 * d + 3
    return {"model.n_dims": d, "model.n_positions": n, "train.dims": _fixed(d), "train.points": _fixed(n)}


# the paper's loops per task (b, T); at other scales the profile's own loops are scaled by the same ratio
TASK_LOOPS = {"linear_regression": (30, 15), "noisy_linear_regression": (30, 15), "sparse_linear_regression": (20, 10),
              "decision_tree": (70, 15), "relu_2nn": (12, 5)}


def tasks_study(cfg: LoopedStudyConfig, seed: int = 0, device: str = "cpu") -> dict:
    """Each task: a looped model trained cfg.task_steps steps (b/T in the paper's per-task proportion to linear
    regression's 30/15), evaluated against the task's baselines at the final curriculum setting."""
    from .parallel import map_processes

    jobs = {}
    for task in cfg.tasks:
        tb, tt = TASK_LOOPS[task]
        b = max(1, round(cfg.model.loops * tb / 30))
        T = max(1, min(b, round(cfg.model.window * tt / 15)))
        loops = cfg.train.loops
        sched = (icl.Schedule(min(loops.start, b), b, loops.inc, loops.interval) if loops.inc > 0
                 else icl.Schedule(b, b, 0, 1))
        tcfg = dataclasses.replace(cfg.train, task=task, steps=cfg.task_steps, time_budget_s=None, loops=sched,
                                   test_prompts=min(cfg.train.test_prompts, cfg.baseline_prompts))
        jobs[task] = (dataclasses.replace(cfg.model, loops=b, window=T), tcfg, seed, device)
    trained = map_processes(train_model, jobs, cfg.workers, "tasks", device)
    out = {}
    for task, res in trained.items():
        mcfg, tcfg = jobs[task][:2]
        xs, ys, active = fixed_test_set(tcfg, cfg.model.n_dims)
        errs = {"looped": errors_vs_k(res["model"], xs, ys, active)}
        errs.update(baseline_errors(task, xs, ys, active, len(xs)))
        out[task] = {"train": res, "errors": errs, "active": active, "loops": (mcfg.loops, mcfg.window)}
    return out


def _fixed(v: int) -> icl.Schedule:
    return icl.Schedule(v, v, 0, 1)


# local: chosen by benchmarks/looped_regime.py (records in results/05_looped_transformer/regime-*): see the notebook.
PROFILES = {
    "tiny": LoopedStudyConfig(
        model=LoopedConfig(n_dims=2, n_positions=6, width=16, n_head=2, loops=3, window=2, token_format="extra_dim"),
        standard_layers=2,
        train=ICLTrainConfig(steps=4, batch_size=16, lr=1e-3, dims=_fixed(2), points=_fixed(6), loops=_fixed(3),
                             test_prompts=32, log_every=1),
        option_steps=3, eval_loops=(1, 2, 6), seeds=(0, 1), baseline_prompts=16, task_steps=3),
    "local": LoopedStudyConfig(
        model=LoopedConfig(n_dims=4, n_positions=11, width=64, n_head=4, loops=8, window=4, token_format="extra_dim"),
        standard_layers=3,
        train=ICLTrainConfig(steps=100_000, batch_size=128, lr=1e-3, warmup=50, time_budget_s=150, dims=_fixed(4),
                             points=_fixed(11), loops=icl.Schedule(4, 8, 2, 100), test_prompts=1024, log_every=50),
        option_steps=1200, eval_loops=(1, 2, 4, 8, 16, 32, 64), seeds=(0, 1, 2), baseline_prompts=256,
        task_steps=500, workers=2),
    "full": LoopedStudyConfig(
        model=LoopedConfig(n_dims=20, n_positions=41, width=256, n_head=8, loops=30, window=15), standard_layers=12,
        train=ICLTrainConfig(steps=100_000, batch_size=64, lr=1e-4, dims=icl.Schedule(5, 20, 1, 5000),
                             points=icl.Schedule(11, 41, 2, 5000), loops=icl.Schedule(15, 30, 2, 500),
                             test_prompts=1280, log_every=500),
        option_steps=20_000, eval_loops=(1, 5, 10, 20, 30, 50, 100, 200, 500), seeds=(0, 1, 2),
        baseline_prompts=512, task_steps=100_000),
}


def conclusion(table, by_loops: dict, options, active: int) -> str:
    """Sentences from the measured numbers: the targets at k = 2d, the fixed-point behaviour and the options.
    table and options are `seed_table` frames; by_loops is {loops: mean error at k = 2d}."""
    def cell(frame, name, col="k=2d"):
        sd = frame.loc[name].get(f"{col} sd", float("nan"))
        return f"{frame.loc[name, col]:.3f}" + (f" +- {sd:.3f}" if sd == sd else "")

    lines = []
    if "averaging" in table.index:
        lo, av = table.loc["looped", "k=2d"], table.loc["averaging", "k=2d"]
        lines.append(f"at k = 2d = {2 * active} (mean +- sd over {int(table.loc['looped', 'seeds'])} training seeds): "
                     f"looped {cell(table, 'looped')}, standard {cell(table, 'standard')}, averaging {av:.3f}, least "
                     f"squares {table.loc['least_squares', 'k=2d']:.3g}; looped / averaging = {lo / av:.2f} "
                     f"(target <= 1/3)")
    loops = sorted(by_loops)
    lines.append("error at k = 2d against inference loops: " + ", ".join(f"{b}: {by_loops[b]:.3f}" for b in loops)
                 + (" (stable past the trained loops)" if by_loops[loops[-1]] <= 1.5 * min(by_loops.values()) + 1e-3
                    else " (drifts away: no stable fixed point)"))
    for name in options.index:
        if name != "plain":
            lines.append(f"option {name}: k = 2d error {cell(options, name)} vs plain {cell(options, 'plain')}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ Analysis.ipynb
def records_summary(sub) -> "pd.DataFrame":
    """Per-seed records of one notebook run (the config hash of its newest `baselines` record) -> one row per
    (experiment, variant): mean and sd over seeds of the error at k = d and k = 2d, steps, steps/s, params."""
    import pandas as pd

    base = sub[sub.experiment == "baselines"].sort_values("created")
    if not len(base):
        return pd.DataFrame()
    run_hash = base.iloc[-1]["run_id"].rsplit("-", 2)[-2]
    rows = sub[sub.experiment.isin(["looped", "standard", "options"])
               & (sub.run_id.str.rsplit("-", n=2).str[-2] == run_hash)]
    cols = {"metrics.err.k=d": "k=d", "metrics.err.k=2d": "k=2d", "metrics.steps": "steps",
            "metrics.steps_per_s": "steps/s", "params.total": "params"}
    rows = rows[["experiment", "variant", "seed", *[c for c in cols if c in rows]]].rename(columns=cols)
    g = rows.groupby(["experiment", "variant"])
    out = g[["k=d", "k=2d", "steps", "steps/s", "params"]].mean()
    out["k=d sd"], out["k=2d sd"], out["seeds"] = g["k=d"].std(), g["k=2d"].std(), g["seed"].count()
    return out[["seeds", "k=d", "k=d sd", "k=2d", "k=2d sd", "steps", "steps/s", "params"]]


def bands_from_curves(curves: dict) -> dict:
    """A baselines record's curves {name, name.lo, name.hi: {k: value}} -> plots.bands series, ordered by k."""
    def ordered(c):
        return [v for _, v in sorted(c.items(), key=lambda kv: int(kv[0]))]

    return {n: {"mean": ordered(c), "lo": ordered(curves.get(f"{n}.lo", c)), "hi": ordered(curves.get(f"{n}.hi", c))}
            for n, c in curves.items() if "." not in n}
