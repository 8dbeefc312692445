"""Every model configuration of the project, the builders, and the one parameter counter.

  neox_config     the small from-scratch GPT-NeoX of notebooks 00 (and 07)
  pythia_config   EleutherAI/pythia-410m and pythia-2.8b (seed 000), or narrower stand-ins of them
  mistral_config  Open-Orca/Mistral-7B-OpenOrca's shape (seed 001's full profile)
  LoopedConfig    the looped / standard in-context transformer (seed 002; the model is helpers.looped.model)
Configs are written here (no download); models are built from them with random weights, or on the `meta` device
for counting. The shapes here (PYTHIA, LoopedConfig, the Llama Linears) are read by torch-free code (the seed-000
registry that Analysis uses), and importing transformers loads torch wherever it is installed: so transformers and
torch are imported inside the functions that build a config or a model.
"""
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


def from_config(config, device: str = "cpu", dtype=None):
    """Random-init causal LM from a config (the model's own initializer)."""
    import torch
    from transformers import AutoModelForCausalLM

    if device == "meta":
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)
    return model.to(device)


def keep_first_layers(model, k: int):
    """A causal LM cut to its decoder's first k layers, the rest (embeddings, final norm, head) as they were: a
    cheaper stand-in that keeps the real weights of the layers it holds (notebook 04's tiny teacher). In place."""
    layers = model.model.layers
    if not 1 <= k <= len(layers):
        raise ValueError(f"cannot keep the first {k} layers of a {len(layers)}-layer model; allowed: 1..{len(layers)}")
    model.model.layers = layers[:k]
    model.config.num_hidden_layers = k
    if getattr(model.config, "layer_types", None):           # per-layer attention kinds (sliding / full), if any
        model.config.layer_types = model.config.layer_types[:k]
    return model


def param_counts(model) -> dict:
    """{"total", "trainable"} parameter counts (works on the meta device)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


def count_params(model, trainable_only: bool = False) -> int:
    return param_counts(model)["trainable" if trainable_only else "total"]


PYTHIA = {
    # EleutherAI/pythia-410m and pythia-2.8b configs (the fields that shape parameters); no download needed
    "410m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "2.8b": dict(hidden_size=2560, num_hidden_layers=32, num_attention_heads=32, intermediate_size=10240),
}


def pythia_config(name: str, **overrides):
    from transformers import GPTNeoXConfig

    if name not in PYTHIA:
        raise ValueError(f"unknown Pythia size '{name}'; allowed: {', '.join(PYTHIA)}")
    kw = dict(vocab_size=50304, max_position_embeddings=2048, rotary_pct=0.25, rotary_emb_base=10000,
              use_parallel_residual=True, tie_word_embeddings=False, initializer_range=0.02, layer_norm_eps=1e-5,
              hidden_act="gelu", bos_token_id=0, eos_token_id=0, attention_dropout=0.0, hidden_dropout=0.0,
              **PYTHIA[name])
    kw.update(overrides)
    return GPTNeoXConfig(**kw)


def mistral_config():
    """Open-Orca/Mistral-7B-OpenOrca's shape (MistralConfig), for budgets without any download."""
    from transformers import MistralConfig

    return MistralConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                         intermediate_size=14336, vocab_size=32002, tie_word_embeddings=False)


def smollm2_config(size: str = "360M"):
    """HuggingFaceTB/SmolLM2-360M's shape (LlamaConfig): the full profile's SFT/DPO base model, for budgets and the GPU
    benchmark without any download."""
    from transformers import LlamaConfig

    if size != "360M":
        raise ValueError(f"unknown SmolLM2 size '{size}'; allowed: 360M")
    return LlamaConfig(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                       num_key_value_heads=5, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
                       tie_word_embeddings=True, rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=0)


TOKEN_FORMATS = ("paper", "extra_dim")


@dataclass
class LoopedConfig:
    n_dims: int = 20                # d: the regression dimension the model reads
    n_positions: int = 41           # the most (x, y) pairs a prompt may hold
    width: int = 256
    n_head: int = 8
    n_layer: int = 1                # blocks in the backbone (standard model: its depth; feed_block: blocks cycled)
    looped: bool = True
    loops: int = 30                 # b: loops per training forward
    window: int = 15                # T: the last T loops carry the loss
    save_n_tokens: float = 0        # see module docstring
    feed_block: bool = False
    use_ssm: bool = False
    skip_connection: bool = False
    token_format: str = "paper"     # "paper" (y in the first of d coordinates) or "extra_dim" (y in a (d+1)-th)

    def __post_init__(self):
        if self.token_format not in TOKEN_FORMATS:
            raise ValueError(f"unknown token_format {self.token_format!r}; allowed: {', '.join(TOKEN_FORMATS)}")
        for name in ("n_dims", "n_positions", "width", "n_head", "n_layer", "loops", "window"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.width % self.n_head:
            raise ValueError(f"width {self.width} is not divisible by n_head {self.n_head}")
        if self.window > self.loops:
            raise ValueError(f"loop window T={self.window} is larger than the number of loops b={self.loops}; "
                             "allowed: 1 <= T <= b")
        if self.feed_block and not self.looped:
            raise ValueError("feed_block cycles blocks across loops: it needs looped=True")
        s = self.save_n_tokens
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise ValueError(f"save_n_tokens must be a number (N >= 1, 0 < N < 1, N < 0 or 0), got {s!r}")
        if s >= 1 and s != int(s):
            raise ValueError(f"save_n_tokens >= 1 must be an integer count of tokens, got {s}")
        if s <= -1 and s != int(s):
            raise ValueError(f"negative save_n_tokens must be an integer count of tokens, got {s}")
        if -1 < s < 0:
            raise ValueError(f"save_n_tokens in (-1, 0) is not a token count; got {s}: use an integer < 0")


# The block Linears of a Llama / Mistral-family model (short name -> path inside model.layers.<i>), their groups,
# and the ways helpers.compression.factorize can factorize one (names only here, so configs validate without torch).
LLAMA_LINEARS = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
                 "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj", "lm_head": "lm_head"}
LLAMA_GROUPS = {"attention": ("q", "k", "v", "o"), "mlp": ("gate", "up", "down")}


def llama_linear_shapes(config) -> dict[str, tuple[int, int]]:
    """(in, out) of one decoder layer's block Linears of a Llama / Mistral-shaped config, by module name (the plans'
    parameter and memory arithmetic: LoRA's adapters, notebook 04's statistics and bases)."""
    h, i = config.hidden_size, config.intermediate_size
    kv = (getattr(config, "head_dim", None) or h // config.num_attention_heads) * config.num_key_value_heads
    return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h), "gate_proj": (h, i),
            "up_proj": (h, i), "down_proj": (i, h)}
FACTORIZATIONS = ("svd", "whiten", "scaled")
