"""Notebook 06's chat model: which model a profile tunes, loaded fresh (the base every SFT and DPO run starts from),
and the tokenizer it reads."""
from __future__ import annotations

import torch
from transformers import LlamaConfig

from ..data import load_pretrained
from ..models import from_config
from ..precision import model_dtype

TINY_MODEL = "smollm2-tiny"    # tests: SmolLM2's tokenizer on a 2-layer, width-64 Llama with fixed random weights
# (untied: with tied embeddings its greedy answer repeats the prompt's last token, "\n", and decodes to nothing)


def tokenizer_name(model: str) -> str:
    return "smollm2" if model in ("smollm2", TINY_MODEL) else model


def load_chat_model(name: str, device: str = "cpu"):
    """The model to tune: 'smollm2' (offline asset), TINY_MODEL (random, the same weights every call, so a saved
    adapter reloads onto the model it was trained on) or a hub id; bf16 on a CUDA GPU with bf16, else fp32."""

    if name == TINY_MODEL:
        state = torch.random.get_rng_state()
        torch.manual_seed(0)
        model = from_config(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=49152,
                                        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2))
        torch.random.set_rng_state(state)
        return model.to(device=device, dtype=model_dtype(device))
    return load_pretrained(name, dtype=model_dtype(device)).to(device)


def base_model(cfg, device: str = "cpu"):
    """cfg.model (an SFTDPOConfig's), untuned."""
    return load_chat_model(cfg.model, device)
