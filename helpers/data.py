"""Corpora, tokenizers and pretrained models behind one API for all three profiles.

Local corpora (prepared by `python -m helpers assets`):
  en       Jane Austen's six novels (r-cran-janeaustenr) + the King James Bible (bible-kjv); document = chapter
  ru       fortunes-ru + manpages-ru + gimp-help-ru, Cyrillic-dominant lines only; document = file
  wordnet  WordNet 3.0 glosses (wordnet-base); document = synset, split by headword
Any UTF-8 text file works too: load_corpus("/path/to/file.txt") (document = 20 consecutive paragraphs).
Hub corpora (full profile): "wikitext2" = Salesforce/wikitext, wikitext-2-raw-v1, with its own splits.

The split rule, fixed and by document (never by random line, so held-out text is really held out):
  bucket = int(sha1(document key)) mod 100;  bucket < 5 -> test,  5 <= bucket < 10 -> validation,  else train.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict, concatenate_datasets, load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, ByT5Tokenizer

from . import hub
from .assets import FETCH_CMD, SMOLLM2_NAME, AssetError, cache_dir, smollm2_dir, tokenizer_dir, train_bpe
from .corpora import split_of

LOCAL_CORPORA = ("en", "ru", "wordnet")
# hub corpora: (repo, config); one with a train split only is split by document like the local corpora
HUB_CORPORA = {"wikitext2": ("Salesforce/wikitext", "wikitext-2-raw-v1"),
               "ruwiki": ("wikimedia/wikipedia", "20231101.ru")}
PARAGRAPHS_PER_DOC = 20


# ------------------------------------------------------------------------------------------------ prepared data
_PREPARED: dict = {}


def prepared(key: tuple, build):
    """THE in-process memo of prepared data (a pretraining corpus's token blocks and n-gram tables, 06's encoded
    chats): build() once per key and process (a notebook's kernel, a worker's job), then shared by every section
    that asks with the same key. Keys start with their family's name, so two never collide. What outlives the
    process lives elsewhere: assets on disk under LAB_CACHE (helpers.assets), results as records (load_or_run)."""
    if key not in _PREPARED:
        _PREPARED[key] = build()
    return _PREPARED[key]


def _text_file_corpus(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"corpus file {path} is not UTF-8 text: byte {e.start} (0x{raw[e.start]:02x}) cannot be "
                         "decoded; convert it first, e.g. `iconv -f cp1251 -t utf-8`") from None
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    if not paras:
        raise ValueError(f"corpus file {path} holds no text (empty or only whitespace)")
    rows = {s: {"doc": [], "source": [], "text": []} for s in ("train", "validation", "test")}
    for i in range(0, len(paras), PARAGRAPHS_PER_DOC):
        doc = f"{path.stem}/{i // PARAGRAPHS_PER_DOC:05d}"
        cols = rows[split_of(doc)]
        cols["doc"].append(doc)
        cols["source"].append(path.name)
        cols["text"].append("\n".join(paras[i:i + PARAGRAPHS_PER_DOC]))
    return DatasetDict({s: Dataset.from_dict(cols) for s, cols in rows.items()})


def split_by_document(ds, key: str = "title"):
    """A single-split hub dataset -> train / validation / test by the fixed rule on each document's `key`."""

    buckets = ds.map(lambda r: {"split": split_of(str(r[key]))}, desc="split by document")
    return DatasetDict({s: buckets.filter(lambda r, s=s: r["split"] == s).remove_columns("split")
                        for s in ("train", "validation", "test")})


def script_share(texts, script: str = "cyrillic") -> float:
    """Share of letters in `texts` written in `script` ("cyrillic" or "latin"). Counted per distinct character (a
    bincount of code points): a Python loop over every character was ~1 s of each notebook-07 job (2,000 documents,
    4.5M characters); the same share to the last bit."""
    if script == "cyrillic":
        def hit(ch):
            return "\u0400" <= ch <= "\u04ff"
    elif script == "latin":
        def hit(ch):
            return ch.isascii()
    else:
        raise ValueError(f"unknown script {script!r}; allowed: cyrillic, latin")
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    counts = np.bincount(codes) if codes.size else np.zeros(0, dtype=np.int64)
    letters = {chr(c): int(counts[c]) for c in np.flatnonzero(counts) if chr(c).isalpha()}
    total = sum(letters.values())
    return sum(n for ch, n in letters.items() if hit(ch)) / total if total else 0.0


