"""Notebook 07: pretraining a small Russian LM under a fixed wall-clock budget (seed file 003), as sweeps.

The seed trained a small LM from scratch on Russian Wikipedia with the HF Trainer in 30-minute runs: a W&B sweep
over per-device batch x gradient accumulation (best 6 x 6), hand-made schedules (triangular, then a drop after N
steps; a drop "at minute 20" did not help), high learning rates that "stop converging near loss 4", and 64-token
generations from "В начале было слово". Here every run gets the same seconds of training (a larger batch buys fewer
steps), each sweep is declared once as a W&B grid and run by the project's sweep runner (recorded points are
loaded), and every record keeps steps, tokens seen, tokens/s, eval loss, perplexity, bits per character and two
generations. A time budget makes a result depend on the machine: `replay` reruns a record at its recorded number of
steps with no budget, which any machine reproduces.

Sections: batch_grid, noise (best and worst cell with more seeds), schedules, lr_range, replay; tables, figures and
the conclusion are functions of records, shared with `report()` (Analysis.ipynb).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .models import NeoXSize
from .pretrain import PretrainConfig
from .train import TrainConfig

NOTEBOOK = "07_pretraining"
TITLE = "Pretraining a small Russian LM under a time budget (seed 003)"
SEED_NOTES = {  # seed 003's own numbers (REFERENCE.md section 4 and the seed file)
    "best_cell": (6, 6), "eval_loss_range": (4.2, 4.7), "run_minutes": 30, "runs": 15,
    "summaries": "the file pastes 5 run summaries, of which the last two are the same run twice (identical numbers "
                 "and generation): 4 distinct runs, eval loss 4.20 / 4.69 / 4.71 / 4.73"}


def grid_declaration(batches, accums) -> dict:
    """The batch x accumulation sweep as the W&B sweep configuration the seed would have run."""
    return {"method": "grid", "metric": {"name": "eval_loss", "goal": "minimize"},
            "parameters": {"lm.train.batch_size": {"values": list(batches)},
                           "lm.train.grad_accum": {"values": list(accums)}}}


@dataclass
class PretrainStudyConfig:
    lm: PretrainConfig = field(default_factory=PretrainConfig)
    script: str | None = "cyrillic"         # the corpus must be written in it (None: any)
    grid: dict = field(default_factory=lambda: grid_declaration((4, 6, 8), (4, 6, 8)))
    noise_seeds: tuple = (1, 2)             # the best and the worst cell again with these seeds
    schedules: dict = field(default_factory=dict)    # name -> dotted overrides of this config
    lr_range: tuple = (1e-4, 3e-4, 1e-3, 3e-3)
    lr_schedule: dict = field(default_factory=lambda: {"lm.train.scheduler": "constant"})
    prompt: str = "В начале было слово"
    new_tokens: int = 64
    sample_seed: int = 0
    wandb: bool = False                     # log every run to wandb, offline (WANDB_MODE=offline; sync later)
    workers: int = 1

    def __post_init__(self):
        from .profiles import apply_overrides
        from .sweep import grid

        if isinstance(self.lm, dict):
            self.lm = PretrainConfig(**self.lm)
        if not self.prompt.strip():
            raise ValueError("prompt is empty; give the text the generations continue")
        if self.new_tokens < 1:
            raise ValueError(f"new_tokens must be >= 1, got {self.new_tokens}")
        points = {**grid(self.grid), **self.schedules,
                  **{f"lr={lr}": {**self.lr_schedule, "lm.train.lr": lr} for lr in self.lr_range}}
        for name, over in points.items():       # every point must be a valid config now, not mid-notebook
            bad = [k for k in over if not k.startswith("lm.")]
            if bad:
                raise ValueError(f"sweep point {name!r}: setting(s) {bad} are not settings of the model's training "
                                 "(allowed: keys under 'lm.', e.g. lm.train.lr)")
            apply_overrides(self.lm, {k[3:]: v for k, v in over.items()}, f"sweep point '{name}' (lm)")


def _train(**kw) -> TrainConfig:
    base = dict(max_steps=100_000, batch_size=6, grad_accum=6, lr=1e-3, scheduler="constant", warmup_steps=10,
                eval_every=0, log_every=5, weight_decay=0.1, adam_beta2=0.95, progress=False)
    return TrainConfig(**{**base, **kw})


def seed_schedules(budget_s: float, expected_steps: int, lr: float) -> dict:
    """The schedules the seed tried, at one budget: constant with warmup, linear and cosine decay, a step drop after
    N steps (the seed's final choice), triangular without momentum cycling (the seed's best) and the lr dropped at
    2/3 of the budget (the seed's "minute 20 of 30")."""
    n = max(2, expected_steps // 2)
    return {
        "constant+warmup": {"lm.train.scheduler": "constant"},
        "linear": {"lm.train.scheduler": "linear", "lm.train.max_steps": expected_steps},
        "cosine": {"lm.train.scheduler": "cosine", "lm.train.max_steps": expected_steps},
        "step drop after N": {"lm.train.scheduler": "step", "lm.train.step_every": n, "lm.train.step_gamma": 0.2,
                              "lm.train.step_max_drops": 1},
        "triangular": {"lm.train.scheduler": "triangular", "lm.train.cycle_steps": max(1, n // 2),
                       "lm.train.min_lr_ratio": 0.1},
        "drop at 2/3 of the time": {"lm.train.scheduler": "time_drop", "lm.train.drop_after_s": 2 * budget_s / 3,
                                    "lm.train.step_gamma": 0.1},
    }


_TINY_LM = PretrainConfig(corpus="ru", tokenizer="ru-bpe-8192", size=NeoXSize(hidden=32, layers=2, heads=2), block=32,
                          train_docs=40, eval_blocks=8,
                          train=_train(max_steps=4, batch_size=2, grad_accum=1, lr=3e-3, warmup_steps=1,
                                       log_every=1, time_budget_s=30))
# local: measured on 2 cores, one thread per run: see the notebook's header for the sizes and the budget
_LOCAL_LM = PretrainConfig(corpus="ru", tokenizer="ru-bpe-8192", size=NeoXSize(hidden=64, layers=2, heads=4),
                           block=64, eval_blocks=48,
                           train=_train(batch_size=4, grad_accum=2, lr=3e-3, warmup_steps=10, time_budget_s=20))
PROFILES = {
    "tiny": PretrainStudyConfig(
        lm=_TINY_LM, grid=grid_declaration((2, 4), (1, 2)), noise_seeds=(1,),
        schedules=seed_schedules(30, 4, 3e-3), lr_range=(1e-3, 1e-2), new_tokens=8),
    "local": PretrainStudyConfig(
        lm=_LOCAL_LM, grid=grid_declaration((2, 4, 8), (1, 2, 4)), noise_seeds=(1, 2),
        schedules=seed_schedules(20, 280, 3e-3), lr_range=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1), workers=2),
    "full": PretrainStudyConfig(
        lm=PretrainConfig(corpus="ruwiki", tokenizer="ruwiki-bpe-32000", size=NeoXSize(hidden=768, layers=10, heads=12),
                          block=512, eval_blocks=512,
                          train=_train(lr=5e-4, warmup_steps=200, time_budget_s=1800, log_every=50)),
        grid=grid_declaration((4, 6, 8, 10), (4, 6, 8)), noise_seeds=(1, 2),
        schedules=seed_schedules(1800, 6000, 5e-4), lr_range=(5e-5, 1e-4, 2e-4, 5e-4, 1e-3), wandb=True),
}


# ------------------------------------------------------------------------------------------------ one run
_DATA: dict = {}


def _data(lm: PretrainConfig, script: str | None):
    """(tokenizer, train, validation, {unigram_ce, bigram_ce}), prepared once per process and data setting (a
    sweep's runs share them; worker processes load once, then reuse)."""
    from .pretrain import bigram_cross_entropy, lm_data, unigram_cross_entropy

    key = (lm.corpus, lm.tokenizer, lm.block, lm.train_docs, lm.eval_blocks, script)
    if key not in _DATA:
        tok, train, val, _ = lm_data(lm, script)
        _DATA[key] = (tok, train, val, {"unigram_ce": unigram_cross_entropy(train, val, len(tok)),
                                        "bigram_ce": bigram_cross_entropy(train, val, len(tok))})
    return _DATA[key]


def run_job(cfg: PretrainStudyConfig, seed: int, device: str = "cpu") -> dict:
    """One sweep point: train the LM for its budget (or steps), evaluate, generate; a record's parts."""
    import time

    from .evaluate import lm_loss
    from .models import count_params, from_config, neox_config
    from .pretrain import bits_per_char, generate
    from .train import train_causal_lm

    import torch

    t0 = time.perf_counter()
    lm = cfg.lm
    tok, train, val, refs = _data(lm, cfg.script)

    torch.manual_seed(seed)
    model = from_config(neox_config(lm.size, len(tok), tok.bos_token_id or 0, tok.eos_token_id or 0), device)
    res = train_causal_lm(model, train, None, lm.train, device=device, seed=seed)
    model = res.pop("model")
    ev = lm_loss(model, val, batch_size=16, device=device)
    m = res["metrics"]
    m.update(eval_loss=ev["loss"], eval_ppl=ev["ppl"], eval_tokens=ev["tokens"],
             bits_per_char=bits_per_char(ev["loss"], val, tok), **refs,
             defined_by="time_budget" if lm.train.time_budget_s is not None else "steps",
             sequences_per_step=lm.train.batch_size * lm.train.grad_accum)
    gens = [{"mode": mode, "text": generate(model, tok, cfg.prompt, cfg.new_tokens, sample=mode == "sampled",
                                            seed=cfg.sample_seed, device=device)} for mode in ("greedy", "sampled")]
    m["job_wall_s"] = time.perf_counter() - t0
    out = {"metrics": m, "curves": res["curves"], "tables": {"generations": gens},
           "params": {"total": count_params(model)}, "provenance": res["provenance"]}
    if cfg.wandb:
        log_wandb(cfg, seed, out)
    return out


def log_wandb(cfg: PretrainStudyConfig, seed: int, result: dict) -> None:
    """One offline W&B run per sweep point (curves, summary metrics): `wandb sync wandb/` uploads them later."""
    import os
    import warnings

    try:
        import wandb
    except ImportError:                 # optional: a machine without it (e.g. a bare GPU image) still runs the study
        warnings.warn("wandb is not installed: this run is not logged to W&B (pip install wandb to log it)",
                      stacklevel=2)
        return

    from .paths import REPO_ROOT

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(project="llm-lowrank-lab-07", dir=os.environ.get("LAB_WANDB", str(REPO_ROOT)),
                     config={**dataclasses.asdict(cfg), "seed": seed}, reinit="finish_previous")
    for name in ("train_loss", "lr"):
        for step, v in sorted(result["curves"].get(name, {}).items()):
            run.log({f"train/{name}": v}, step=int(step))
    run.summary.update({k: v for k, v in result["metrics"].items() if isinstance(v, (int, float))})
    run.finish()


# ------------------------------------------------------------------------------------------------ sections
def run_key(cfg: PretrainStudyConfig) -> dict:
    """What determines one run's result: the model, data and training, the script check and the generation
    settings (not the other sweeps declared beside it)."""
    return {"lm": dataclasses.asdict(cfg.lm), "script": cfg.script, "prompt": cfg.prompt,
            "new_tokens": cfg.new_tokens, "sample_seed": cfg.sample_seed}


def _sweep(run, experiment: str, points: dict, seeds: tuple, force: bool, desc: str) -> dict:
    """The sweep runner over {name: dotted overrides}, each record keyed by run_key of its config."""
    from .sweep import sweep

    return sweep(run, experiment, points, run_job, seeds, run.cfg.workers, force, desc, key=run_key)


def batch_grid(run, force: bool = False) -> dict:
    """Section 2: every batch x accumulation cell at the same budget. {(cell, seed): record}."""
    from .sweep import grid

    return _sweep(run, "grid", grid(run.cfg.grid), (run.seed,), force, "batch x accum")


def cell_stats(records) -> dict:
    """{cell: {"mean", "sd", "n", "losses", "tokens", "steps"}} over the seeds of each cell."""
    import numpy as np

    out = {}
    for r in (records.values() if isinstance(records, dict) else records):
        out.setdefault(r["variant"], []).append(r["metrics"])
    return {c: {"mean": float(np.mean([m["eval_loss"] for m in ms])),
                "sd": float(np.std([m["eval_loss"] for m in ms], ddof=1)) if len(ms) > 1 else None,
                "n": len(ms), "losses": [m["eval_loss"] for m in ms],
                "tokens": float(np.mean([m["tokens"] for m in ms])), "steps": float(np.mean([m["steps"] for m in ms]))}
            for c, ms in out.items()}


def noise(run, grid_records: dict, force: bool = False) -> dict:
    """Section 2b: the best and the worst cell again with cfg.noise_seeds, so their gap can be set against seed
    noise. Returns every grid record (all seeds)."""
    from .sweep import grid

    first = cell_stats(grid_records)
    best, worst = min(first, key=lambda c: first[c]["mean"]), max(first, key=lambda c: first[c]["mean"])
    points = grid(run.cfg.grid)
    more = _sweep(run, "grid", {best: points[best], worst: points[worst]}, run.cfg.noise_seeds, force,
                  "best/worst seeds")
    return {**grid_records, **more}


def grid_verdict(records: dict) -> dict:
    """Best vs worst cell (by mean eval loss over its seeds): the gap, each cell's sd, Welch's t-test (n and degrees
    of freedom); "n = 1: no test" when a cell has one seed."""
    from .stats import welch_samples

    cs = cell_stats(records)
    multi = {c: s for c, s in cs.items() if s["n"] > 1} or cs
    best, worst = min(multi, key=lambda c: multi[c]["mean"]), max(multi, key=lambda c: multi[c]["mean"])
    b, w = cs[best], cs[worst]
    out = {"best": best, "worst": worst, "best_mean": b["mean"], "worst_mean": w["mean"],
           "gap": w["mean"] - b["mean"], "best_sd": b["sd"], "worst_sd": w["sd"], "n_best": b["n"],
           "n_worst": w["n"]}
    c = welch_samples(w["losses"], b["losses"])                   # the shared comparison helper (helpers/stats.py)
    if c.p is None:
        out.update(test=c.test, p=None, df=None)
        return out
    out.update(test=c.test, t=c.t, p=c.p, df=c.df, beyond_noise=bool(c.p < 0.05))
    return out


def schedules(run, force: bool = False) -> dict:
    """Section 3: the seed's schedules at the same budget and the profile's base batch x accumulation."""
    return _sweep(run, "schedules", run.cfg.schedules, (run.seed,), force, "schedules")


def lr_range(run, force: bool = False) -> dict:
    """Section 4: peak learning rate over ~1.5-2 decades (constant with warmup): where training stops converging."""
    points = {f"lr={lr}": {**run.cfg.lr_schedule, "lm.train.lr": lr} for lr in run.cfg.lr_range}
    return _sweep(run, "lr_range", points, (run.seed,), force, "lr range")


def replay(run, record: dict, force: bool = False) -> dict:
    """Section 5: a time-budget record rerun at its recorded number of steps with no budget (what any machine can
    reproduce); returns the replay's record, whose eval loss should equal the original's on the same machine."""
    from .sweep import Point, run_points

    cfg = dataclasses.replace(run.cfg, **{k: v for k, v in record["config"].items() if k != "profile"})
    train = dataclasses.replace(cfg.lm.train, time_budget_s=None, max_steps=int(record["metrics"]["steps"]))
    cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, train=train))
    point = Point("replay", f"replay {record['variant']}", (cfg,), run_key(cfg))
    out = run_points(run, [point], run_job, (record["seed"],), 1, force, "replay")
    return out[point.variant, record["seed"]]


