"""Notebook 07's typed config and its PROFILES (tiny, local, gpu-small, full), with the grid and schedule
declarations they are made of.

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
  of its tokens) are in helpers.pretraining.report.
The local point (tokenizer, model, block, budget, lr) was chosen by a recorded regime search
(`make pretrain-regime`, benchmarks/pretrain_regime.py; records results/07_pretraining/regime-*).

"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..models import NeoXSize
from ..pretrain import PretrainConfig
from ..profiles import apply_overrides
from ..sweep import grid
from ..train import TrainConfig

SEED_NOTES = {  # seed 003's own numbers (REFERENCE.md section 4 and the seed file)
    "best_cell": (6, 6), "eval_loss_range": (4.2, 4.7), "run_minutes": 30, "runs": 15,
    "summaries": "the file pastes 5 run summaries, of which the last two are the same run twice (identical numbers "
                 "and generation): 4 distinct runs, eval loss 4.20 / 4.69 / 4.71 / 4.73"}

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
    # gpu-small: the seed's corpus and grid on one free GPU, a 384 x 6 NeoX with a 16,000-token BPE: 75-second
    # budgets (the grid's 12 cells x 2 seeds; the base cell run 3 times in all: the spread of one configuration) and
    # 300-step schedule / lr runs of the 4 x 4 cell over 2 seeds each, under an hour on a T4 by the plan. Every cell's
    # budget buys >= 10 warm-ups of steps on a T4 by the plan (pretraining.plan.steps_per_cell: the 10 x 8 cell ~55
    # steps at ~30k tokens/s, the 5-step warm-up's 11x); 45 s with a 30-step warm-up gave it 33 steps, and 10 x 30
    # steps would need 411-s budgets, 3 h of grid on a T4. Train subset: the first 5M tokens of the split, 2x what
    # its longest run consumes by the plan (a 300-step schedule run, 2.5M), not the whole Wikipedia (~1e9 tokens)
    "gpu-small": PretrainStudyConfig(
        lm=PretrainConfig(corpus="ruwiki", tokenizer="ruwiki-bpe-16000", size=NeoXSize(hidden=384, layers=6, heads=6),
                          block=512, eval_blocks=256, train_tokens=5_000_000,
                          train=_train(batch_size=4, grad_accum=4, lr=1e-3, warmup_steps=5, time_budget_s=75,
                                       log_every=20)),
        grid=grid_declaration((4, 6, 8, 10), (4, 6, 8)), grid_seeds=(0, 1), reruns=3, equal_tokens=None,
        schedule_steps=300, schedules=seed_schedules(300), schedule_seeds=(0, 1),
        lr_range=(3e-4, 1e-3, 3e-3), lr_seeds=(0, 1)),
    # full: the seed's scale on a dedicated GPU (wall-clock budget), one training seed per arm as the seed ran it
    # (its verdicts say "n = 1: no test"); helpers/planning's plan gives the hours. Train subset: the first 320M
    # tokens, 2x what a 30-minute run consumes at the benchmark's ~87k tokens/s on an H100 (156M); there the 10 x 8
    # cell gets ~3,800 steps, 19 warm-ups (pretraining.plan.steps_per_cell)
    "full": PretrainStudyConfig(
        lm=PretrainConfig(corpus="ruwiki", tokenizer="ruwiki-bpe-32000", size=NeoXSize(hidden=768, layers=10, heads=12),
                          block=512, eval_blocks=512, train_tokens=320_000_000,
                          # TF32 on; not torch.compile, whose minute of compiling (another for each batch shape)
                          # would be charged to each cell's equal-time budget
                          train=_train(lr=5e-4, warmup_steps=200, time_budget_s=1800, log_every=50, tf32=True)),
        grid=grid_declaration((4, 6, 8, 10), (4, 6, 8)), grid_seeds=(0,), reruns=2, equal_tokens=None,
        schedule_steps=6000, schedules=seed_schedules(6000), schedule_seeds=(0,),
        lr_range=(5e-5, 1e-4, 2e-4, 5e-4, 1e-3), lr_seeds=(0,), wandb=True),
}
