"""Model builders. Small GPT-NeoX (Pythia's architecture) from a config, never from downloaded weights."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class NeoXSize:
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int | None = None   # default 4 * hidden, as in Pythia
    max_positions: int = 2048

    def __post_init__(self):
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        if min(self.hidden, self.layers, self.heads) < 1:
            raise ValueError(f"hidden/layers/heads must be >= 1, got {self.hidden}/{self.layers}/{self.heads}")


def neox_config(size: NeoXSize, vocab_size: int, bos_id: int = 0, eos_id: int = 0):
    """A Pythia-style GPTNeoXConfig (parallel residual, rotary 25%, untied embeddings, init std 0.02)."""
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab_size, hidden_size=size.hidden, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, intermediate_size=size.intermediate or 4 * size.hidden,
        max_position_embeddings=size.max_positions, rotary_pct=0.25, use_parallel_residual=True,
        tie_word_embeddings=False, initializer_range=0.02, bos_token_id=bos_id, eos_token_id=eos_id,
        hidden_dropout=0.0, attention_dropout=0.0,
    )


def hub_config(name: str):
    """The config of a hub model (e.g. EleutherAI/pythia-410m): small JSON, no weights."""
    from transformers import AutoConfig

    from .data import _hub_call

    return _hub_call(f"config '{name}'", AutoConfig.from_pretrained, name)


def from_config(config, device: str = "cpu", dtype=None):
    """Random-init causal LM from a config (the model's own initializer)."""
    import torch
    from transformers import AutoModelForCausalLM

    if device == "meta":
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)
    return model.to(device)


def count_params(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