def runner_overhead(run) -> dict | None:
    """The sweep runner's own cost per run in this notebook's sweeps (record lookups, worker start, result transfer,
    record writes), against the training budget of a run; None when every point was loaded from its record."""
    from .results import save_result
    from .sweep import STATS

    if not STATS:
        return None
    runs = sum(s["runs"] for s in STATS)
    per_run = sum(s["overhead_per_run_s"] * s["runs"] for s in STATS) / runs
    budget = run.cfg.lm.train.time_budget_s
    return save_result(run, "runner", "sweep-runner-overhead",
                       {"metrics": {"runs": runs, "overhead_per_run_s": per_run, "budget_s": budget,
                                    "overhead_share_of_budget": per_run / budget},
                        "tables": {"sweeps": [dict(s) for s in STATS]}},
                       config={"lm": dataclasses.asdict(run.cfg.lm), "workers": run.cfg.workers})


# ------------------------------------------------------------------------------------------------ from records
def run_table(records, extra: tuple = ()):
    """One row per record: the numbers every run keeps."""
    import pandas as pd

    cols = ("steps", "tokens", "tokens_per_s", "eval_loss", "eval_ppl", "bits_per_char", *extra)
    rows = [{"run": r["variant"], "seed": r["seed"], **{c: r["metrics"].get(c) for c in cols}}
            for r in (records.values() if isinstance(records, dict) else records)]
    return pd.DataFrame(rows).set_index(["run", "seed"]) if rows else pd.DataFrame()