def load_corpus(name: str):
    """A `datasets.DatasetDict` with train/validation/test splits and a `text` column (plus `doc`, `source`)."""

    if name in LOCAL_CORPORA:
        folder = cache_dir() / "corpora" / name
        if not (folder / ".done").exists():
            raise AssetError(f"corpus '{name}' is not prepared under {folder}. Fetch it with: {FETCH_CMD}")
        files = {s: str(folder / f"{s}.jsonl") for s in ("train", "validation", "test")}
        return load_dataset("json", data_files=files)
    if name in HUB_CORPORA:
        repo, config = HUB_CORPORA[name]
        dsd = hub.call(f"corpus '{name}' ({repo}, {config})", load_dataset, repo, config)
        return dsd if "validation" in dsd else split_by_document(dsd["train"], key="title")
    if os.path.sep in name or name.endswith(".txt"):
        return _text_file_corpus(Path(name).expanduser())
    raise ValueError(f"unknown corpus '{name}'; allowed: {', '.join(LOCAL_CORPORA + tuple(HUB_CORPORA))} "
                     "or a path to a UTF-8 text file")


TOKENIZERS = ("bytes", "<corpus>-bpe-<vocab> (e.g. en-bpe-2048)", "smollm2", "an owner/name hub id (full profile)")


def bpe_vocab(name: str) -> int | None:
    """The vocabulary a '<corpus>-bpe-<vocab>' tokenizer name asks for (None: not such a name)."""
    _, sep, rest = str(name).rpartition("-bpe-")
    return int(rest) if sep and rest.isdigit() else None


def check_tokenizer_name(name: str) -> None:
    """Refuse a tokenizer name that none of the loaders below serves, listing the ones that exist."""
    corpus, sep, rest = str(name).partition("-bpe-")
    ok = (name in ("bytes", "smollm2") or "/" in str(name)
          or (sep and corpus in LOCAL_CORPORA + tuple(HUB_CORPORA) and rest.isdigit()))
    if not ok:
        raise ValueError(f"unknown tokenizer '{name}'; allowed: {'; '.join(TOKENIZERS)} with corpus one of "
                         f"{', '.join(LOCAL_CORPORA + tuple(HUB_CORPORA))}")


def load_tokenizer(name: str):
    """'bytes' (UTF-8 bytes, vocabulary 256 + pad/eos/unk: transformers' ByT5 tokenizer, nothing to download),
    'en-bpe-8192' / 'ru-bpe-4096' (local BPE), 'smollm2' (from the converted checkpoint) or a hub id."""

    check_tokenizer_name(name)
    if name == "bytes":
        return ByT5Tokenizer(extra_ids=0)
    if name == "smollm2":
        return AutoTokenizer.from_pretrained(_local_model_dir())
    corpus, sep, rest = name.partition("-bpe-")
    if sep:
        folder = tokenizer_dir(corpus, int(rest))
        if not (folder / ".done").exists() and corpus in HUB_CORPORA:
            # full profile: a BPE of a hub corpus is trained once on (the first 200k documents of) its train split

            train = load_corpus(corpus)["train"]
            texts = train.select(range(min(len(train), 200_000)))["text"]
            train_bpe(texts, folder, int(rest), {"corpus": corpus, "trained_on": "train split (first 200k docs)"})
        if not (folder / ".done").exists():
            raise AssetError(f"tokenizer '{name}' is not trained yet ({folder}). Build it with: {FETCH_CMD}, or "
                             f"helpers.assets.prepare_tokenizer('{corpus}', {rest})")
        return AutoTokenizer.from_pretrained(folder)
    return hub.call(f"tokenizer '{name}'", AutoTokenizer.from_pretrained, name)


def _local_model_dir() -> Path:
    folder = smollm2_dir()
    if not (folder / ".done").exists():
        raise AssetError(f"{SMOLLM2_NAME} is not converted yet ({folder}). Fetch it with: {FETCH_CMD}")
    return folder


def load_pretrained(name: str, dtype=None):
    """'smollm2' (local, offline) or a hub id such as 'Open-Orca/Mistral-7B-OpenOrca' (full profile)."""

    dtype = dtype or torch.float32
    if name == "smollm2":
        return AutoModelForCausalLM.from_pretrained(_local_model_dir(), dtype=dtype)
    return hub.call(f"model '{name}'", AutoModelForCausalLM.from_pretrained, name, dtype=dtype)


GROUP_DOCS = 1000       # documents concatenated and cut into blocks together (the tail of each group is dropped)


