"""The from-scratch pretraining core: a small GPT-NeoX trained on a corpus's train split with the training core,
its validation curve, test loss, and the unigram reference (the best model that ignores context). Used by notebook 00
and the `python -m helpers pretrain` command (accelerate-launchable)."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from .models import NeoXSize
from .train import TrainConfig


@dataclass
class PretrainConfig:
    corpus: str = "en"
    tokenizer: str = "en-bpe-8192"
    size: NeoXSize = field(default_factory=NeoXSize)
    block: int = 128
    train_docs: int | None = None            # None = the whole train split
    eval_blocks: int = 64
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if isinstance(self.size, dict):
            self.size = NeoXSize(**self.size)
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        for name in ("block", "eval_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def unigram_cross_entropy(train_blocks, eval_blocks, vocab_size: int) -> float:
    """Cross-entropy (nats/token) of the eval tokens under the train split's add-one-smoothed unigram distribution:
    the loss of the best model that ignores context. A model that learned anything must go well below it."""
    counts = Counter(t for row in train_blocks["input_ids"] for t in row)
    total = sum(counts.values()) + vocab_size
    ev = Counter(t for row in eval_blocks["input_ids"] for t in row)
    n = sum(ev.values())
    return -sum(c * math.log((counts.get(t, 0) + 1) / total) for t, c in ev.items()) / n


def head(split, n: int | None):
    """The first n rows of a datasets split (all of them for None)."""
    return split if n is None or len(split) <= n else split.select(range(n))


def lm_data(cfg: PretrainConfig):
    """(tokenizer, train, validation, test) blocks of cfg.block tokens."""
    from .data import lm_blocks, load_corpus, load_tokenizer

    tok = load_tokenizer(cfg.tokenizer)
    dsd = load_corpus(cfg.corpus)
    train = lm_blocks(head(dsd["train"], cfg.train_docs), tok, cfg.block)
    val = lm_blocks(dsd["validation"], tok, cfg.block, max_blocks=cfg.eval_blocks)
    test = lm_blocks(dsd["test"], tok, cfg.block, max_blocks=cfg.eval_blocks)
    return tok, train, val, test


def pretrain(cfg: PretrainConfig, device: str = "cpu", seed: int = 0) -> dict:
    """A small GPT-NeoX from scratch on the train split: validation curve, final validation and test loss, the
    unigram reference; a record's parts (metrics, curves, params, provenance)."""
    from .evaluate import lm_loss
    from .models import count_params, from_config, neox_config
    from .train import train_causal_lm

    tok, train, val, test = lm_data(cfg)
    model = from_config(neox_config(cfg.size, len(tok), tok.bos_token_id or 0, tok.eos_token_id or 0), device)
    n_params = count_params(model)
    res = train_causal_lm(model, train, val, cfg.train, device=device, seed=seed)
    res["metrics"]["test_loss"] = lm_loss(res.pop("model"), test, batch_size=cfg.train.batch_size,
                                          device=device)["loss"]
    res["metrics"]["unigram_ce"] = unigram_cross_entropy(train, val, len(tok))
    res["metrics"]["train_tokens_available"] = len(train) * cfg.block
    res["params"] = {"total": n_params, "non_embedding": n_params - 2 * len(tok) * cfg.size.hidden}
    return res
