"""Notebook 06's typed config: SFTDPOConfig and its PROFILES, each SFT variant's settings, and the keys that the
SFT and DPO records are stored under (computed from the config: a changed setting is a new run)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .chats import data_key
from .report import SFT_VARIANTS
from .trainers import DPOSettings, LoraSettings, SFTSettings

DATA = ("wordnet", "ultra")


@dataclass
class SFTDPOConfig:
    model: str = "smollm2"
    chat_template: str | None = None       # None: the tokenizer's own; "chatml" for a base model without one
    data: str = "wordnet"                  # wordnet (local) | ultra (UltraChat SFT + UltraFeedback DPO)
    max_length: int = 64                   # tokens of prompt + answer; longer SFT examples / pairs are dropped
    system_prompt: str | None = None       # a system message for every chat (None: the template's own default)
    train_rows: int = 2000                 # SFT examples drawn (before the length filter)
    policy_rows: int = 1000                # training prompts (not SFT's) the SFT model answers: DPO's training pairs
    val_rows: int = 256                    # validation chats (the length-bias lesson; the DPO search's pairs)
    test_rows: int = 256                   # held-out chats: answer loss
    heldout_rows: int = 512                # held-out prompts the SFT model answers: the held-out pairs
    hard_pairs: int = 256                  # WordNet hard-negative pairs of held-out words (the labelled hard case)
    gen_rows: int = 48                     # held-out prompts answered greedily (definition F1, length, repeats)
    gen_tokens: int = 40
    max_f1: float = 0.3                    # an answer with token F1 below this against the gloss is wrong
    show_words: int = 8
    worst_k: int = 5
    seeds: tuple = (0, 1, 2)               # the SFT baseline's training seeds
    lesson_seeds: tuple = (0, 1)           # each lesson arm's; (): the lessons are not run (the SFT baseline alone)
    accum_examples: int = 400              # the accumulation comparison: examples of accum-1 and accum-4
    accum_micro: int = 2                   # its micro-batch
    dpo_losses: tuple = ("sigmoid", "ipo")
    dpo_seeds: tuple = (0, 1)
    dpo_search: tuple = ((0.1, 5e-4), (0.5, 5e-4), (0.5, 2e-3))   # (beta, lr) tried on validation pairs
    search_steps: int = 20
    probe_pairs: int = 64                  # held-out pairs scored every dpo.eval_every steps (all of them at the end)
    speed_batch: int = 8                   # the attention-implementation timing: batch x speed_length tokens
    speed_length: int | None = None        # None: max_length
    workers: int = 1                       # CPU: runs side by side, one process and one thread each
    lora: LoraSettings = field(default_factory=LoraSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    dpo: DPOSettings = field(default_factory=DPOSettings)

    def __post_init__(self):
        for name, cls in (("lora", LoraSettings), ("sft", SFTSettings), ("dpo", DPOSettings)):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, cls(**getattr(self, name)))
        if self.data not in DATA:
            raise ValueError(f"unknown data '{self.data}'; allowed: {', '.join(DATA)}")
        for name in ("max_length", "train_rows", "policy_rows", "val_rows", "test_rows", "heldout_rows",
                     "accum_micro", "search_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.accum_examples < 4 * self.accum_micro:
            raise ValueError(f"accum_examples ({self.accum_examples}) must hold at least 4 micro-batches of "
                             f"{self.accum_micro}")
        if not 0 < self.max_f1 <= 1:
            raise ValueError(f"max_f1 must lie in (0, 1], got {self.max_f1}")
        for name in ("seeds", "dpo_seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name} must name at least one seed")
        for beta, lr in self.dpo_search:
            DPOSettings(beta=beta, lr=lr)          # beta and lr > 0, refused now rather than mid-notebook


PROFILES = {
    "tiny": SFTDPOConfig(model="smollm2-tiny", speed_batch=1, speed_length=16, train_rows=24, policy_rows=16,
                         val_rows=8, test_rows=8, heldout_rows=12, hard_pairs=8, gen_rows=2, gen_tokens=8,
                         max_f1=1.0, show_words=2, worst_k=2, seeds=(0, 1), lesson_seeds=(0, 1), accum_examples=8,
                         accum_micro=1, dpo_seeds=(0,), dpo_search=((0.1, 5e-4), (0.5, 5e-4)), search_steps=1,
                         lora=LoraSettings(r=4, alpha=8),
                         sft=SFTSettings(steps=2, batch_size=2, eval_every=1, eval_rows=4, warmup_steps=1, log_every=1),
                         dpo=DPOSettings(steps=2, batch_size=2, eval_every=1, log_every=1)),
    # local: 2 CPU cores, two runs side by side (see the notebook's header for what each section costs)
    "local": SFTDPOConfig(system_prompt="Define words briefly.", train_rows=400, policy_rows=320, val_rows=96,
                          test_rows=96, heldout_rows=448, hard_pairs=96, gen_rows=32, gen_tokens=32,
                          accum_examples=64, speed_batch=4, workers=2, search_steps=12,
                          dpo_search=((0.1, 1e-3), (0.5, 1e-3), (0.5, 3e-3)), dpo_seeds=(0, 1),
                          sft=SFTSettings(steps=30, batch_size=4, warmup_steps=3, eval_every=10, eval_rows=32),
                          dpo=DPOSettings(steps=40, batch_size=4, eval_every=20)),
    # gpu-small: the full profile's model and data on one 16 GB GPU without bf16 (fp32 frozen weights, fp16 mixed
    # precision), sequences of up to 384 tokens, a tenth of its rows, 50 SFT and 60 DPO steps (1,000 and 400 in
    # full), two seeds for every arm (DPO's too)
    "gpu-small": SFTDPOConfig(model="HuggingFaceTB/SmolLM2-360M", chat_template="chatml", data="ultra",
                              max_length=384, train_rows=2_000, policy_rows=800, val_rows=128, test_rows=128,
                              heldout_rows=128, hard_pairs=0, gen_rows=48, gen_tokens=96, accum_examples=480,
                              accum_micro=4, seeds=(0, 1), lesson_seeds=(0, 1), dpo_seeds=(0, 1), search_steps=20,
                              dpo_search=((0.1, 5e-5), (0.5, 5e-5), (0.1, 2e-4)),
                              sft=SFTSettings(steps=50, batch_size=8, lr=2e-4, warmup_steps=5, eval_every=25,
                                              eval_rows=64, log_every=10),
                              dpo=DPOSettings(steps=60, batch_size=4, lr=5e-5, eval_every=20, log_every=10)),
    # full: a base model taught to chat, sized for about two hours on one 80 GB GPU (python -m helpers plan)
    "full": SFTDPOConfig(model="HuggingFaceTB/SmolLM2-360M", chat_template="chatml", data="ultra", max_length=1024,
                         train_rows=20_000, policy_rows=8_000, val_rows=1_000, test_rows=1_000, heldout_rows=1_000,
                         hard_pairs=0, gen_rows=128, gen_tokens=128, accum_examples=4_000, accum_micro=4,
                         seeds=(0, 1), lesson_seeds=(0, 1), dpo_seeds=(0,), search_steps=100,
                         dpo_search=((0.1, 5e-5), (0.5, 5e-5), (0.1, 2e-4)),
                         sft=SFTSettings(steps=1_000, batch_size=16, lr=2e-4, warmup_steps=50, eval_every=100,
                                         eval_rows=500, log_every=10),
                         dpo=DPOSettings(steps=400, batch_size=16, lr=5e-5, eval_every=100, log_every=10)),
}



def variant_settings(cfg: SFTDPOConfig, variant: str) -> SFTSettings:
    """The SFT settings of one named variant; everything else as the baseline."""
    s = cfg.sft
    if variant == "baseline":
        return s
    if variant == "whole-sequence":
        return dataclasses.replace(s, completion_only=False)
    if variant == "truncate":
        return dataclasses.replace(s, long="truncate")
    if variant == "plateau":
        # the author's ReduceLROnPlateau, set so that it acts within the run: evaluated every other step, cut by half
        # as soon as the validation loss does not improve (patience 0); the record counts the cuts
        return dataclasses.replace(s, scheduler="plateau", warmup_steps=0, eval_every=2, plateau_patience=0)
    if variant in ("accum-1", "accum-4", "accum-4-steps"):
        accum = 1 if variant == "accum-1" else 4
        steps = max(1, cfg.accum_examples // cfg.accum_micro)           # accum-1's steps over accum_examples
        steps = steps if variant in ("accum-1", "accum-4-steps") else max(1, steps // 4)
        return dataclasses.replace(s, batch_size=cfg.accum_micro, grad_accum=accum, steps=steps, log_every=1,
                                   warmup_steps=max(1, s.warmup_steps * steps // s.steps), eval_every=steps)
    raise ValueError(f"unknown SFT variant '{variant}'; allowed: {', '.join(SFT_VARIANTS)}")


def sft_key(cfg: SFTDPOConfig, variant: str) -> dict:
    return {**data_key(cfg), "lora": dataclasses.asdict(cfg.lora), "sft": dataclasses.asdict(variant_settings(cfg,
                                                                                                          variant))}



def dpo_key(cfg: SFTDPOConfig, s: DPOSettings, pairs_rec: dict) -> dict:
    return {**sft_key(cfg, "baseline"), "pairs": pairs_rec["run_id"], "dpo": dataclasses.asdict(s)}


