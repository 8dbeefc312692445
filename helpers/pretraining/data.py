"""Notebook 07's data checks: the inputs refused before any run starts, the bigram table's own continuation of the
prompt, and the validation words a continuation's words are checked against (`word_share`).
"""
from __future__ import annotations

import re
import time

import numpy as np
import torch

from ..data import bpe_vocab, load_corpus
from ..pretrain import LMData, config_data, new_neox
from .config import PretrainStudyConfig, cell_name, cells

# ------------------------------------------------------------------------------------------------ words
WORD = re.compile(r"\w+")


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
    # the table is the prepared data's (LMData.followers: int32 ids, built once, not per sample)
    first, nxt, counts, vocab = d.followers         # the followers of token a: nxt[lo:hi] where first == a
    lam = 0.8
    uni = (counts + 1) / (counts.sum() + vocab)
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
