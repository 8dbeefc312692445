"""Notebook 07: pretraining a small Russian LM under a fixed budget (seed file 003), as sweeps over training seeds:
the sections the notebook runs.

Sections, in the notebook's order (each returns {(variant, seed): record}, loaded where recorded):
  1. data_check        the inputs checked before any run; tokens per split, the unigram / bigram references and the
                       bigram table's own continuation of the prompt
  2. equal_time_grid   every batch x accumulation cell at the same training budget
  3. reruns            the base cell, seed 0, again: the noise of the budget itself
  4. equal_token_grid  the same cells at an equal number of tokens (when configured)
  5. schedules         the seed's schedules at the base cell, steps-defined
  6. lr_range          peak learning rate over ~2 decades, steps-defined
     runner_overhead   the sweep runner's own cost per run against a run's budget
`sweeps(run)` gives the sweeps the sections run (helpers.points runs one point of them). The config, PROFILES and
the design are helpers.pretraining.config, the data checks .data, the jobs .runs, the GPU plan .plan.
"""
from __future__ import annotations

import dataclasses

from ..profiles import apply_overrides
from ..results import keyed, load_or_run, save_result
from ..sweep import STATS, Point, Sweep, overrides_sweep, run_sweep
from .config import PROFILES, cells
from .data import bigram_sample, check_inputs, complete_words, valid_words, word_share
from .plan import full_plan
from .runs import run_job, run_key

# the notebook's sections, what the family registry reads (PROFILES, full_plan) and helpers.points (sweeps)
__all__ = ["PROFILES", "full_plan", "sweeps", "data_check", "equal_time_grid", "reruns", "equal_token_grid",
           "schedules", "lr_range", "runner_overhead"]


# ------------------------------------------------------------------------------------------------ sections
def data_check(run, force: bool = False) -> dict:
    """Section 1: check the inputs (check_inputs: always, before any run) and record the data: tokens per split, the
    unigram and bigram references of these tokens, and the bigram table's own continuation of the prompt."""
    cfg = run.cfg
    d = check_inputs(cfg)

    def compute():
        samples = [bigram_sample(d, cfg.prompt, cfg.new_tokens, cfg.sample_seed + i)
                   for i in range(cfg.quality_samples)]
        share = word_share(samples, valid_words(d))
        return {"metrics": {**d.references, "vocab": d.vocab, "train_tokens": len(d.train) * cfg.lm.block,
                            "validation_tokens": len(d.val) * cfg.lm.block, "bigram_sample.valid_word_share": share,
                            "bigram_sample.words": sum(len(complete_words(t)) for t in samples)},
                "tables": {"generations": [{"mode": "bigram table (sampled)", "text": samples[0],
                                            "valid_word_share": share}]}}

    config = {"lm": {k: v for k, v in dataclasses.asdict(cfg.lm).items() if k != "train"}, "script": cfg.script,
              "prompt": cfg.prompt, "new_tokens": cfg.new_tokens, "sample_seed": cfg.sample_seed,
              "quality_samples": cfg.quality_samples,
              "gate_nats": cfg.gate_nats, "base_cell": cfg.base_cell}      # the last two: what the report judges by
    return load_or_run(run, "data", "references", compute, config, force)


def _sweep(run, experiment: str, points: dict, seeds: tuple, desc: str, budgeted: bool = False) -> Sweep:
    """The Sweep of {name: dotted overrides}, each record keyed by run_key of its config."""
    return overrides_sweep(run, experiment, points, run_job, seeds, desc, run_key, budgeted)


def _by_steps(steps: int) -> dict:
    return {"lm.train.time_budget_s": None, "lm.train.budget_clock": None, "lm.train.max_steps": steps}


def equal_time_grid(run, force: bool = False) -> dict:
    """Section 2: every batch x accumulation cell at the same training budget, every grid seed."""
    return run_sweep(run, grid_sweep(run), run.cfg.workers, force)


def reruns(run, force: bool = False) -> dict:
    """Section 3: the base cell with seed 0 again, reruns - 1 more times (its grid run is the first), side by side
    in the workers like every other run: how much the budget alone moves a result. Each rerun is recorded under its
    own index (in its key), so the sweep runner never loads one for another."""
    return run_sweep(run, reruns_sweep(run), run.cfg.workers, force)