def _cell(name: str) -> tuple[int, int]:
    parts = dict(p.split("=") for p in name.split(","))
    return int(parts["lm.train.batch_size"]), int(parts["lm.train.grad_accum"])


def grid_figure(records):
    """Heatmap of eval loss (mean over seeds) per batch x accumulation cell, tokens seen in each cell."""
    import matplotlib.pyplot as plt
    import numpy as np

    cs = cell_stats(records)
    batches = sorted({_cell(c)[0] for c in cs})
    accums = sorted({_cell(c)[1] for c in cs})
    data = np.full((len(batches), len(accums)), np.nan)
    fig, ax = plt.subplots(figsize=(1.6 * len(accums) + 2, 1.1 * len(batches) + 1.5))
    for c, s in cs.items():
        i, j = batches.index(_cell(c)[0]), accums.index(_cell(c)[1])
        data[i, j] = s["mean"]
        ax.text(j, i, f"{s['mean']:.3f}" + (f"\n±{s['sd']:.3f} (n={s['n']})" if s["sd"] is not None else "")
                + f"\n{s['tokens'] / 1e3:.0f}k tok", ha="center", va="center", fontsize=7, color="white")
    im = ax.imshow(data, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(accums)), [str(a) for a in accums])
    ax.set_yticks(range(len(batches)), [str(b) for b in batches])
    ax.set_xlabel("gradient accumulation")
    ax.set_ylabel("per-device batch")
    ax.set_title("eval loss at equal wall-clock budget")
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig


def schedules_figure(records: dict):
    """Learning rate and training loss against step for every schedule (one figure, two panels)."""
    import matplotlib.pyplot as plt

    from . import plots

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    recs = list(records.values())
    plots.curves(a1, {r["variant"]: r["curves"]["lr"] for r in recs}, title="learning rate", ylabel="lr")
    plots.curves(a2, {r["variant"]: r["curves"]["train_loss"] for r in recs}, title="training loss",
                 hlines={"unigram": recs[0]["metrics"]["unigram_ce"], "bigram": recs[0]["metrics"]["bigram_ce"]})
    fig.tight_layout()
    return fig


def lr_rows(records: dict) -> list[dict]:
    return sorted(({"lr": r["config"]["lm"]["train"]["lr"], "eval_loss": r["metrics"]["eval_loss"],
                    "steps": r["metrics"]["steps"]} for r in records.values()), key=lambda x: x["lr"])


def divergence_lr(rows: list[dict], tol: float = 0.25) -> float | None:
    """The smallest lr above the best one whose eval loss is worse than the best by more than `tol` nats (or not
    finite): where training stops converging."""
    import math

    ok = [r for r in rows if r["eval_loss"] is not None and math.isfinite(r["eval_loss"])]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["eval_loss"])
    for r in rows:
        if r["lr"] > best["lr"] and (r["eval_loss"] is None or not math.isfinite(r["eval_loss"])
                                     or r["eval_loss"] > best["eval_loss"] + tol):
            return r["lr"]
    return None


