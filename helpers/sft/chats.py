"""Notebook 06's data: every row it trains or scores on, built here, and the key the records depending on them are
stored under. Local: WordNet synsets as one-turn chats; full profile: UltraChat (SFT) and UltraFeedback (DPO) in the
same row format.

WordNet chats: the question pins the sense, so the gloss is the one right answer: a synset whose usage example
contains the word is asked about in that context ('What does "bank" mean in "they pulled the canoe up on the bank"?');
a word with a single sense in WordNet is asked plainly ('What does the noun "cell" mean?'); a word with several senses
and no example of this one is skipped (it has several right answers). Preference pairs: the same prompt; chosen = the
synset's gloss; rejected = a hard negative, the gloss of another sense of the same word (wrong in this context), else
the gloss of a sibling synset (same hypernym); or, on-policy, the SFT model's own wrong answer. The corpus is split by
headword, so held-out words never appear in training.

Rows: {"prompt": [user message], "completion": [assistant message], "chosen"/"rejected": [assistant message] or
None, "word", "kind"}: TRL's conversational prompt-completion and preference formats.
"""
from __future__ import annotations

import random
import re
import time
from collections import Counter

from datasets import load_dataset

from .. import hub
from ..assets import FETCH_CMD
from ..data import encode_chat, ensure_chat_template, load_corpus, load_tokenizer, prepared
from .measure import token_f1
from .models import tokenizer_name

LONG_MODES = ("drop", "truncate")


class DataError(ValueError):
    pass


# ------------------------------------------------------------------------------------------------ WordNet chats
def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def sense_index(docs: list[dict]) -> dict[str, list[int]]:
    """lemma (lower case) -> indices of every synset that has it as headword or synonym, all splits together."""
    index: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        for lemma in {d["word"].lower(), *(s.lower() for s in d["synonyms"])}:
            index.setdefault(lemma, []).append(i)
    return index


def pinned_question(doc: dict, n_senses: int) -> tuple[str, str] | None:
    """(question, how) whose one right answer is this synset's gloss, or None when the word is ambiguous here."""
    word = doc["word"]
    # the pattern only for examples that contain the word at all: compiling one per synset (117k, beyond re's cache)
    # was 3/4 of preparing 06's data; over all 117,659 synsets this gives the same 81,072 questions as before
    low = word.lower()
    hits = [ex for ex in doc["examples"] if low in ex.lower()]
    pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE) if hits else None
    for ex in hits:
        if pattern.search(ex):
            return f'What does "{word}" mean in "{ex}"?', "usage example"
    if n_senses == 1:
        return f'What does the {doc["pos"]} "{word}" mean?', "single sense"
    return None


def hard_negative(i: int, docs: list[dict], senses: dict, children: dict, rng: random.Random) -> tuple[int, str] | None:
    """(index, kind) of a gloss that is wrong for synset i's pinned question but close to it: another sense of the
    same word (same part of speech first), else a sibling under the same hypernym; None when there is neither."""
    d = docs[i]
    gloss = d["definition"].strip().lower()
    ok = [j for j in senses.get(d["word"].lower(), []) if j != i and docs[j]["definition"].strip().lower() != gloss]
    same_pos = [j for j in ok if docs[j]["pos"] == d["pos"]]
    if same_pos or ok:
        return rng.choice(same_pos or ok), "other sense"
    sibs = sorted({j for h in d["hypernyms"] for j in children.get(h, ()) if j != i
                   and docs[j]["definition"].strip().lower() != gloss})
    return (rng.choice(sibs), "sibling") if sibs else None


def wordnet_chats(corpus, seed: int = 0) -> tuple[dict[str, list[dict]], dict]:
    """{split: rows} of sense-pinned chats with hard negatives, and counts of how each prompt and pair was made."""
    splits = {s: corpus[s].to_list() for s in ("train", "validation", "test")}
    docs = [d for s in ("train", "validation", "test") for d in splits[s]]
    if docs and "hypernyms" not in docs[0]:
        raise DataError(f"the prepared WordNet corpus predates hypernym pointers; rebuild it with: {FETCH_CMD}")
    senses = sense_index(docs)
    children: dict[str, list[int]] = {}
    for j, d in enumerate(docs):
        for h in d["hypernyms"]:
            children.setdefault(h, []).append(j)
    out, stats, offset = {}, {}, 0
    for split in ("train", "validation", "test"):
        rows, count = [], Counter()
        for k, d in enumerate(splits[split]):
            i = offset + k
            q = pinned_question(d, len(senses.get(d["word"].lower(), [])))
            if q is None:
                count["skipped: several senses, no usage example"] += 1
                continue
            neg = hard_negative(i, docs, senses, children, random.Random(f"{seed}:{d['doc']}"))
            count[f"prompt by {q[1]}"] += 1
            count[f"negative: {neg[1] if neg else 'none'}"] += 1
            rows.append({"prompt": _user(q[0]), "completion": _assistant(d["definition"]),
                         "chosen": _assistant(d["definition"]),
                         "rejected": _assistant(docs[neg[0]]["definition"]) if neg else None,
                         "word": d["word"], "kind": neg[1] if neg else None})
        offset += len(splits[split])
        out[split] = rows
        stats[split] = dict(sorted(count.items()))
    return out, stats


