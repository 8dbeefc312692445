"""Notebook 00: the data, the tokenizers, a pretrained reference model and a from-scratch baseline.

Proves the stack end to end: corpus statistics per split, tokenizer fertility (tokens per word), SmolLM2's loss on
each held-out corpus, and a small GPT-NeoX trained from scratch with its train/validation curve against the
unigram-entropy line (what a model that ignores context would score).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

from .models import NeoXSize, count_params, from_config, neox_config
from .train import TrainConfig

NOTEBOOK = "00_data_and_baselines"


@dataclass
class BaselinesConfig:
    stats_corpora: tuple = ("en", "ru", "wordnet")
    stats_max_docs: int | None = None          # per split; None = all
    tokenizers: tuple = ("en-bpe-8192", "ru-bpe-8192", "smollm2")
    ref_model: str = "smollm2"                  # pretrained reference model
    ref_corpora: tuple = ("en", "ru", "wordnet")
    ref_split: str = "test"
    ref_block: int = 256
    ref_blocks: int = 16                        # blocks per corpus for the reference model's held-out loss
    lm_corpus: str = "en"
    lm_tokenizer: str = "en-bpe-8192"
    lm_size: NeoXSize = field(default_factory=NeoXSize)
    lm_block: int = 128
    lm_train_docs: int | None = None            # None = the whole train split
    lm_eval_blocks: int = 64
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if isinstance(self.lm_size, dict):
            self.lm_size = NeoXSize(**self.lm_size)
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        if self.ref_split not in ("validation", "test"):
            raise ValueError(f"ref_split must be a held-out split (validation or test), got '{self.ref_split}'")
        for name in ("ref_block", "ref_blocks", "lm_block", "lm_eval_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


PROFILES = {
    "tiny": BaselinesConfig(
        stats_max_docs=40, ref_blocks=2, ref_block=64, lm_size=NeoXSize(hidden=32, layers=2, heads=2),
        lm_block=32, lm_train_docs=20, lm_eval_blocks=8,
        train=TrainConfig(max_steps=30, batch_size=8, lr=3e-3, eval_every=15, log_every=5, warmup_steps=3,
                          scheduler="cosine", progress=False)),
    "local": BaselinesConfig(
        ref_blocks=24, ref_block=256, lm_size=NeoXSize(hidden=128, layers=4, heads=4), lm_block=128,
        lm_eval_blocks=96,
        train=TrainConfig(max_steps=600, batch_size=16, lr=2e-3, eval_every=100, log_every=20, warmup_steps=30,
                          scheduler="cosine", weight_decay=0.1, adam_beta2=0.95, time_budget_s=240)),
    "full": BaselinesConfig(
        stats_corpora=("wikitext2",), tokenizers=("EleutherAI/pythia-410m",),
        ref_model="HuggingFaceTB/SmolLM2-135M-Instruct", ref_corpora=("wikitext2",), ref_blocks=256, ref_block=1024,
        lm_corpus="wikitext2", lm_tokenizer="EleutherAI/pythia-410m",
        lm_size=NeoXSize(hidden=512, layers=8, heads=8), lm_block=1024, lm_eval_blocks=256,
        train=TrainConfig(max_steps=3000, batch_size=8, grad_accum=2, lr=6e-4, eval_every=250, log_every=50,
                          warmup_steps=100, scheduler="cosine", weight_decay=0.1, adam_beta2=0.95)),
}


def _head(split, n):
    return split if n is None or len(split) <= n else split.select(range(n))


def corpus_statistics(cfg: BaselinesConfig) -> list[dict]:
    """One row per (corpus, split) with documents, chars, words, tokens and fertility for every tokenizer."""
    from .data import corpus_stats, load_corpus, load_tokenizer

    toks = {name: load_tokenizer(name) for name in cfg.tokenizers}
    rows = []
    for corpus in cfg.stats_corpora:
        dsd = load_corpus(corpus)
        dsd = {s: _head(dsd[s], cfg.stats_max_docs) for s in ("train", "validation", "test")}
        rows += [{"corpus": corpus, **r} for r in corpus_stats(dsd, toks)]
    return rows


def reference_losses(cfg: BaselinesConfig, device: str = "cpu") -> dict:
    """The pretrained reference model's token-weighted loss on the held-out split of each corpus."""
    import torch

    from .data import lm_blocks, load_corpus, load_pretrained, load_tokenizer
    from .evaluate import lm_loss

    tok_name = "smollm2" if cfg.ref_model == "smollm2" else cfg.ref_model
    tok = load_tokenizer(tok_name)
    model = load_pretrained(cfg.ref_model, dtype=torch.float32).to(device)
    out = {"params": count_params(model)}
    for corpus in cfg.ref_corpora:
        blocks = lm_blocks(load_corpus(corpus)[cfg.ref_split], tok, cfg.ref_block, max_blocks=cfg.ref_blocks)
        res = lm_loss(model, blocks, batch_size=4, device=device)
        # per-token loss is not comparable across languages (a tokenizer that splits Russian into bytes gets more,
        # easier tokens); bits per character is
        chars = sum(len(tok.decode(row[1:])) for row in blocks["input_ids"])
        res["bits_per_char"] = res["loss"] * res["tokens"] / chars / math.log(2)
        out[corpus] = res
    return out


