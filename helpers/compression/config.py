"""Notebook 04's typed config and its PROFILES (tiny, local, gpu-small, full).

local = SmolLM2-135M-Instruct (offline asset), calibrated on the English train split, evaluated on held-out English
(test split) and held-out WordNet-definition chats (answer tokens only). full = Open-Orca/Mistral-7B-OpenOrca,
calibrated on the notes' own split of openaccess-ai-collective/oo-gpt4-filtered (train_test_split(test_size=100000,
seed=42)) and evaluated on WikiText-2 test: the notes evaluated on OpenOrca rows, which the model was very likely
fine-tuned on (eval_corpus="oo-gpt4" reproduces that). gpu-small = SmolLM2-360M on WikiText-2 (train / test), sized
for one 16 GB GPU and Colab's RAM. The GPU profiles' plan is helpers.compression.plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..models import FACTORIZATIONS, LLAMA_LINEARS
from ..train import TrainConfig
from . import factorize as C


@dataclass
class CompressionConfig:
    model: str = "smollm2"
    # only the teacher's first k decoder layers, with their real weights (None: the whole model). tiny's: the sections
    # run the same code on a 2-layer cut of SmolLM2, ~4x cheaper than its 30 layers (the numbers mean nothing there)
    teacher_layers: int | None = None
    calib_corpus: str = "en"
    calib_blocks: int = 32
    block: int = 256
    eval_corpus: str = "en"
    eval_blocks: int = 24                  # held-out English blocks for the headline comparisons
    chats: int = 64                        # held-out WordNet-definition chats (0: skip)
    # with OpenOrca calibration: this many held-out OpenOrca rows as a second, labelled set in the model's chat
    # format (system prompt included; loss on the response). Rows the OpenOrca model was likely tuned on, so they
    # are never the headline set (0: skip)
    openorca_rows: int | None = None
    exp3_layer: int | None = None          # None: the layer at 17/32 of the depth (the notes' layer 17 of 32)
    exp3_rank: int = 16
    methods: tuple = ("svd", "whiten", "scaled")
    reductions: tuple = (0.1, 0.2, 0.3, 0.4)
    groups: tuple = ("mlp", "attention", "both")
    sweep_eval_blocks: int = 12              # 12 x 256 tokens: enough sequences for a paired bootstrap
    fit_module: str = "gate"
    fit_rank: int = 64
    fit_steps: tuple = (100, 1000, 10_000)
    fit_lr: float = 1e-3
    fit_tokens: int = 4096
    trap_tokens: int = 82                  # the notes' one prompt
    trap_rank: int = 128
    layers: str = "all"                    # layers the sweep, the sensitivity map and the healing touch
    sens_rank: int = 16                    # one layer's attention (q, k, v, o) or MLP at this rank, plain SVD
    sens_eval_blocks: int = 8
    heal_reduction: float = 0.2
    heal_method: str = "whiten"
    heal: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=30, batch_size=4, lr=2e-4,
                                                                  scheduler="constant", log_every=10,
                                                                  progress=False))
    heal_block: int = 128
    heal_seeds: tuple | None = None        # healing's training seeds, each with its control (None: run.seed, +1)
    # whiten's centring (factorize.CENTERINGS) in sections b, c and e: chosen by section f's records (docs/results.md)
    whitening: str = C.DEFAULT_CENTERING
    center_policies: tuple = C.CENTERINGS  # section f: every policy, each calibrated on center_draws disjoint draws
    center_draws: int = 3
    center_reductions: tuple = (0.2, 0.4)

    def __post_init__(self):
        if isinstance(self.heal, dict):
            self.heal = TrainConfig(**self.heal)
        bad = [m for m in self.methods if m not in FACTORIZATIONS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; allowed: {', '.join(FACTORIZATIONS)}")
        bad = [g for g in self.groups if g not in ("mlp", "attention", "both")]
        if bad:
            raise ValueError(f"unknown group(s) {bad}; allowed: mlp, attention, both")
        if any(not 0 < r < 1 for r in self.reductions):
            raise ValueError(f"reductions must lie in (0, 1), got {self.reductions}")
        for p in (self.whitening, *self.center_policies):
            C.centers(p, "")                   # an unknown centring fails here, naming the allowed ones
        if self.teacher_layers is not None and (isinstance(self.teacher_layers, bool)
                                                or not isinstance(self.teacher_layers, int) or self.teacher_layers < 1):
            raise ValueError(f"teacher_layers must be a positive whole number of layers or None, "
                             f"got {self.teacher_layers!r}")
        if self.fit_module not in LLAMA_LINEARS or self.fit_module == "lm_head":
            raise ValueError(f"fit_module must be a block Linear ({', '.join(list(LLAMA_LINEARS)[:-1])}), "
                             f"got '{self.fit_module}'")


PROFILES = {
    "tiny": CompressionConfig(teacher_layers=2, calib_blocks=2, block=32, eval_blocks=2, chats=4,
                              methods=("svd", "whiten"), layers="0-1", reductions=(0.2,), groups=("both",),
                              sweep_eval_blocks=1, fit_rank=8,
                              fit_steps=(5, 20), fit_tokens=256, trap_tokens=16, trap_rank=24, sens_eval_blocks=1,
                              heal=TrainConfig(max_steps=2, batch_size=2, lr=1e-4, scheduler="constant",
                                               log_every=1, progress=False), heal_block=32,
                              center_policies=("none", "except-v"), center_draws=2, center_reductions=(0.2,)),
    "local": CompressionConfig(fit_steps=(100, 300, 1000), fit_tokens=2048),   # 10k Adam steps: benchmarks/
    # gpu-small: one 16 GB GPU and ~12 GB of host RAM (Colab): the largest SmolLM2 (a Llama) whose float64
    # statistics fit that RAM twice over (section f holds two draws): SmolLM2-360M (2.4 GB per draw; SmolLM2-1.7B
    # would need 15 GB per draw, a 1.1B TinyLlama 7.8 GB), calibrated on WikiText-2 train and scored on its test split
    # at the full profile's sequence length, healed with fp16 mixed precision
    "gpu-small": CompressionConfig(model="HuggingFaceTB/SmolLM2-360M", calib_corpus="wikitext2",
                                   eval_corpus="wikitext2", calib_blocks=128, block=1024, eval_blocks=128, chats=0,
                                   sweep_eval_blocks=32, sens_eval_blocks=8, fit_tokens=8192, heal_block=1024,
                                   heal=TrainConfig(max_steps=200, batch_size=2, grad_accum=2, lr=1e-4,
                                                    scheduler="cosine", warmup_steps=20, log_every=20,
                                                    gradient_checkpointing=True)),
    # full: calibrated on the notes' OpenOrca split, evaluated on WikiText-2 test (text the OpenOrca model was not
    # tuned on, and the set SVD-LLM reports), not on OpenOrca rows
    "full": CompressionConfig(model="Open-Orca/Mistral-7B-OpenOrca", calib_corpus="oo-gpt4", eval_corpus="wikitext2",
                              calib_blocks=256, block=1024, eval_blocks=256, chats=0, openorca_rows=256,
                              sweep_eval_blocks=64, sens_eval_blocks=16, fit_tokens=16384, heal_block=1024,
                              center_draws=2, center_reductions=(0.2,),  # 2 x 3 x 32 layers of whiten bases: 0.6 h
                              # micro-batch 1 x 4 and checkpointing: see plan.full_plan
                              heal=TrainConfig(max_steps=200, batch_size=1, grad_accum=4, lr=1e-4, scheduler="cosine",
                                               warmup_steps=20, log_every=20, gradient_checkpointing=True)),
}
