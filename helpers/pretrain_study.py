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
import os
import time
import warnings
from dataclasses import dataclass, field

from .evaluate import lm_loss
from .memory import training_plan
from .models import NeoXSize, count_params, neox_config
from .paths import REPO_ROOT
from .planning import NotebookPlan
from .pretrain import PretrainConfig, bits_per_char, config_data, generate, new_neox
from .pretrain_report import cell_stats
from .profiles import apply_overrides
from .results import save_result
from .sweep import STATS, Point, grid, run_points, sweep
from .train import TrainConfig, train_causal_lm


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
def run_job(cfg: PretrainStudyConfig, seed: int, device: str = "cpu") -> dict:
    """One sweep point: train the LM for its budget (or steps), evaluate, generate; a record's parts."""

    t0 = time.perf_counter()
    lm = cfg.lm
    d = config_data(lm, cfg.script)
    tok, train, val, refs = d.tok, d.train, d.val, d.references
    model = new_neox(lm.size, tok, seed, device)
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

    try:
        import wandb  # optional here: imported where it is used, so that a machine without it still runs
    except ImportError:                 # optional: a machine without it (e.g. a bare GPU image) still runs the study
        warnings.warn("wandb is not installed: this run is not logged to W&B (pip install wandb to log it)",
                      stacklevel=2)
        return

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

    return sweep(run, experiment, points, run_job, seeds, run.cfg.workers, force, desc, key=run_key)


def batch_grid(run, force: bool = False) -> dict:
    """Section 2: every batch x accumulation cell at the same budget. {(cell, seed): record}."""

    return _sweep(run, "grid", grid(run.cfg.grid), (run.seed,), force, "batch x accum")


def noise(run, grid_records: dict, force: bool = False) -> dict:
    """Section 2b: the best and the worst cell again with cfg.noise_seeds, so their gap can be set against seed
    noise. Returns every grid record (all seeds)."""

    first = cell_stats(grid_records)
    best, worst = min(first, key=lambda c: first[c]["mean"]), max(first, key=lambda c: first[c]["mean"])
    points = grid(run.cfg.grid)
    more = _sweep(run, "grid", {best: points[best], worst: points[worst]}, run.cfg.noise_seeds, force,
                  "best/worst seeds")
    return {**grid_records, **more}


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

    cfg = dataclasses.replace(run.cfg, **{k: v for k, v in record["config"].items() if k != "profile"})
    train = dataclasses.replace(cfg.lm.train, time_budget_s=None, max_steps=int(record["metrics"]["steps"]))
    cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, train=train))
    point = Point("replay", f"replay {record['variant']}", (cfg,), run_key(cfg))
    out = run_points(run, [point], run_job, (record["seed"],), 1, force, "replay")
    return out[point.variant, record["seed"]]


def runner_overhead(run) -> dict | None:
    """The sweep runner's own cost per run in this notebook's sweeps (record lookups, worker start, result transfer,
    record writes), against the training budget of a run; None when every point was loaded from its record."""

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


# ------------------------------------------------------------------------------------------------ full-profile plan
def _grid_cells(declaration: dict):
    for point in grid(declaration).values():
        yield point["lm.train.batch_size"], point["lm.train.grad_accum"]


def full_plan(notebook: str, b: dict, cfg=None) -> NotebookPlan:
    """The full profile's plan: the largest grid cell's memory; time = runs x the budget (helpers.planning)."""
    cfg = cfg or PROFILES["full"]
    lm = cfg.lm
    cells = list(_grid_cells(cfg.grid))
    big = max(bs for bs, _ in cells)
    plan = training_plan("07 LM", neox_config(lm.size, vocab_size=32000), big, lm.block, "bf16-autocast")
    budget = lm.train.time_budget_s
    runs = len(cells) + 2 * len(cfg.noise_seeds) + len(cfg.schedules) + len(cfg.lr_range)
    return NotebookPlan(notebook, [plan], [
        (f"{runs} runs of a {budget / 60:.0f}-minute budget (grid {len(cells)}, noise {2 * len(cfg.noise_seeds)}, "
         f"schedules {len(cfg.schedules)}, lr {len(cfg.lr_range)})", runs * budget)], b.get("gpu"),
        "time-budgeted runs: the time does not depend on the GPU, the steps they reach do")