def lr_figure(records: dict):
    import matplotlib.pyplot as plt

    from . import plots

    rows = lr_rows(records)
    any_rec = next(iter(records.values()))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    plots.curves(ax, {"eval loss": {r["lr"]: r["eval_loss"] for r in rows}}, title="peak learning rate",
                 ylabel="eval loss", xlabel="learning rate",
                 hlines={"unigram": any_rec["metrics"]["unigram_ce"], "bigram": any_rec["metrics"]["bigram_ce"]})
    div = divergence_lr(rows)
    if div is not None:
        ax.axvline(div, color="tab:red", ls=":", label=f"stops converging ({div:g})")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    return fig


def generations_table(*groups):
    """Greedy and sampled continuations of the prompt for every run, beside its eval loss."""
    import pandas as pd

    rows = []
    for records in groups:
        for r in records.values():
            g = {x["mode"]: x["text"] for x in r["tables"]["generations"]}
            rows.append({"sweep": r["experiment"], "run": r["variant"], "seed": r["seed"],
                         "eval_loss": round(r["metrics"]["eval_loss"], 3), "greedy": g.get("greedy"),
                         "sampled": g.get("sampled")})
    return pd.DataFrame(rows)


def conclusion(grid_records: dict, schedule_records: dict, lr_records: dict, replayed: dict | None = None) -> str:
    v = grid_verdict(grid_records)
    b, w = _cell(v["best"]), _cell(v["worst"])
    any_rec = next(iter(grid_records.values()))
    m = any_rec["metrics"]
    budget = any_rec["config"]["lm"]["train"]["time_budget_s"]
    lines = [f"every run trained {budget:g} s (equal wall-clock budget); references: unigram {m['unigram_ce']:.3f}, "
             f"bigram {m['bigram_ce']:.3f} nats/token on the validation split."]
    noise_txt = (f"{v['test']}: t = {v['t']:.2f}, df = {v['df']:.1f}, p = {v['p']:.3f} -> "
                 f"{'beyond' if v['beyond_noise'] else 'within'} seed noise" if v["p"] is not None else v["test"])
    lines.append(f"batch x accumulation: best cell {b[0]} x {b[1]} ({v['best_mean']:.3f}, n = {v['n_best']}), worst "
                 f"{w[0]} x {w[1]} ({v['worst_mean']:.3f}, n = {v['n_worst']}), gap {v['gap']:.3f} nats; {noise_txt}. "
                 f"The seed's best was {SEED_NOTES['best_cell'][0]} x {SEED_NOTES['best_cell'][1]} at its scale.")
    sched = sorted(schedule_records.values(), key=lambda r: r["metrics"]["eval_loss"])
    lines.append("schedules (one seed each): " + ", ".join(f"{r['variant']} {r['metrics']['eval_loss']:.3f}"
                                                           for r in sched)
                 + f"; best: {sched[0]['variant']}, {sched[-1]['metrics']['eval_loss'] - sched[0]['metrics']['eval_loss']:.3f}"
                   " nats ahead of the worst (compare with the seed sd above)")
    rows = lr_rows(lr_records)
    div = divergence_lr(rows)
    lines.append("peak lr: " + ", ".join(f"{r['lr']:g} -> {r['eval_loss']:.3f}" for r in rows)
                 + (f"; training stops converging from lr {div:g}" if div else "; no lr in the range diverged"))
    runs = [r for g in (grid_records, schedule_records) for r in g.values()]
    uni = sum(r["metrics"]["eval_loss"] < r["metrics"]["unigram_ce"] for r in runs)
    bi = sum(r["metrics"]["eval_loss"] < r["metrics"]["bigram_ce"] for r in runs)
    lines.append(f"of {len(runs)} grid and schedule runs, {uni} beat the unigram reference (context-free) and {bi} the "
                 "bigram table of the whole train split (previous token only).")
    if replayed:
        for orig, rep in replayed.items():
            lines.append(f"replay of {orig} at its {rep['metrics']['steps']} recorded steps (no budget): eval loss "
                         f"{rep['metrics']['eval_loss']:.4f} vs {replayed_original(grid_records, orig, rep['seed']):.4f} "
                         "in the "
                         f"time-budget run")
    return "\n".join(lines)


