"""Notebook 07: pretraining a small Russian LM under a fixed budget (seed file 003), as sweeps over training seeds.

The seed trained a small LM from scratch on Russian Wikipedia with the HF Trainer in 30-minute runs: a W&B sweep
over per-device batch x gradient accumulation (best 6 x 6), hand-made schedules (triangular, then a drop after N
steps; a drop "at minute 20" did not help), high learning rates that "stop converging near loss 4", and 64-token
generations from "В начале было слово". Here:

- the grid runs at an equal training budget, as the seed ran it (a larger batch buys fewer steps). Locally the budget
  is the training process's own CPU time (one torch thread per run), so a run beside it on the other core does not
  change what it gets; on a dedicated GPU (full) it is wall time. Every record keeps the seconds it trained (wall and
  CPU), its steps and tokens and what stopped it (the budget or max_steps);
- the same cells also run at an equal number of tokens (steps-defined), which separates batch efficiency from
  throughput;
- one configuration and seed is run several times (reruns): the noise of the budget itself;
- schedules and the learning-rate range are steps-defined at the base cell (a schedule's shape is defined by steps;
  at one batch size equal steps are equal work);
- every arm has >= 2 training seeds; the verdicts and the gate (every run must end gate_nats below the bigram table
  of its tokens) are in helpers.pretrain_report.
The local point (tokenizer, model, block, budget, lr) was chosen by a recorded regime search
(`make pretrain-regime`, benchmarks/pretrain_regime.py; records results/07_pretraining/regime-*).

Sections return {(variant, seed): record}: data_check, equal_time_grid, reruns, equal_token_grid, schedules,
lr_range, runner_overhead.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data import bpe_vocab, load_corpus
from ..evaluate import lm_loss
from ..memory import training_plan
from ..models import NeoXSize, count_params, neox_config
from ..paths import REPO_ROOT
from ..planning import NotebookPlan, mixed_precision, train_seconds
from ..pretrain import LMData, PretrainConfig, bits_per_char, config_data, generate, new_neox
from ..profiles import apply_overrides
from ..results import keyed, load_or_run, save_result
from ..sweep import STATS, Point, Sweep, grid, overrides_sweep, run_sweep, sweep
from ..train import TrainConfig, train_causal_lm

SEED_NOTES = {  # seed 003's own numbers (REFERENCE.md section 4 and the seed file)
    "best_cell": (6, 6), "eval_loss_range": (4.2, 4.7), "run_minutes": 30, "runs": 15,
    "summaries": "the file pastes 5 run summaries, of which the last two are the same run twice (identical numbers "
                 "and generation): 4 distinct runs, eval loss 4.20 / 4.69 / 4.71 / 4.73"}
WORD = re.compile(r"\w+")


def grid_declaration(batches, accums) -> dict:
    """The batch x accumulation sweep as the W&B sweep configuration the seed would have run."""
    return {"method": "grid", "metric": {"name": "eval_loss", "goal": "minimize"},
            "parameters": {"lm.train.batch_size": {"values": list(batches)},
                           "lm.train.grad_accum": {"values": list(accums)}}}


def cell_name(batch: int, accum: int) -> str:
    return f"{batch} x {accum}"


def cells(declaration: dict) -> dict[str, dict]:
    """{"4 x 2": {"lm.train.batch_size": 4, "lm.train.grad_accum": 2}, ...} of a grid declaration."""
    points = grid(declaration)
    need = {"lm.train.batch_size", "lm.train.grad_accum"}
    if any(set(p) != need for p in points.values()):
        raise ValueError(f"the batch x accumulation grid declares {sorted(next(iter(points.values())))}; "
                         f"allowed: exactly {sorted(need)}")
    return {cell_name(p["lm.train.batch_size"], p["lm.train.grad_accum"]): p for p in points.values()}


def seed_schedules(steps: int) -> dict:
    """The schedules the seed tried, defined by steps at one batch size: constant with warmup, linear and cosine decay
    to the last step, a step drop (x0.2) after N = steps / 2 (the seed's final choice), triangular without momentum
    cycling (the seed's best), and the lr x0.1 at 2/3 of the run (the seed's "minute 20 of 30")."""
    n = max(2, steps // 2)
    return {
        "constant+warmup": {"lm.train.scheduler": "constant"},
        "linear": {"lm.train.scheduler": "linear"},
        "cosine": {"lm.train.scheduler": "cosine"},
        "step drop after N/2": {"lm.train.scheduler": "step", "lm.train.step_every": n, "lm.train.step_gamma": 0.2,
                                "lm.train.step_max_drops": 1},
        "triangular": {"lm.train.scheduler": "triangular", "lm.train.cycle_steps": max(1, n // 2),
                       "lm.train.min_lr_ratio": 0.1},
        "drop at 2/3 of the run": {"lm.train.scheduler": "step", "lm.train.step_every": max(1, 2 * steps // 3),
                                   "lm.train.step_gamma": 0.1, "lm.train.step_max_drops": 1},
    }


@dataclass
class PretrainStudyConfig:
    lm: PretrainConfig = field(default_factory=PretrainConfig)   # the base cell, its budget, lr and schedule
    script: str | None = "cyrillic"         # the corpus must be written in it (None: any)
    grid: dict = field(default_factory=lambda: grid_declaration((4, 6, 8), (4, 6, 8)))
    grid_seeds: tuple = (0, 1, 2)
    reruns: int = 3                         # the base cell, seed 0, this many times in all (its grid run included)
    equal_tokens: int | None = None         # tokens of every cell in the steps-defined grid (None: no such grid)
    token_seeds: tuple = (0, 1)
    schedule_steps: int = 300               # steps of every schedule and lr-range run (at the base cell)
    schedules: dict = field(default_factory=lambda: seed_schedules(300))     # name -> dotted overrides
    schedule_seeds: tuple = (0, 1)
    lr_range: tuple = (1e-4, 3e-4, 1e-3, 3e-3)
    lr_seeds: tuple = (0, 1)
    gate_nats: float = 0.3                  # every run must end this far below the bigram table of its tokens
    prompt: str = "В начале было слово"
    new_tokens: int = 64
    sample_seed: int = 0
    quality_samples: int = 8                # sampled continuations (seeds sample_seed, +1, ...) the word share pools
    wandb: bool = False                     # log every run to wandb, offline (WANDB_MODE=offline; sync later)
    workers: int = 1

    def __post_init__(self):
        if isinstance(self.lm, dict):
            self.lm = PretrainConfig(**self.lm)
        if not self.prompt.strip():
            raise ValueError("prompt is empty; give the text the generations continue")
        if self.new_tokens < 1:
            raise ValueError(f"new_tokens must be >= 1, got {self.new_tokens}")
        for name in ("grid_seeds", "token_seeds", "schedule_seeds", "lr_seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name} must name at least one seed")
        if self.reruns < 1 or self.schedule_steps < 1:
            raise ValueError(f"reruns and schedule_steps must be >= 1, got {self.reruns}, {self.schedule_steps}")
        if self.equal_tokens is not None and self.equal_tokens < 1:
            raise ValueError(f"equal_tokens must be >= 1 or None, got {self.equal_tokens}")
        points = {**grid(self.grid), **self.schedules, **{f"lr={lr}": {"lm.train.lr": lr} for lr in self.lr_range}}
        for name, over in points.items():       # every point must be a valid config now, not mid-notebook
            bad = [k for k in over if not k.startswith("lm.")]
            if bad:
                raise ValueError(f"sweep point {name!r}: setting(s) {bad} are not settings of the model's training "
                                 "(allowed: keys under 'lm.', e.g. lm.train.lr)")
            apply_overrides(self.lm, {k[3:]: v for k, v in over.items()}, f"sweep point '{name}' (lm)")
        if self.base_cell not in cells(self.grid):
            raise ValueError(f"the base cell {self.base_cell} (lm.train.batch_size x grad_accum) is not a grid cell; "
                             f"allowed: {', '.join(cells(self.grid))}")

    @property
    def base_cell(self) -> str:
        return cell_name(self.lm.train.batch_size, self.lm.train.grad_accum)


def _train(**kw) -> TrainConfig:
    base = dict(max_steps=100_000, batch_size=6, grad_accum=6, lr=1e-3, scheduler="constant", warmup_steps=10,
                eval_every=0, log_every=5, weight_decay=0.1, adam_beta2=0.95, progress=False)
    return TrainConfig(**{**base, **kw})


_TINY_LM = PretrainConfig(corpus="ru", tokenizer="bytes", size=NeoXSize(hidden=32, layers=2, heads=2), block=32,
                          train_docs=40, eval_blocks=8,
                          train=_train(max_steps=4, batch_size=2, grad_accum=1, lr=3e-3, warmup_steps=1,
                                       log_every=1, time_budget_s=30, budget_clock="cpu"))
# local: the regime search's point (benchmarks/pretrain_regime.py, records results/07_pretraining/regime-*): UTF-8
# bytes, a 64 x 2 GPT-NeoX (133k parameters), blocks of 128 bytes, 15 s of CPU time per run at lr 3e-3. There both
# extreme cells ended 0.50 and 0.40 nats below the bytes' bigram table (no BPE of 512-8192 tokens got below it within
# 40 s: a BPE model spends its seconds on its embeddings). Steps-defined runs: 600 steps of the base cell (~ its
# steps in 15 s); equal tokens = 800 x 8 x 128 (at 600 x 8 x 128 the largest cell, 150 steps, ended 0.297 below).
_LOCAL_LM = PretrainConfig(corpus="ru", tokenizer="bytes", size=NeoXSize(hidden=64, layers=2, heads=4),
                           block=128, eval_blocks=64,
                           train=_train(batch_size=4, grad_accum=2, lr=3e-3, warmup_steps=10, time_budget_s=15,
                                        budget_clock="cpu"))
PROFILES = {
    "tiny": PretrainStudyConfig(
        lm=_TINY_LM, grid=grid_declaration((2, 4), (1, 2)), grid_seeds=(0, 1), reruns=2, equal_tokens=256,
        token_seeds=(0,), schedule_steps=4, schedules=dict(list(seed_schedules(4).items())[:2]),
        schedule_seeds=(0, 1), lr_range=(1e-3, 3e-3), lr_seeds=(0,), new_tokens=8),
    "local": PretrainStudyConfig(
        lm=_LOCAL_LM, grid=grid_declaration((2, 4, 8), (1, 2, 4)), grid_seeds=(0, 1, 2), reruns=3,
        equal_tokens=800 * 8 * 128, token_seeds=(0, 1), schedule_steps=600, schedules=seed_schedules(600),
        lr_range=(1e-3, 3e-3, 1e-2, 3e-2, 1e-1), workers=2),
    # gpu-small: the seed's corpus and grid on one free GPU, a 384 x 6 NeoX with a 16,000-token BPE: 45-second
    # budgets (the grid's 12 cells x 2 seeds; the base cell run 3 times in all: the spread of one configuration) and
    # 300-step schedule / lr runs of the 4 x 4 cell over 2 seeds each, under an hour on a T4 by the plan
    "gpu-small": PretrainStudyConfig(
        lm=PretrainConfig(corpus="ruwiki", tokenizer="ruwiki-bpe-16000", size=NeoXSize(hidden=384, layers=6, heads=6),
                          block=512, eval_blocks=256,
                          train=_train(batch_size=4, grad_accum=4, lr=1e-3, warmup_steps=30, time_budget_s=45,
                                       log_every=20)),
        grid=grid_declaration((4, 6, 8, 10), (4, 6, 8)), grid_seeds=(0, 1), reruns=3, equal_tokens=None,
        schedule_steps=300, schedules=seed_schedules(300), schedule_seeds=(0, 1),
        lr_range=(3e-4, 1e-3, 3e-3), lr_seeds=(0, 1)),
    # full: the seed's scale on a dedicated GPU (wall-clock budget), one training seed per arm as the seed ran it
    # (its verdicts say "n = 1: no test"); helpers/planning's plan gives the hours
    "full": PretrainStudyConfig(
        lm=PretrainConfig(corpus="ruwiki", tokenizer="ruwiki-bpe-32000", size=NeoXSize(hidden=768, layers=10, heads=12),
                          block=512, eval_blocks=512,
                          # TF32 on; not torch.compile, whose minute of compiling (another for each batch shape)
                          # would be charged to each cell's equal-time budget
                          train=_train(lr=5e-4, warmup_steps=200, time_budget_s=1800, log_every=50, tf32=True)),
        grid=grid_declaration((4, 6, 8, 10), (4, 6, 8)), grid_seeds=(0,), reruns=2, equal_tokens=None,
        schedule_steps=6000, schedules=seed_schedules(6000), schedule_seeds=(0,),
        lr_range=(5e-5, 1e-4, 2e-4, 5e-4, 1e-3), lr_seeds=(0,), wandb=True),
}


# ------------------------------------------------------------------------------------------------ one run
def _words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text) if not w.isdigit()]


_VOCAB: dict = {}


def valid_words(data: LMData) -> set[str]:
    """The word vocabulary (lower case) of the corpus's whole validation split, what a generation's words are checked
    against."""
    if data.corpus not in _VOCAB:
        _VOCAB[data.corpus] = {w for text in load_corpus(data.corpus)["validation"]["text"] for w in _words(text)}
    return _VOCAB[data.corpus]


def complete_words(text: str) -> list[str]:
    """The words of a continuation, without a first fragment that continues the prompt's last word and a last one
    cut off by the token limit."""
    words = _words(text)
    if words and text[:1].isalnum():
        words = words[1:]
    if words and text[-1:].isalnum():
        words = words[:-1]
    return words


def word_share(texts, vocab: set[str]) -> float | None:
    """Share of the complete words of one or several continuations that occur in the validation split (None without
    any): a babbling model writes non-words; a fluent one mostly real ones."""
    words = [w for t in ([texts] if isinstance(texts, str) else texts) for w in complete_words(t)]
    return sum(w in vocab for w in words) / len(words) if words else None


def run_job(cfg: PretrainStudyConfig, seed: int, device: str = "cpu") -> dict:
    """One sweep point: train the LM for its budget (or steps), evaluate, generate; a record's parts."""
    t0 = time.perf_counter()
    lm = cfg.lm
    d = config_data(lm, cfg.script)
    model = new_neox(lm.size, d.tok, seed, device)
    res = train_causal_lm(model, d.train, None, lm.train, device=device, seed=seed)
    model = res.pop("model")
    ev = lm_loss(model, d.val, batch_size=16, device=device)
    m = res["metrics"]
    m.update(eval_loss=ev["loss"], eval_ppl=ev["ppl"], eval_tokens=ev["tokens"],
             bits_per_char=bits_per_char(ev["loss"], d.val, d.tok), **d.references,
             defined_by="time_budget" if lm.train.time_budget_s is not None else "steps",
             budget_clock=lm.train.budget_clock or "wall", sequences_per_step=lm.train.batch_size * lm.train.grad_accum)
    m["below_bigram"] = m["bigram_ce"] - m["eval_loss"]
    vocab = valid_words(d)
    gens = [{"mode": "greedy", "text": generate(model, d.tok, cfg.prompt, cfg.new_tokens, device=device)}]
    samples = [generate(model, d.tok, cfg.prompt, cfg.new_tokens, sample=True, seed=cfg.sample_seed + i,
                        device=device) for i in range(cfg.quality_samples)]
    gens.append({"mode": "sampled", "text": samples[0]})
    m["greedy.valid_word_share"] = word_share(gens[0]["text"], vocab)
    # the quality figure pools the complete words of several sampled continuations (one holds a handful)
    m["sampled.valid_word_share"] = word_share(samples, vocab)
    m["sampled.words"] = sum(len(complete_words(t)) for t in samples)
    for g in gens:
        g["valid_word_share"] = m[f"{g['mode']}.valid_word_share"]
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
    except ImportError:
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


# ------------------------------------------------------------------------------------------------ bad input
def _step_seconds(cfg: PretrainStudyConfig, d: LMData, batch: int, accum: int) -> float:
    """CPU seconds of one optimizer step's forward and backward passes of a cell (a lower bound of a real step)."""
    model = new_neox(cfg.lm.size, d.tok, 0)
    ids = torch.tensor([d.train[i]["input_ids"] for i in range(batch)])
    model(input_ids=ids, labels=ids).loss.backward()                    # warm-up
    t0 = time.process_time()
    for _ in range(accum):
        model(input_ids=ids, labels=ids).loss.backward()
    return time.process_time() - t0


def check_inputs(cfg: PretrainStudyConfig) -> LMData:
    """Refuse, before any run starts, a tokenizer larger than the train split supports, a grid cell whose batch
    holds more sequences than the train split has blocks, an equal-token budget shorter than one step of a cell, and
    a time budget shorter than one optimizer step of the largest cell. Returns the data."""
    d = config_data(cfg.lm, cfg.script)
    asked = bpe_vocab(cfg.lm.tokenizer)
    if asked and d.vocab < asked:
        raise ValueError(f"tokenizer {cfg.lm.tokenizer} asks for {asked} tokens, but BPE on this train split "
                         f"found only {d.vocab}; allowed: a vocabulary of at most {d.vocab}")
    grid_cells = {n: (p["lm.train.batch_size"], p["lm.train.grad_accum"]) for n, p in cells(cfg.grid).items()}
    blocks = len(d.train)
    for name, (batch, accum) in grid_cells.items():
        if batch * accum > blocks:
            raise ValueError(f"grid cell {name} needs {batch * accum} sequences a step but the train split has "
                             f"{blocks} blocks of {cfg.lm.block}; allowed: batch x accumulation <= {blocks}")
        if cfg.equal_tokens is not None and cfg.equal_tokens < batch * accum * cfg.lm.block:
            raise ValueError(f"equal_tokens={cfg.equal_tokens} is less than one step of cell {name} "
                             f"({batch * accum * cfg.lm.block} tokens); allowed: >= "
                             f"{max(b * a for b, a in grid_cells.values()) * cfg.lm.block}")
    if cfg.lm.train.time_budget_s is None:
        raise ValueError("lm.train.time_budget_s is None: the grid runs at an equal budget; give seconds > 0")
    batch, accum = max(grid_cells.values(), key=lambda c: c[0] * c[1])
    need = _step_seconds(cfg, d, batch, accum)
    if cfg.lm.train.time_budget_s < need:
        raise ValueError(f"lm.train.time_budget_s={cfg.lm.train.time_budget_s:g} is shorter than one optimizer step "
                         f"of the largest cell {cell_name(batch, accum)} (~{need:.2f} s measured); allowed: > "
                         f"{need:.2f} s")
    return d


def bigram_sample(d: LMData, prompt: str, new_tokens: int, seed: int, temperature: float = 0.8) -> str:
    """The continuation the interpolated bigram table of the train split writes (sampled, fixed seed): the reference
    a generation must beat to show it learned more than which token follows which."""
    ids = np.asarray(d.train["input_ids"], dtype=np.int64)
    vocab, lam = max(d.vocab, int(ids.max()) + 1), 0.8
    first, nxt = ids[:, :-1].ravel(), ids[:, 1:].ravel()
    order = np.argsort(first, kind="stable")
    first, nxt = first[order], nxt[order]                  # the followers of token a: nxt[lo:hi] where first == a
    uni = (np.bincount(ids.ravel(), minlength=vocab) + 1) / (ids.size + vocab)
    rng = np.random.default_rng(seed)
    out = list(d.tok(prompt, add_special_tokens=False)["input_ids"])
    start = len(out)
    for _ in range(new_tokens):
        lo, hi = np.searchsorted(first, out[-1]), np.searchsorted(first, out[-1], side="right")
        row = np.bincount(nxt[lo:hi], minlength=vocab)
        p = lam * row / row.sum() + (1 - lam) * uni if hi > lo else uni
        logp = np.log(p) / temperature
        p = np.exp(logp - logp.max())
        out.append(int(rng.choice(vocab, p=p / p.sum())))
    return d.tok.decode(out[start:], skip_special_tokens=True)


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


# ------------------------------------------------------------------------------------------------ sections
def run_key(cfg: PretrainStudyConfig) -> dict:
    """What determines one run's result: the model, data and training, the script check and the generation
    settings (not the other sweeps declared beside it)."""
    return {"lm": dataclasses.asdict(cfg.lm), "script": cfg.script, "prompt": cfg.prompt,
            "new_tokens": cfg.new_tokens, "sample_seed": cfg.sample_seed, "quality_samples": cfg.quality_samples}


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


# ------------------------------------------------------------------------------------------------ regime search
REGIME_SEED = 10     # the search selects on a seed the notebook never reports


def regime_point(cfg: PretrainStudyConfig, seed: int = REGIME_SEED, device: str = "cpu") -> dict:
    """One point of the regime search: the grid's smallest and largest cells (sequences per step) at the point's
    budget; their eval losses, how far each ends below the bigram table of its tokens, and the gap between them."""
    named = cells(cfg.grid)
    small = min(named, key=lambda n: named[n]["lm.train.batch_size"] * named[n]["lm.train.grad_accum"])
    large = max(named, key=lambda n: named[n]["lm.train.batch_size"] * named[n]["lm.train.grad_accum"])
    out, curves = {}, {}
    for label, name in (("small", small), ("large", large)):
        c = apply_overrides(cfg, named[name], "regime cell")
        res = run_job(c, seed, device)
        m = res["metrics"]
        for k in ("eval_loss", "below_bigram", "steps", "tokens", "train_cpu_s", "train_time_s",
                  "greedy.valid_word_share"):
            out[f"{label}.{k}"] = m[k]
        out[f"{label}.cell"] = name
        curves[f"{label}.train_loss"] = res["curves"]["train_loss"]
    out.update(bigram_ce=m["bigram_ce"], unigram_ce=m["unigram_ce"],
               worst_below_bigram=min(out["small.below_bigram"], out["large.below_bigram"]),
               gap=abs(out["small.eval_loss"] - out["large.eval_loss"]))
    return {"metrics": out, "curves": curves, "params": res["params"]}


def regime_search(run, points: dict, seed: int = REGIME_SEED, force: bool = False) -> dict:
    """{name: record} for each point {name: dotted overrides of run.cfg}, keyed by what it trains (the model, data,
    training and grid), cfg.workers at a time through the sweep runner (recorded points are loaded)."""
    out = sweep(run, "regime", {f"regime {n}": o for n, o in points.items()}, regime_point, (seed,),
                run.cfg.workers, force, "regimes", key=lambda c: {**run_key(c), "grid": c.grid})
    return {n: out[f"regime {n}", seed] for n in points}


# ------------------------------------------------------------------------------------------------ full-profile plan
def full_plan(notebook: str, b: dict, cfg=None, bf16: bool = True) -> NotebookPlan:
    """A GPU profile's plan: the largest grid cell's memory; time = the budget-defined runs x the budget, plus the
    steps-defined ones (and the equal-token ones) at the MFU the benchmark measured for the full profile's LM
    (helpers.planning)."""
    cfg = cfg or PROFILES["full"]
    lm = cfg.lm
    grid_cells = [(p["lm.train.batch_size"], p["lm.train.grad_accum"]) for p in cells(cfg.grid).values()]
    big = max(bs for bs, _ in grid_cells)
    vocab = bpe_vocab(lm.tokenizer) or 32000
    plan = training_plan("07 LM", neox_config(lm.size, vocab_size=vocab), big, lm.block, mixed_precision(bf16))
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