def unigram_cross_entropy(train_blocks, eval_blocks, vocab_size: int) -> float:
    """Cross-entropy (nats/token) of the eval tokens under the train split's add-one-smoothed unigram distribution:
    the loss of the best model that ignores context. A model that learned anything must go well below it."""
    counts = Counter(t for row in train_blocks["input_ids"] for t in row)
    total = sum(counts.values()) + vocab_size
    ev = Counter(t for row in eval_blocks["input_ids"] for t in row)
    n = sum(ev.values())
    return -sum(c * math.log((counts.get(t, 0) + 1) / total) for t, c in ev.items()) / n


def lm_data(cfg: BaselinesConfig):
    from .data import lm_blocks, load_corpus, load_tokenizer

    tok = load_tokenizer(cfg.lm_tokenizer)
    dsd = load_corpus(cfg.lm_corpus)
    train = lm_blocks(_head(dsd["train"], cfg.lm_train_docs), tok, cfg.lm_block)
    val = lm_blocks(dsd["validation"], tok, cfg.lm_block, max_blocks=cfg.lm_eval_blocks)
    test = lm_blocks(dsd["test"], tok, cfg.lm_block, max_blocks=cfg.lm_eval_blocks)
    return tok, train, val, test


def pretrain_small_lm(cfg: BaselinesConfig, device: str = "cpu", seed: int = 0) -> dict:
    """A small GPT-NeoX from scratch on the train split; validation curve; final validation and test loss."""
    from .evaluate import lm_loss
    from .train import train_causal_lm

    tok, train, val, test = lm_data(cfg)
    model = from_config(neox_config(cfg.lm_size, len(tok), tok.bos_token_id or 0, tok.eos_token_id or 0), device)
    n_params = count_params(model)
    res = train_causal_lm(model, train, val, cfg.train, device=device, seed=seed)
    res["metrics"]["test_loss"] = lm_loss(res["model"], test, batch_size=cfg.train.batch_size, device=device)["loss"]
    res["metrics"]["unigram_ce"] = unigram_cross_entropy(train, val, len(tok))
    res["metrics"]["train_tokens_available"] = len(train) * cfg.lm_block
    res["params"] = {"total": n_params, "non_embedding": n_params - 2 * len(tok) * cfg.lm_size.hidden}
    return res


def pretrain_cli(profile: str, seed: int, max_steps: int | None) -> None:
    """`python -m helpers pretrain` / `accelerate launch -m helpers pretrain`: the same run as the notebook's section.

    Under accelerate/torchrun every process trains on its shard (the Trainer handles DDP); rank 0 writes the record.
    """
    import dataclasses
    import os

    from .profiles import resolve
    from .results import save_run

    run = resolve(NOTEBOOK, PROFILES, profile, seed=seed, quiet=int(os.environ.get("RANK", 0)) != 0)
    cfg = run.cfg
    if max_steps:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=max_steps))
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if run.device == "cuda" else run.device
    res = pretrain_small_lm(cfg, device=device, seed=seed)
    if int(os.environ.get("RANK", 0)) == 0:
        path = save_run(NOTEBOOK, "pretrain", "neox-from-scratch-cli", asdict(cfg), res["metrics"], profile=run.profile,
                        seed=seed, curves=res["curves"], params=res["params"], provenance=res["provenance"],
                        device=run.device)
        print(f"eval_loss {res['metrics'].get('eval_loss'):.4f}  world_size {res['provenance']['world_size']}  -> {path}")