def lm_blocks(split, tokenizer, block_size: int, max_blocks: int | None = None, text_column: str = "text"):
    """Tokenize documents (each followed by EOS), concatenate, cut into `block_size`-token blocks.

    Returns a `datasets.Dataset` with `input_ids` (list of block_size ints). The tail shorter than a block is dropped.
    """
    eos = tokenizer.eos_token_id

    def tok(batch):
        ids = tokenizer(batch[text_column], add_special_tokens=False)["input_ids"]
        return {"ids": [x + [eos] for x in ids]}

    def group(batch):
        flat = [t for ids in batch["ids"] for t in ids]
        n = len(flat) // block_size * block_size
        return {"input_ids": [flat[i:i + block_size] for i in range(0, n, block_size)]}

    cols = split.column_names
    if max_blocks is None:
        ids = split.map(tok, batched=True, remove_columns=cols, desc="tokenize")
        return ids.map(group, batched=True, batch_size=GROUP_DOCS, remove_columns=["ids"],
                       desc=f"blocks of {block_size}")
    # only as many documents as the blocks need (a 100k-row held-out split is not tokenized for 256 blocks), in the
    # one-pass path's groups of GROUP_DOCS documents, so the blocks are the same as its first max_blocks

    parts, have = [], 0
    for start in range(0, len(split), GROUP_DOCS):
        part = split.select(range(start, min(start + GROUP_DOCS, len(split))))
        ids = part.map(tok, batched=True, remove_columns=cols, desc="tokenize")
        parts.append(ids.map(group, batched=True, batch_size=GROUP_DOCS, remove_columns=["ids"],
                             desc=f"blocks of {block_size}"))
        have += len(parts[-1])
        if have >= max_blocks:
            break
    blocks = concatenate_datasets(parts) if parts else split.select([]).remove_columns(cols).add_column(
        "input_ids", [])
    return blocks.select(range(min(max_blocks, len(blocks))))


def corpus_stats(dsd, tokenizers: dict | None = None) -> list[dict]:
    """Per split: documents, characters, words, and for each tokenizer tokens and fertility (tokens per word)."""
    rows = []
    for split, ds in dsd.items():
        texts = list(ds["text"])
        words = sum(len(t.split()) for t in texts)
        row = {"split": split, "documents": len(ds), "chars": sum(map(len, texts)), "words": words}
        for name, tok in (tokenizers or {}).items():
            n = sum(len(x) for x in tok(texts, add_special_tokens=False)["input_ids"])
            row[f"tokens[{name}]"] = n
            row[f"fertility[{name}]"] = round(n / max(words, 1), 3)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ chats
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def ensure_chat_template(tok, template: str | None = None):
    """Install `template` ('chatml' or a Jinja string) if given; a tokenizer left without one is an error."""
    if template:
        tok.chat_template = CHATML if template == "chatml" else template
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"tokenizer '{getattr(tok, 'name_or_path', '?')}' has no chat template; set "
                        "chat_template='chatml' (ChatML turns) or pass a Jinja template")
    return tok


def encode_chat(tokenizer, prompt: list[dict], completion: list[dict]) -> dict:
    """One chat as token ids with labels -100 on the prompt (the loss falls on the answer tokens only).

    prompt: messages up to the answer (rendered with the generation prompt); completion: the answer message(s).
    Returns {"input_ids", "labels", "prompt_len"}."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"tokenizer '{getattr(tokenizer, 'name_or_path', '?')}' has no chat template; give one "
                         "(notebook 06: chat_template='chatml')")
    text_prompt = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    text_full = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    if not text_full.startswith(text_prompt):
        raise ValueError("the chat template does not extend the prompt with the answer; cannot mask the prompt")
    p_ids = tokenizer(text_prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(text_full, add_special_tokens=False)["input_ids"]
    return {"input_ids": ids, "labels": [-100] * len(p_ids) + ids[len(p_ids):], "prompt_len": len(p_ids)}


def instruction_chats(split, tokenizer, max_rows: int | None = None, max_tokens: int = 1024,
                      fields: tuple = ("system_prompt", "question", "response")) -> list[dict]:
    """Instruction rows (OpenOrca's system prompt, question, response) in the tokenizer's chat format, the loss on
    the response tokens only; a row without a system prompt gets none. Over-long rows are dropped, not truncated."""
    system, user, answer = fields
    rows = []
    for ex in split:
        if max_rows is not None and len(rows) >= max_rows:
            break
        prompt = ([{"role": "system", "content": ex[system]}] if ex.get(system) else []) + \
            [{"role": "user", "content": ex[user]}]
        row = encode_chat(tokenizer, prompt, [{"role": "assistant", "content": ex[answer]}])
        if len(row["input_ids"]) <= max_tokens:
            rows.append({"input_ids": row["input_ids"], "labels": row["labels"]})
    return rows


def definition_chats(split, tokenizer, max_rows: int | None = None, max_tokens: int = 128) -> list[dict]:
    """WordNet glosses as chat turns: the user asks what a word means, the assistant answers with the definition.

    Returns rows of input_ids and labels with -100 on the prompt (loss on the answer tokens only). Rows longer than
    `max_tokens` are dropped, not truncated (a cut answer would bias the loss)."""
    rows = []
    for ex in split:
        if max_rows is not None and len(rows) >= max_rows:
            break
        question = [{"role": "user", "content": f"What does the {ex['pos']} \"{ex['word']}\" mean?"}]
        row = encode_chat(tokenizer, question, [{"role": "assistant", "content": ex["definition"]}])
        if len(row["input_ids"]) > max_tokens:
            continue
        rows.append({"input_ids": row["input_ids"], "labels": row["labels"]})
    return rows
