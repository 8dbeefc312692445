"""Notebook 07's plan on a GPU (a profile's memory and time; the full profile's by default)."""
from __future__ import annotations

from ..data import bpe_vocab
from ..memory import training_plan
from ..models import neox_config
from ..planning import NotebookPlan, train_seconds
from ..precision import precision_for
from .config import PROFILES, cells


def full_plan(notebook: str, b: dict, cfg=None, bf16: bool = True) -> NotebookPlan:
    """A GPU profile's plan: the largest grid cell's memory; time = the budget-defined runs x the budget, plus the
    steps-defined ones (and the equal-token ones) at the MFU the benchmark measured for the full profile's LM
    (helpers.planning)."""
    cfg = cfg or PROFILES["full"]
    lm = cfg.lm
    grid_cells = [(p["lm.train.batch_size"], p["lm.train.grad_accum"]) for p in cells(cfg.grid).values()]
    big = max(bs for bs, _ in grid_cells)
    vocab = bpe_vocab(lm.tokenizer) or 32000
    plan = training_plan("07 LM", neox_config(lm.size, vocab_size=vocab), big, lm.block,
                         precision_for("auto", True, bf16))
    budget = lm.train.time_budget_s
    timed = len(grid_cells) * len(cfg.grid_seeds) + cfg.reruns - 1
    stepped = len(cfg.schedules) * len(cfg.schedule_seeds) + len(cfg.lr_range) * len(cfg.lr_seeds)
    tokens = len(grid_cells) * len(cfg.token_seeds) if cfg.equal_tokens else 0
    t = lm.train
    steps_tokens = stepped * cfg.schedule_steps * t.batch_size * t.grad_accum * lm.block + tokens * (cfg.equal_tokens
                                                                                                   or 0)
    timed_work = (f"{timed} runs of a {budget / 60:.2g}-minute budget (grid {len(grid_cells)} x "
                  f"{len(cfg.grid_seeds)} seeds, {cfg.reruns - 1} reruns)")
    step_work = (f"{stepped} runs of {cfg.schedule_steps:,} steps of {t.batch_size * t.grad_accum} x {lm.block} "
                 f"tokens (schedules, lr range) and {tokens} equal-token runs")
    return NotebookPlan(notebook, [plan], [
        (timed_work, timed * budget),
        (step_work, train_seconds(b, "07 pretraining LM train, batch 8", plan.params, steps_tokens))], b.get("gpu"),
        "budget-defined runs: the time does not depend on the GPU, the steps they reach do", fixed=(timed_work,),
        runs={timed_work: timed, step_work: stepped + tokens})
