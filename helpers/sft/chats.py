"""Notebook 06's data: the rows of each part (WordNet definition chats split by headword, or UltraChat /
UltraFeedback in the full profile), their encodings, and the key that records depending on them are stored under.
Kept apart from helpers.sft_study so that module stays about running."""
from __future__ import annotations

import random
import time

from datasets import load_dataset

from .. import hub
from ..data import ensure_chat_template, load_corpus, load_tokenizer
from . import trainers as sft

_MEMO: dict = {}


def load_rows(cfg) -> tuple[dict, dict]:
    """{part: rows} and the counts of how the data was made. Fixed data seed 0: the training seed changes the order
    and initialisation, never which examples exist. Parts: sft_train; policy (train-split prompts SFT never saw, to
    be answered by the SFT model); val; test (answer loss); heldout (held-out prompts to be answered); hard (WordNet
    hard-negative pairs of held-out words); gen (held-out prompts answered by every model); with UltraFeedback
    (full) also its train and held-out pairs."""
    if cfg.data == "wordnet":
        split, counts = sft.wordnet_chats(load_corpus("wordnet"))
        train, val, test = split["train"], split["validation"], split["test"]
        if cfg.system_prompt is not None:       # replaces SmolLM2's 16-token default: a third of every sequence here
            for r in train + val + test:
                r["prompt"] = [{"role": "system", "content": cfg.system_prompt}] + r["prompt"]
        for i, rows in enumerate((train, val, test)):      # the files are in WordNet order (nouns first)
            random.Random(i).shuffle(rows)
        hard = [r for r in test if r["rejected"]]
        parts = {"policy": train[cfg.train_rows:cfg.train_rows + cfg.policy_rows],
                 "heldout": test[cfg.test_rows:cfg.test_rows + cfg.heldout_rows], "hard": hard[:cfg.hard_pairs]}
    else:
        def split(repo, name):
            return hub.call(f"{repo} ({name})", load_dataset, repo, split=name)

        chat, prefs = "HuggingFaceH4/ultrachat_200k", "HuggingFaceH4/ultrafeedback_binarized"
        train = sft.chats_from_messages(split(chat, "train_sft").shuffle(seed=0), cfg.train_rows)
        test = sft.chats_from_messages(split(chat, "test_sft"), cfg.val_rows + cfg.test_rows)
        val, test = test[:cfg.val_rows], test[cfg.val_rows:]
        pool = sft.pairs_from_preferences(split(prefs, "train_prefs").shuffle(seed=0), cfg.policy_rows + cfg.val_rows)
        parts = {"pairs.train": pool[:cfg.policy_rows], "pairs.val": pool[cfg.policy_rows:],
                 "pairs.heldout": sft.pairs_from_preferences(split(prefs, "test_prefs"), cfg.heldout_rows),
                 "hard": []}
        counts = {"train": {"SFT chats": len(train), "preference pairs": len(parts["pairs.train"])}}
    parts.update(sft_train=train[:cfg.train_rows], val=val[:cfg.val_rows], test=test[:cfg.test_rows],
                 gen=test[:cfg.gen_rows])
    return parts, counts


def data_key(cfg) -> dict:
    keys = ("model", "chat_template", "data", "max_length", "system_prompt", "train_rows", "val_rows", "test_rows",
            "hard_pairs", "gen_rows", "gen_tokens")
    return {k: getattr(cfg, k) for k in keys}


def prepare(run) -> dict:
    """Tokenizer, rows and their encodings, shared by every section (kept for the kernel's lifetime)."""
    cfg = run.cfg
    key = str(data_key(cfg)) + str((cfg.policy_rows, cfg.heldout_rows))
    if key in _MEMO:
        return _MEMO[key]
    t0 = time.perf_counter()
    tok = ensure_chat_template(load_tokenizer(sft.tokenizer_name(cfg.model)), cfg.chat_template)
    parts, counts = load_rows(cfg)
    enc = {p: sft.encode_rows(tok, parts[p]) for p in ("sft_train", "val", "test")}
    data = {"tok": tok, "parts": parts, "enc": enc, "counts": counts, "hard": encode_pairs(tok, parts["hard"]),
            "lengths": {p: [len(r["input_ids"]) for r in e] for p, e in enc.items()},
            "prepare_s": time.perf_counter() - t0}
    _MEMO[key] = data
    return data


def encode_pairs(tok, pairs: list[dict]) -> dict:
    return {k: sft.encode_rows(tok, pairs, k) for k in ("chosen", "rejected")}
