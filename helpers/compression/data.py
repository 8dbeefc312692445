"""Notebook 04's teacher and text: the pretrained model (frozen), its tokenizer, the calibration blocks and the
held-out sets (English blocks, WordNet-definition chats, OpenOrca rows) of a CompressionConfig.
"""
from __future__ import annotations

from datasets import load_dataset

from .. import hub
from ..data import (
    definition_chats,
    ensure_chat_template,
    instruction_chats,
    lm_blocks,
    load_corpus,
    load_pretrained,
    load_tokenizer,
)
from ..models import keep_first_layers
from ..precision import model_dtype
from . import whitening as W
from .config import CompressionConfig


def load(cfg: CompressionConfig, device: str = "cpu"):
    """Teacher model, tokenizer, calibration batches, held-out English blocks and WordNet chats."""

    tok = load_tokenizer("smollm2" if cfg.model == "smollm2" else cfg.model)
    # bf16 on a GPU (a 7B teacher is 14 GB instead of 29 GB in fp32); fp32 on the CPU, where bf16 matmuls are slow
    model = load_pretrained(cfg.model, dtype=model_dtype(device))
    if cfg.teacher_layers is not None:
        keep_first_layers(model, cfg.teacher_layers)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    calib_split, eval_split, orca_split = _splits(cfg)
    calib = lm_blocks(calib_split, tok, cfg.block, max_blocks=cfg.calib_blocks)
    held = lm_blocks(eval_split, tok, cfg.block, max_blocks=cfg.eval_blocks)
    chats = definition_chats(load_corpus("wordnet")["test"], tok, cfg.chats) if cfg.chats else []
    orca = []
    if orca_split is not None:
        # OpenOrca's models speak ChatML (their model card): installed only where the tokenizer ships no template
        ensure_chat_template(tok, None if getattr(tok, "chat_template", None) else "chatml")
        orca = instruction_chats(orca_split, tok, cfg.openorca_rows, cfg.block)
    batches = W.batches_of(calib)
    return {"model": model, "tok": tok, "calib_split": calib_split, "calib": calib, "calib_batches": batches,
            "held": held, "chats": chats, "openorca": orca}


OPENORCA_SET = "openorca held-out (likely in its tuning data)"


def _splits(cfg: CompressionConfig):
    """(calibration split, evaluation split, OpenOrca held-out rows for the second set or None)."""

    if cfg.calib_corpus == "oo-gpt4":
        ds = hub.call("oo-gpt4-filtered", load_dataset, "openaccess-ai-collective/oo-gpt4-filtered", split="train")
        parts = ds.train_test_split(test_size=100_000, seed=42)      # the notes' own split (exp 4)
        to_text = lambda d: d.map(lambda b: {"text": [f"{q}\n{r}" for q, r in zip(b["question"], b["response"])]},  # noqa: E731
                                  batched=True)
        second = parts["test"] if cfg.openorca_rows else None
        if cfg.eval_corpus == "oo-gpt4":     # the notes' evaluation: rows the OpenOrca model was likely tuned on
            return to_text(parts["train"]), to_text(parts["test"]), second
        return to_text(parts["train"]), load_corpus(cfg.eval_corpus)["test"], second
    return load_corpus(cfg.calib_corpus)["train"], load_corpus(cfg.eval_corpus)["test"], None