def equal_token_grid(run, force: bool = False) -> dict:
    """Section 4: the same cells, each for cfg.equal_tokens tokens (steps = tokens / (batch x accum x block)), no
    time budget: batch efficiency apart from throughput. Empty when equal_tokens is None."""
    s = grid_tokens_sweep(run)
    return {} if s is None else run_sweep(run, s, run.cfg.workers, force)


def schedules(run, force: bool = False) -> dict:
    """Section 5: the seed's schedules at the base cell, each for cfg.schedule_steps steps, every schedule seed."""
    return run_sweep(run, schedules_sweep(run), run.cfg.workers, force)


def lr_range(run, force: bool = False) -> dict:
    """Section 6: peak learning rate over ~2 decades, constant with warmup at cfg.schedule_steps steps: where does
    training stop converging? (the profile's own lr is the constant+warmup schedule's runs)."""
    return run_sweep(run, lr_range_sweep(run), run.cfg.workers, force)


# the notebook's sweeps at run.cfg, one builder each, as its sections run them (and helpers.points one point of):
# the grid at equal time and the reruns of its base cell (wall-clock budgets), the grid at equal tokens (when
# configured: else None), the schedules and the lr range (steps)
def grid_sweep(run) -> Sweep:
    return _sweep(run, "grid", cells(run.cfg.grid), tuple(run.cfg.grid_seeds), "batch x accum, equal time", True)


def reruns_sweep(run) -> Sweep:
    cfg = run.cfg
    base = apply_overrides(cfg, cells(cfg.grid)[cfg.base_cell], "the base cell")
    return Sweep("rerun", [Point("rerun", f"rerun {i}", (base,), {**run_key(base), "rerun": i})
                           for i in range(1, cfg.reruns)], run_job, (0,), "reruns", budgeted=True)


def grid_tokens_sweep(run) -> Sweep | None:
    cfg = run.cfg
    if cfg.equal_tokens is None:
        return None
    points = {name: {**over, **_by_steps(max(1, cfg.equal_tokens // (over["lm.train.batch_size"] *
                                                                    over["lm.train.grad_accum"] * cfg.lm.block)))}
              for name, over in cells(cfg.grid).items()}
    return _sweep(run, "grid_tokens", points, tuple(cfg.token_seeds), "batch x accum, equal tokens")


def schedules_sweep(run) -> Sweep:
    cfg = run.cfg
    return _sweep(run, "schedules", {name: {**over, **_by_steps(cfg.schedule_steps)}
                                     for name, over in cfg.schedules.items()}, tuple(cfg.schedule_seeds), "schedules")


def lr_range_sweep(run) -> Sweep:
    cfg = run.cfg
    return _sweep(run, "lr_range", {f"lr={lr:g}": {"lm.train.scheduler": "constant", "lm.train.lr": lr,
                                                  **_by_steps(cfg.schedule_steps)}
                                    for lr in cfg.lr_range if lr != cfg.lm.train.lr}, tuple(cfg.lr_seeds), "lr range")


SWEEPS = {"grid": grid_sweep, "reruns": reruns_sweep, "grid_tokens": grid_tokens_sweep,
          "schedules": schedules_sweep, "lr_range": lr_range_sweep}


def sweeps(run, params: dict | None = None) -> dict[str, Sweep]:
    """{name: Sweep} of every sweep this run's config has (SWEEPS; the equal-token grid only when configured)."""
    built = {name: build(run) for name, build in SWEEPS.items()}
    return {name: s for name, s in built.items() if s is not None}


def runner_overhead(run) -> dict:
    """The sweep runner's own cost per run in this notebook's sweeps (record lookups, worker start, result transfer,
    record writes), against the training budget of a run; {} when every point was loaded from its record."""
    if not STATS:
        return {}
    runs = sum(s["runs"] for s in STATS)
    per_run = sum(s["overhead_per_run_s"] * s["runs"] for s in STATS) / runs
    budget = run.cfg.lm.train.time_budget_s
    return keyed(save_result(run, "runner", "sweep-runner-overhead",
                             {"metrics": {"runs": runs, "overhead_per_run_s": per_run, "budget_s": budget,
                                          "overhead_share_of_budget": per_run / budget},
                              "tables": {"sweeps": [dict(s) for s in STATS]}},
                             config={"lm": dataclasses.asdict(run.cfg.lm), "workers": run.cfg.workers}))
