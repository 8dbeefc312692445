"""The from-scratch LM core, one path for notebooks 00, 01-03 and 07: a corpus cut into blocks by a tokenizer (one
per-process cache, so the workers of a sweep tokenize once), the trivial references of those tokens (unigram and
interpolated bigram tables of the train split, scored on the validation blocks), and training + evaluation of a
randomly initialised model on them. `pretrain(cfg)` is notebook 00's GPT-NeoX and the `python -m helpers pretrain`
command (accelerate-launchable); seed 000 builds Pythia stand-ins with surgery and seed 003 Russian LMs on the same
data and references.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .data import lm_blocks, load_corpus, load_tokenizer, prepared, script_share
from .evaluate import lm_loss
from .models import NeoXSize, count_params, from_config, neox_config
from .train import TrainConfig, train_causal_lm


@dataclass
class PretrainConfig:
    corpus: str = "en"
    tokenizer: str = "en-bpe-8192"
    size: NeoXSize = field(default_factory=NeoXSize)
    block: int = 128
    train_docs: int | None = None            # None = the whole train split
    # the train split's first ceil(train_tokens / block) blocks (tokenizing only the documents they need); None: no
    # cap (tiny/local). The GPU profiles cap it at what their budgets can consume (helpers.pretraining.plan); None is
    # left out of every record's key (results.result_config), so the uncapped profiles' run ids are unchanged
    train_tokens: int | None = None
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
        if self.train_tokens is not None and self.train_tokens < self.block:
            raise ValueError(f"train_tokens must be None or >= one block ({self.block}), got {self.train_tokens}")


IDS = np.int32     # token ids in host arrays: every vocabulary here is < 2^31; arithmetic on ids (pair codes) in int64


def _ids(blocks):
    """(n_blocks, block) int32 array of a blocks dataset (or {"input_ids": [[...], ...]}): 4 bytes a token, not 8
    (the counts and the ids' values are those of int64 ids; pair codes a * V + b are formed in int64)."""
    if hasattr(blocks, "with_format"):
        # slicing the numpy-formatted column is one Arrow copy (np.asarray of the column object walks rows: 15 s at 7M)
        return np.asarray(blocks.with_format("numpy")["input_ids"][:], dtype=IDS).reshape(len(blocks), -1)
    return np.asarray(blocks["input_ids"], dtype=IDS)


def unigram_cross_entropy(train_blocks, eval_blocks, vocab_size: int) -> float:
    """Cross-entropy (nats/token) of the eval tokens under the train split's add-one-smoothed unigram distribution:
    the loss of the best model that ignores context. A model that learned anything must go well below it."""
    train, ev = _ids(train_blocks).ravel(), _ids(eval_blocks).ravel()
    width = max(vocab_size, int(train.max(initial=0)) + 1, int(ev.max(initial=0)) + 1)
    counts = np.bincount(train, minlength=width)
    p = (counts[ev] + 1) / (len(train) + vocab_size)
    return float(-np.log(p).mean())


def bigram_cross_entropy(train_blocks, eval_blocks, vocab_size: int, lam: float = 0.8) -> float:
    """Cross-entropy (nats/token) of the eval tokens under an interpolated bigram table of the train split:
    p(b | a) = lam * count(a, b) / count(a) + (1 - lam) * unigram(b) (add-one unigram; pairs within a block). The
    best model that reads only the previous token scores about this; a model that uses context must go below it."""
    train, ev = _ids(train_blocks), _ids(eval_blocks)
    width = max(vocab_size, int(train.max(initial=0)) + 1, int(ev.max(initial=0)) + 1)
    uni = np.bincount(train.ravel(), minlength=width)
    a, b = train[:, :-1].ravel(), train[:, 1:].ravel()
    firsts = np.bincount(a, minlength=width)
    # pair (a, b) -> one int64 code; counts looked up by binary search (a dense V x V table is 2.5e9 cells at 50k)
    codes, pair_counts = np.unique(a.astype(np.int64) * width + b, return_counts=True)
    ea, eb = ev[:, :-1].ravel(), ev[:, 1:].ravel()
    q = ea.astype(np.int64) * width + eb
    at = np.clip(np.searchsorted(codes, q), 0, max(len(codes) - 1, 0))
    seen = (codes[at] == q) if len(codes) else np.zeros(len(q), bool)
    n_ab = np.where(seen, pair_counts[at] if len(codes) else 0, 0)
    n_a = firsts[ea]
    p_bi = np.divide(n_ab, n_a, out=np.zeros(len(q)), where=n_a > 0)
    p_uni = (uni[eb] + 1) / (train.size + vocab_size)
    return float(-np.log(lam * p_bi + (1 - lam) * p_uni).mean()) if len(q) else 0.0


def ngram_ladder(train_blocks, eval_blocks, vocab_size: int, orders=(2, 3, 4, 5), seen: dict | None = None) -> dict:
    """{n: cross-entropy (nats/token)} of the eval tokens under interpolated n-gram tables of the train blocks, for
    each order n in `orders`: the references a model of these tokens must beat for each extra token of context it
    claims to use.

    Witten-Bell interpolation, no parameter to tune: p_n(w | h) = (c(h, w) + u(h) p_{n-1}(w | h')) / (c(h) + u(h)),
    h the n-1 tokens before w, h' its last n-2, u(h) the number of distinct tokens that follow h in train; a history
    train never shows backs off to p_{n-1} whole (so a higher order is never much worse than the one below it, as a
    fixed weight would make it on contexts it has not seen). p_1 is the add-one unigram of unigram_cross_entropy. (The
    records' `bigram_ce`, bigram_cross_entropy, interpolates with a fixed 0.8 instead; the two bigrams differ a little.)
    Windows lie within one block (none spans a block boundary, in train or eval), and a target with fewer than n-1
    tokens before it in its block takes the highest order its history allows: every order scores the targets the
    model's loss scores, every token of an eval block but its first.

    How: a window of k tokens gets an integer id from (id of its first k-1 tokens, its last token), train and eval
    numbered together so that equal windows share an id; counts are bincounts of the train rows' ids (int64 codes,
    so a 50k vocabulary at order 5 cannot overflow).

    `seen`, a dict, receives {n: share of the eval blocks' n-token windows that occur verbatim in the train blocks}:
    how much of the evaluation text an order-n table (or a model that memorised its train text) has seen before."""
    orders = tuple(sorted(set(orders)))
    if not orders or not all(isinstance(n, int) and n >= 2 for n in orders):
        raise ValueError(f"orders must be integers >= 2 (order 1 is unigram_cross_entropy), got {orders}")
    train, ev = _ids(train_blocks).astype(np.int64), _ids(eval_blocks).astype(np.int64)
    if train.shape[1] != ev.shape[1]:
        raise ValueError(f"train and eval blocks differ in length ({train.shape[1]} vs {ev.shape[1]} tokens)")
    if ev.shape[1] < 2:
        return {n: 0.0 for n in orders}
    width = max(vocab_size, int(train.max(initial=0)) + 1, int(ev.max(initial=0)) + 1)
    rows = len(train)                                                # train rows first, then eval rows
    both = np.concatenate([train, ev])                               # (R, B)
    uni = np.bincount(train.ravel(), minlength=width)
    p = (uni[ev[:, 1:]] + 1) / (train.size + vocab_size)            # p_1 of every target, (E, B-1)
    out, win = {}, both                                              # win[:, j]: id of the window starting at j
    for n in range(2, orders[-1] + 1):
        hist = win[:, :-1]                                           # (R, B-n+1): n-1 tokens, a token follows
        if hist.shape[1] == 0:                                       # n > B: no target has n-1 tokens before it
            out.update({m: float(-np.log(p).mean()) for m in orders if m >= n})
            break
        codes, grams = np.unique(hist * width + both[:, n - 1:], return_inverse=True)
        grams = grams.reshape(hist.shape)                            # the n-token windows, same starts
        n_ids = int(win.max()) + 1
        c_hist = np.bincount(hist[:rows].ravel(), minlength=n_ids)
        c_gram = np.bincount(grams[:rows].ravel(), minlength=len(codes))
        u_hist = np.bincount(codes[c_gram > 0] // width, minlength=n_ids)   # distinct followers per history
        h, g = hist[rows:], grams[rows:]                             # eval: window j predicts target j + n - 2
        lower = p[:, n - 2:]
        mix = (c_gram[g] + u_hist[h] * lower) / np.maximum(c_hist[h] + u_hist[h], 1)
        p = np.concatenate([p[:, :n - 2], np.where(c_hist[h] > 0, mix, lower)], axis=1)
        win = grams
        if n in orders:
            out[n] = float(-np.log(p).mean())
            if seen is not None:
                seen[n] = float((c_gram[g] > 0).mean())
    return out


def head(split, n: int | None):
    """The first n rows of a datasets split (all of them for None)."""
    return split if n is None or len(split) <= n else split.select(range(n))


def check_corpus(dsd, corpus: str, script: str | None = None, min_share: float = 0.5) -> None:
    """Refuse a corpus that is empty or, when `script` is given, not mostly written in it (e.g. an English file
    handed to the Russian study)."""
    texts = [t for t in dsd["train"]["text"][:2000] if t.strip()]
    if not texts:
        raise ValueError(f"corpus {corpus!r} has no text in its train split")
    if script is not None:
        share = script_share(texts, script)
        if share < min_share:
            raise ValueError(f"corpus {corpus!r} is not {script} text: {share:.0%} of its letters are {script} "
                             f"(need >= {min_share:.0%}); give a {script} corpus")


@dataclass
class LMData:
    """A corpus as LM blocks of one tokenizer: train, validation (the first eval_blocks) and, on first use, test."""

    tok: object
    train: object
    val: object
    corpus: str
    block: int
    eval_blocks: int | None
    spread: bool = False              # validation / test samples evenly spaced over the split (lm_data)
    _test: object = None
    _refs: dict | None = None
    _followers: tuple | None = None
    _ladder: dict | None = None
    _seen: dict | None = None

    @property
    def vocab(self) -> int:
        return len(self.tok)

    @property
    def test(self):
        if self._test is None:
            self._test = sample_blocks(load_corpus(self.corpus)["test"], self.tok, self.block, self.eval_blocks,
                                       self.spread)
        return self._test

    @property
    def references(self) -> dict:
        """{"unigram_ce", "bigram_ce"}: the trivial references of these tokens (tables of the train blocks, scored
        on the validation blocks), nats per token; computed once."""
        if self._refs is None:
            self._refs = {"unigram_ce": unigram_cross_entropy(self.train, self.val, self.vocab),
                          "bigram_ce": bigram_cross_entropy(self.train, self.val, self.vocab)}
        return self._refs

    @property
    def ladder(self) -> dict:
        """{n: cross-entropy} of the interpolated n-gram tables (ngram_ladder, n = 2..5) of the train blocks, scored
        on the validation blocks, nats per token: the rungs a model of these tokens must clear for each token of
        context it claims to use; computed once."""
        if self._ladder is None:
            self._seen = {}
            self._ladder = ngram_ladder(self.train, self.val, self.vocab, seen=self._seen)
        return self._ladder

    @property
    def seen(self) -> dict:
        """{n: share of the validation blocks' n-token windows found verbatim in the train blocks}, n = 2..5 (the
        ladder's orders; computed with it)."""
        if self._seen is None:
            self.ladder
        return self._seen

    @property
    def followers(self) -> tuple:
        """(first, nxt, unigram counts, width) of the train blocks' within-block pairs, sorted by their first token
        (stable: the followers of token a are nxt[lo:hi] where first == a), int32 ids: the bigram table a sampler
        reads (helpers.pretraining.data.bigram_sample). Like the references, built once per prepared data (this
        object, which lm_data keeps per process and setting), never per run or per sample."""
        if self._followers is None:
            ids = _ids(self.train)
            width = max(self.vocab, int(ids.max(initial=0)) + 1)
            first, nxt = ids[:, :-1].ravel(), ids[:, 1:].ravel()
            order = np.argsort(first, kind="stable")
            self._followers = (first[order], nxt[order], np.bincount(ids.ravel(), minlength=width), width)
        return self._followers


def spread_rows(n: int, k: int | None) -> list[int]:
    """k row indices evenly spaced over n rows (floor(i * n / k), i < k), all n rows for None or k >= n: a sample
    of a split that reaches every part of it (every document of a validation split ordered by document), fixed by
    n and k alone."""
    if k is None or k >= n:
        return list(range(n))
    return [i * n // k for i in range(k)]


def sample_blocks(split, tok, block: int, k: int | None, spread: bool = False):
    """k blocks of a split (None: all): its first k (tokenizing only the documents they need), or with spread k
    evenly spaced over all of its blocks (spread_rows)."""
    if not spread:
        return lm_blocks(split, tok, block, max_blocks=k)
    blocks = lm_blocks(split, tok, block)
    return blocks.select(spread_rows(len(blocks), k))


def lm_data(corpus: str, tokenizer: str, block: int, train_docs: int | None = None, eval_blocks: int | None = None,
            script: str | None = None, train_tokens: int | None = None, spread: bool = False) -> LMData:
    """The corpus's train split (its first train_docs documents; with train_tokens, only their first
    ceil(train_tokens / block) blocks, tokenizing only the documents those need) and validation split (its first
    eval_blocks blocks; None: all) as blocks of `block` tokens, prepared once per process and setting
    (helpers.data.prepared; the n-gram references and tables are then computed once on it: LMData). With spread,
    both samples are evenly spaced over the whole split instead of its first blocks (spread_rows): evaluation text
    from every document, not the first one or two, and train blocks from every part of the train split. Refuses a
    corpus with less than one train and one validation block, or (with `script`) one not written in that script."""
    def build() -> LMData:
        tok = load_tokenizer(tokenizer)
        dsd = load_corpus(corpus)
        check_corpus(dsd, corpus, script)
        n_train = None if train_tokens is None else -(-train_tokens // block)
        train = sample_blocks(head(dsd["train"], train_docs), tok, block, n_train, spread)
        val = sample_blocks(dsd["validation"], tok, block, eval_blocks, spread)
        for name, blocks in (("train", train), ("validation", val)):
            if len(blocks) < 1:
                raise ValueError(f"corpus {corpus!r} has fewer tokens in its {name} split than one block of "
                                 f"{block}; use a larger corpus or a smaller block")
        return LMData(tok, train, val, corpus, block, eval_blocks, spread)

    key = (corpus, tokenizer, block, train_docs, eval_blocks, script) + ((train_tokens,) if train_tokens else ()) \
        + (("spread",) if spread else ())
    return prepared(("lm",) + key, build)


def config_data(cfg: "PretrainConfig", script: str | None = None) -> LMData:
    """lm_data of a PretrainConfig."""
    return lm_data(cfg.corpus, cfg.tokenizer, cfg.block, cfg.train_docs, cfg.eval_blocks, script, cfg.train_tokens)


def bits_per_char(loss: float, blocks, tok) -> float:
    """nats/token over blocks -> bits per character of the predicted text (comparable across tokenizers)."""
    tokens = sum(len(row) - 1 for row in blocks["input_ids"])
    chars = sum(len(tok.decode(row[1:])) for row in blocks["input_ids"])
    return loss * tokens / max(chars, 1) / math.log(2)


def generate(model, tok, prompt: str, new_tokens: int = 64, sample: bool = False, seed: int = 0,
             temperature: float = 0.8, top_k: int = 50, device: str = "cpu") -> str:
    """The prompt's continuation (greedy, or sampled with a fixed seed); refuses a prompt that tokenizes to nothing."""
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"prompt {prompt!r} tokenizes to no tokens; give a non-empty prompt")
    torch.manual_seed(seed)
    model.eval()
    with torch.no_grad():
        out = model.generate(torch.tensor([ids], device=device), max_new_tokens=new_tokens, do_sample=sample,
                             temperature=temperature if sample else None, top_k=top_k if sample else None,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    return tok.decode(out[0, len(ids):], skip_special_tokens=True)


def new_neox(size: NeoXSize, tok, seed: int, device: str = "cpu"):
    """A randomly initialised GPT-NeoX for this tokenizer; the initial weights belong to the seed, whatever ran
    before in this process."""
    torch.manual_seed(seed)
    return from_config(neox_config(size, len(tok), tok.bos_token_id or 0, tok.eos_token_id or 0), device)


def pretrain(cfg: PretrainConfig, device: str = "cpu", seed: int = 0) -> dict:
    """A small GPT-NeoX from scratch on the train split: validation curve, final validation and test loss, the
    unigram and bigram references and the n-gram ladder of its tokens (LMData.ladder); a record's parts (metrics,
    curves, params, provenance)."""
    data = config_data(cfg)
    model = new_neox(cfg.size, data.tok, seed, device)
    n_params = count_params(model)
    res = train_causal_lm(model, data.train, data.val, cfg.train, device=device, seed=seed)
    res["metrics"]["test_loss"] = lm_loss(res.pop("model"), data.test, batch_size=cfg.train.batch_size,
                                          device=device)["loss"]
    res["metrics"].update(data.references)
    res["metrics"]["ngram_ce"] = {str(n): ce for n, ce in data.ladder.items()}
    res["metrics"]["train_tokens_available"] = len(data.train) * cfg.block
    res["params"] = {"total": n_params, "non_embedding": n_params - 2 * data.vocab * cfg.size.hidden}
    return res