# ------------------------------------------------------------------------------------------------ hub chats (full)
def check_columns(ds, needed: tuple, what: str) -> None:
    have = list(getattr(ds, "column_names", None) or (ds[0].keys() if len(ds) else []))
    missing = [c for c in needed if c not in have]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing}; it has {have}. Give a dataset with {list(needed)}")


def chats_from_messages(ds, n: int | None = None) -> list[dict]:
    """UltraChat-style rows (messages = alternating turns) -> prompt = every turn before the last assistant answer,
    completion = that answer."""
    check_columns(ds, ("messages",), "the SFT dataset")
    rows = []
    for ex in ds.select(range(min(n or len(ds), len(ds)))):
        msgs = ex["messages"]
        if len(msgs) >= 2 and msgs[-1]["role"] == "assistant":
            rows.append({"prompt": msgs[:-1], "completion": msgs[-1:], "chosen": None, "rejected": None,
                         "word": msgs[-2]["content"][:40], "kind": None})
    return rows


def pairs_from_preferences(ds, n: int | None = None) -> list[dict]:
    """UltraFeedback-binarized rows (chosen / rejected = whole conversations) -> prompt + last answers."""
    check_columns(ds, ("prompt", "chosen", "rejected"), "the preference dataset")
    rows = []
    for ex in ds.select(range(min(n or len(ds), len(ds)))):
        c, r = ex["chosen"], ex["rejected"]
        if isinstance(c, str):           # plain-text preference rows: the prompt is its own column
            prompt, c, r = _user(ex["prompt"]), _assistant(c), _assistant(r)
        else:
            prompt, c, r = c[:-1], c[-1:], r[-1:]
        rows.append({"prompt": prompt, "completion": c, "chosen": c, "rejected": r,
                     "word": ex["prompt"][:40], "kind": "preference"})
    return rows


# ------------------------------------------------------------------------------------------------ tokens
def encode_rows(tok, rows: list[dict], key: str = "completion") -> list[dict]:
    """Each row's prompt + rows[key] as token ids with labels -100 on the prompt (helpers.data.encode_chat)."""

    return [encode_chat(tok, r["prompt"], r[key]) for r in rows]


def fit_length(rows: list[dict], lengths: list[int], max_length: int, mode: str = "drop") -> tuple[list[dict], dict]:
    """The author's lesson as a switch: rows over `max_length` tokens are dropped, or kept for the trainer to cut
    (TRL's max_length keeps the start, so the end of the answer and its end-of-turn token are lost)."""
    if mode not in LONG_MODES:
        raise ValueError(f"unknown long-example mode '{mode}'; allowed: {', '.join(LONG_MODES)}")
    long = sum(n > max_length for n in lengths)
    kept = [r for r, n in zip(rows, lengths) if n <= max_length] if mode == "drop" else list(rows)
    if not kept:
        raise DataError(f"every one of the {len(rows)} examples is longer than max_length={max_length} tokens; "
                        f"nothing is left to train on. Raise max_length (longest: {max(lengths, default=0)})")
    return kept, {"examples": len(rows), "over_max_length": long, "dropped": long if mode == "drop" else 0,
                  "truncated": long if mode == "truncate" else 0, "max_length": max_length}


