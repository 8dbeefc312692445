"""Notebook 07's plan on a GPU (a profile's memory and time; the full profile's by default), with its data
preparation (tokenizing the capped train subset, the n-gram tables: time and host memory) and the optimizer steps
each grid cell's budget buys on the planned card (`steps_per_cell`)."""
from __future__ import annotations

import math

from ..data import bpe_vocab
from ..memory import training_plan
from ..models import neox_config
from ..planning import CARDS, NotebookPlan, bench_case, card_of, train_seconds
from ..precision import precision_for
from .config import PROFILES, cells

CASE = "07 pretraining LM train, batch 8"     # the benchmark's case: the full profile's LM
# Data preparation, measured here (2-core CPU machine shared with other jobs) on a sample: the first 400 documents of
# the local Russian corpus (data/cache/corpora/ru), ru-bpe-8192 (a fast BPE like ruwiki-bpe-*), blocks of 512:
# 1,047,552 tokens in 6.5 s of CPU time (161k tokens per CPU-second; 28.6 s of wall time on the loaded machine, 37k
# tokens/s) with lm_blocks (one process, as lm_data runs it): PREP_TOKENS_PER_S is that rate rounded down. Host
# memory per token, tracemalloc of the numpy buffers on the same sample: the blocks' Arrow column 4.0 bytes (int32
# ids + offsets), the references' transient peak 35.2 bytes (int32 ids, int64 pair codes, np.unique's sorted copy),
# the sampler's table (LMData.followers) 8.1 bytes resident with a 36.0-byte peak while it is sorted: 4.0 + 8.1 +
# 36.0 rounded up. The tables are built once per prepared data (LMData), never per run.
PREP_TOKENS_PER_S = 150_000
PREP_BYTES_PER_TOKEN = 48
# the whole train split where a config sets no train_tokens cap: Russian Wikipedia with a 16-32k BPE, ~1e9 tokens
# (an order of magnitude, not a count)
CORPUS_TOKENS = {"ruwiki": 1_000_000_000}
CAP_MARGIN = 2            # the GPU profiles' train_tokens: >= this x the most tokens one run consumes by the plan
MIN_WARMUPS = 10          # every grid cell's budget must buy >= this many warm-ups of optimizer steps


def planned_card(bf16: bool):
    """The card a GPU profile is planned for: the benchmark's (full, bf16) or a T4 (gpu-small: no bf16)."""
    return None if bf16 else CARDS["t4"]


def tokens_per_s(b: dict, cfg, card=None) -> float | None:
    """Training tokens per second of cfg's LM on `card` (None: the benchmark's card) by the plan: the FLOP/s the
    benchmark measured on the full profile's LM (its MFU), scaled by the cards' 16-bit peaks, over 6 x params."""
    row = bench_case(b, CASE)
    if not row or "flops_per_s" not in row:
        return None
    bench = card_of(b.get("gpu"))
    scale = 1.0 if card is None or bench is None else card.tflops("16-bit") / bench.tflops("16-bit")
    return row["flops_per_s"] * scale / (6 * _params(cfg))


def _params(cfg) -> int:
    lm = cfg.lm
    return training_plan("07 LM", neox_config(lm.size, vocab_size=bpe_vocab(lm.tokenizer) or 32000), 1, lm.block,
                         "fp32").params


def steps_per_cell(b: dict, cfg, card=None) -> dict[str, float]:
    """{cell: optimizer steps its time budget buys} = budget_s x tokens/s (on `card`, by the plan) / tokens per step
    (batch x accumulation x block)."""
    rate, lm = tokens_per_s(b, cfg, card), cfg.lm
    return {name: lm.train.time_budget_s * rate / (p["lm.train.batch_size"] * p["lm.train.grad_accum"] * lm.block)
            for name, p in cells(cfg.grid).items()}


def run_tokens(b: dict, cfg, card=None) -> float:
    """The most tokens one run consumes by the plan: a budget-defined run at the planned rate, a steps-defined one
    (schedules, lr range, the equal-token grid) exactly."""
    lm, t = cfg.lm, cfg.lm.train
    stepped = cfg.schedule_steps * t.batch_size * t.grad_accum * lm.block
    return max(t.time_budget_s * (tokens_per_s(b, cfg, card) or 0), stepped, cfg.equal_tokens or 0)


def prep_tokens(cfg) -> int:
    """Train tokens the data preparation tokenizes and tables: the cap, else the whole split (CORPUS_TOKENS)."""
    lm = cfg.lm
    return lm.train_tokens or CORPUS_TOKENS.get(lm.corpus, 0)


def full_plan(notebook: str, b: dict, cfg=None, bf16: bool = True) -> NotebookPlan:
    """A GPU profile's plan: the largest grid cell's memory and the data preparation's host memory; time = the data
    preparation (on the CPU) + the budget-defined runs x the budget + the steps-defined ones (and the equal-token
    ones) at the MFU the benchmark measured for the full profile's LM (helpers.planning)."""
    cfg = cfg or PROFILES["full"]
    lm = cfg.lm
    grid_cells = [(p["lm.train.batch_size"], p["lm.train.grad_accum"]) for p in cells(cfg.grid).values()]
    big = max(bs for bs, _ in grid_cells)
    vocab = bpe_vocab(lm.tokenizer) or 32000
    prep = prep_tokens(cfg)
    plan = training_plan("07 LM", neox_config(lm.size, vocab_size=vocab), big, lm.block,
                         precision_for("auto", True, bf16), host=prep * PREP_BYTES_PER_TOKEN)
    plan.setting += f"; host: {prep / 1e6:,.0f}M train tokens prepared x {PREP_BYTES_PER_TOKEN} bytes"
    budget = lm.train.time_budget_s
    timed = len(grid_cells) * len(cfg.grid_seeds) + cfg.reruns - 1
    stepped = len(cfg.schedules) * len(cfg.schedule_seeds) + len(cfg.lr_range) * len(cfg.lr_seeds)
    tokens = len(grid_cells) * len(cfg.token_seeds) if cfg.equal_tokens else 0
    t = lm.train
    steps_tokens = stepped * cfg.schedule_steps * t.batch_size * t.grad_accum * lm.block + tokens * (cfg.equal_tokens
                                                                                                   or 0)
    prep_work = (f"data preparation on the CPU: {prep / 1e6:,.0f}M train tokens tokenized and tabled at "
                 f"{PREP_TOKENS_PER_S / 1e3:.0f}k tokens/s")
    timed_work = (f"{timed} runs of a {budget / 60:.2g}-minute budget (grid {len(grid_cells)} x "
                  f"{len(cfg.grid_seeds)} seeds, {cfg.reruns - 1} reruns)")
    step_work = (f"{stepped} runs of {cfg.schedule_steps:,} steps of {t.batch_size * t.grad_accum} x {lm.block} "
                 f"tokens (schedules, lr range) and {tokens} equal-token runs")
    steps = steps_per_cell(b, cfg, planned_card(bf16)) if bench_case(b, CASE) else {}
    fewest = (f"; the grid's fewest steps {min(steps.values()):,.0f} (cell {min(steps, key=steps.get)}, warm-up "
              f"{t.warmup_steps})" if steps else "")
    return NotebookPlan(notebook, [plan], [
        (prep_work, math.ceil(prep / PREP_TOKENS_PER_S)),
        (timed_work, timed * budget),
        (step_work, train_seconds(b, CASE, plan.params, steps_tokens))], b.get("gpu"),
        "budget-defined runs: the time does not depend on the GPU, the steps they reach do" + fewest,
        fixed=(prep_work, timed_work), runs={timed_work: timed, step_work: stepped + tokens})