def replayed_original(grid_records: dict, variant: str, seed: int) -> float:
    return next(r["metrics"]["eval_loss"] for r in grid_records.values()
                if r["variant"] == variant and r["seed"] == seed)


def pd_series(metrics: dict):
    import pandas as pd

    return pd.Series(metrics).to_frame("value")


def report(records: list[dict]):
    """Analysis.ipynb's section for notebook 07, from records only (no torch)."""
    from .analysis import Report, by_experiment

    rep = Report(TITLE, records)
    recs = by_experiment(rep.records)
    as_dict = {e: {(r["variant"], r["seed"]): r for r in rs} for e, rs in recs.items()}
    if as_dict.get("grid"):
        rep.figure("batch x accumulation", grid_figure(as_dict["grid"]))
        rep.table("batch x accumulation runs", run_table(as_dict["grid"]))
    if as_dict.get("schedules"):
        rep.figure("schedules", schedules_figure(as_dict["schedules"]))
        rep.table("schedules", run_table(as_dict["schedules"]))
    if as_dict.get("lr_range"):
        rep.figure("learning-rate range", lr_figure(as_dict["lr_range"]))
    if as_dict.get("runner"):
        rec = next(iter(as_dict["runner"].values()))
        rep.table("the sweep runner's own cost per run", pd_series(rec["metrics"]))
    groups = [as_dict[e] for e in ("grid", "schedules", "lr_range") if as_dict.get(e)]
    if groups:
        rep.table("generations from the seed's prompt", generations_table(*groups))
    if all(as_dict.get(e) for e in ("grid", "schedules", "lr_range")):
        replayed = {r["variant"].removeprefix("replay "): r for r in recs.get("replay", [])}
        rep.text = conclusion(as_dict["grid"], as_dict["schedules"], as_dict["lr_range"], replayed)
    return rep