# ------------------------------------------------------------------------------------------------ on-policy pairs
def on_policy_pairs(rows: list[dict], answers: list[str], max_f1: float = 0.3) -> tuple[list[dict], dict]:
    """Preference pairs from a model's own answers (the UltraFeedback-style on-policy recipe): for each prompt whose
    answer is wrong (token F1 against the reference below max_f1) and not empty, chosen = the reference, rejected =
    the model's answer. Counts say how many prompts were answered right (no pair), empty, or wrong (a pair). Refuses
    answers that are mostly empty (a generation or template fault, not a preference)."""
    if len(rows) != len(answers):
        raise DataError(f"{len(rows)} prompts but {len(answers)} answers: the answers must be to these prompts")
    empty = sum(not a.strip() for a in answers)
    if answers and empty > len(answers) / 2:
        raise DataError(f"the model answered {empty} of {len(answers)} prompts with nothing: check the chat template "
                        "and raise gen_tokens before building pairs from its answers")
    pairs, count = [], Counter()
    for row, answer in zip(rows, answers):
        ref = row["completion"][0]["content"]
        f1 = token_f1(answer, ref)
        if not answer.strip():
            count["empty answer"] += 1
        elif f1 >= max_f1:
            count[f"right (F1 >= {max_f1:g}): no pair"] += 1
        else:
            count["wrong: a pair"] += 1
            pairs.append({**row, "chosen": _assistant(ref), "rejected": _assistant(answer), "kind": "own answer",
                          "f1": f1})
    return pairs, dict(count)


def check_pairs(pairs: list[dict]) -> None:
    """Refuse a preference set in which a pair's chosen and rejected answers are the same text: DPO has nothing to
    learn from it, and an accuracy over it is a coin flip."""
    same = [i for i, p in enumerate(pairs) if p["chosen"][0]["content"].strip() == p["rejected"][0]["content"].strip()]
    if same:
        raise DataError(f"{len(same)} of {len(pairs)} preference pairs have identical chosen and rejected answers "
                        f"(first at index {same[0]}); drop them before training or scoring")


def drop_long_pairs(tok, pairs: list[dict], max_length: int) -> tuple[list[dict], int]:
    """Pairs whose prompt + chosen or prompt + rejected is longer than max_length tokens are dropped, not truncated
    (TRL would cut the end of the answer: the notebook's first lesson, applied to DPO). Returns (kept, dropped)."""
    kept = [p for p in pairs if all(len(encode_chat(tok, p["prompt"], p[k])["input_ids"]) <= max_length
                                    for k in ("chosen", "rejected"))]
    return kept, len(pairs) - len(kept)


# ------------------------------------------------------------------------------------------------ rows of each part
def load_rows(cfg) -> tuple[dict, dict]:
    """{part: rows} and the counts of how the data was made. Fixed data seed 0: the training seed changes the order
    and initialisation, never which examples exist. Parts: sft_train; policy (train-split prompts SFT never saw, to
    be answered by the SFT model); val; test (answer loss); heldout (held-out prompts to be answered); hard (WordNet
    hard-negative pairs of held-out words); gen (held-out prompts answered by every model); with UltraFeedback
    (full) also its train and held-out pairs."""
    if cfg.data == "wordnet":
        split, counts = wordnet_chats(load_corpus("wordnet"))
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
        train = chats_from_messages(split(chat, "train_sft").shuffle(seed=0), cfg.train_rows)
        test = chats_from_messages(split(chat, "test_sft"), cfg.val_rows + cfg.test_rows)
        val, test = test[:cfg.val_rows], test[cfg.val_rows:]
        pool = pairs_from_preferences(split(prefs, "train_prefs").shuffle(seed=0), cfg.policy_rows + cfg.val_rows)
        parts = {"pairs.train": pool[:cfg.policy_rows], "pairs.val": pool[cfg.policy_rows:],
                 "pairs.heldout": pairs_from_preferences(split(prefs, "test_prefs"), cfg.heldout_rows),
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
    """Tokenizer, rows and their encodings, shared by every section (kept for the kernel's lifetime:
    helpers.data.prepared)."""
    cfg = run.cfg
    key = str(data_key(cfg)) + str((cfg.policy_rows, cfg.heldout_rows))
    return prepared(("sft", key), lambda: _prepare(cfg))


def _prepare(cfg) -> dict:
    t0 = time.perf_counter()
    tok = ensure_chat_template(load_tokenizer(tokenizer_name(cfg.model)), cfg.chat_template)
    parts, counts = load_rows(cfg)
    enc = {p: encode_rows(tok, parts[p]) for p in ("sft_train", "val", "test")}
    data = {"tok": tok, "parts": parts, "enc": enc, "counts": counts, "hard": encode_pairs(tok, parts["hard"]),
            "lengths": {p: [len(r["input_ids"]) for r in e] for p, e in enc.items()},
            "prepare_s": time.perf_counter() - t0}
    return data


def encode_pairs(tok, pairs: list[dict]) -> dict:
    return {k: encode_rows(tok, pairs, k) for k in ("chosen", "rejected")}
