"""Module surgery on GPT-NeoX (Pythia) driven by declarative, validated experiment specs (seed 000).

An experiment is a tuple of `Op`s. Each op names a target, an action, a rank where one is needed, and a layer
selection; no variant needs module code edited.

  target     actions                       what happens in each selected layer
  qkv        lowrank r | nonlinear r       attention.query_key_value -> LowRankLinear (GELU between for nonlinear)
  dense      lowrank r | remove            attention.dense -> LowRankLinear | Identity (heads go straight out)
  attention  remove                        the whole attention -> NoAttention (zero); the MLP and residual remain
  mlp        linearize                     the MLP's GELU -> Identity
  mlp        bottleneck r                  the MLP -> LowRankLinear(hidden, hidden, r, GELU)
  mlp        factorize r                   dense_h_to_4h and dense_4h_to_h -> LowRankLinear each (GELU kept):
                                           the notes' "LoraMLP", a low-rank replacement, not a LoRA adapter
  embed      freeze | factorize r          embed_in not trained | embed_in -> (V x r) @ (r x hidden)

Layer selections: helpers.layers ("all", "after:k", "a-b", "i,j,...").

The op language (Op, validation, depth mapping, `resolved`) is torch-free, because the experiment registry built on
it (helpers.surgery.experiments) is read by Analysis without torch; torch is imported only where ops are applied to
a model (apply_surgery, census).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from ..layers import map_layers, parse_layers

ACTIONS = {
    "qkv": ("lowrank", "nonlinear"),
    "dense": ("lowrank", "remove"),
    "attention": ("remove",),
    "mlp": ("linearize", "bottleneck", "factorize"),
    "embed": ("freeze", "factorize"),
}
NEEDS_RANK = {("qkv", "lowrank"), ("qkv", "nonlinear"), ("dense", "lowrank"), ("mlp", "bottleneck"),
              ("mlp", "factorize"), ("embed", "factorize")}
# the parts of a layer an op rewrites: two ops that claim the same slot of the same layer contradict each other
SLOTS = {
    ("qkv", "lowrank"): {"qkv"}, ("qkv", "nonlinear"): {"qkv"},
    ("dense", "lowrank"): {"dense"}, ("dense", "remove"): {"dense"},
    ("attention", "remove"): {"qkv", "dense"},
    ("mlp", "linearize"): {"mlp.act"}, ("mlp", "bottleneck"): {"mlp.act", "mlp.up", "mlp.down"},
    ("mlp", "factorize"): {"mlp.up", "mlp.down"},
    ("embed", "freeze"): {"embed"}, ("embed", "factorize"): {"embed"},
}


@dataclass(frozen=True)
class Op:
    target: str
    action: str
    rank: int | None = None
    layers: str = "all"

    def __post_init__(self):
        if self.target not in ACTIONS:
            raise ValueError(f"unknown surgery target '{self.target}'; allowed: {', '.join(ACTIONS)}")
        if self.action not in ACTIONS[self.target]:
            raise ValueError(f"action '{self.action}' is not allowed on '{self.target}'; allowed: "
                             f"{', '.join(ACTIONS[self.target])}")
        needs = (self.target, self.action) in NEEDS_RANK
        if needs and (not isinstance(self.rank, int) or self.rank < 1):
            raise ValueError(f"{self.target} {self.action} needs an integer rank >= 1, got {self.rank!r}")
        if not needs and self.rank is not None:
            raise ValueError(f"{self.target} {self.action} takes no rank, got {self.rank!r}")
        if self.target == "embed" and self.layers != "all":
            raise ValueError(f"embed ops are not per layer; got layers='{self.layers}'")

    def describe(self) -> str:
        r = f" r={self.rank}" if self.rank else ""
        return f"{self.target} {self.action}{r}" + ("" if self.layers == "all" else f" [{self.layers}]")


def validate_ops(ops: tuple[Op, ...], n_layers: int) -> dict[int, list[Op]]:
    """Resolve layer selections and refuse contradictions (two ops rewriting the same part of one layer)."""
    claimed: dict[tuple, Op] = {}
    per_layer: dict[int, list[Op]] = {}
    for op in ops:
        layers = [-1] if op.target == "embed" else parse_layers(op.layers, n_layers)
        for i in layers:
            for slot in SLOTS[(op.target, op.action)]:
                other = claimed.get((i, slot))
                if other is not None:
                    where = "the embedding" if i < 0 else f"layer {i}"
                    raise ValueError(f"ops '{other.describe()}' and '{op.describe()}' contradict each other: both "
                                     f"rewrite {slot} of {where}; allowed: one op per part of a layer")
                claimed[(i, slot)] = op
            per_layer.setdefault(i, []).append(op)
    return per_layer


def map_ops(ops: tuple["Op", ...], full_layers: int, layers: int) -> tuple["Op", ...]:
    """The ops with their layer selections mapped from a full_layers-deep model onto a layers-deep stand-in."""
    return tuple(Op(o.target, o.action, o.rank, map_layers(o.layers, full_layers, layers)) for o in ops)


def resolved(ops: tuple["Op", ...], n_layers: int, rank_factor: float = 1.0) -> tuple:
    """What the ops do to an n_layers model, layer by layer, ranks scaled as apply_surgery scales them: two
    experiments with the same resolved ops build the same model (same shapes, same initialisation)."""
    ops = tuple(Op(o.target, o.action, scale_rank(o.rank, rank_factor), o.layers) for o in ops)
    plan = validate_ops(ops, n_layers)
    return tuple(sorted((i, o.target, o.action, o.rank or 0) for i, layer_ops in plan.items() for o in layer_ops))


def scale_rank(rank: int | None, factor: float) -> int | None:
    """Ranks of a narrower local model keep the full model's rank / width ratio (at least 1)."""
    return None if rank is None else max(1, round(rank * factor))


def apply_surgery(model, ops: tuple[Op, ...], rank_factor: float = 1.0, init_std: float | None = None) -> dict:
    """Rewrite a GPTNeoXForCausalLM in place. Returns {layer: [op descriptions]} of what was changed."""
    from torch import nn

    from ..lowrank import LowRankLinear, NoAttention

    neox = model.gpt_neox
    layers = neox.layers
    std = init_std if init_std is not None else model.config.initializer_range
    ops = tuple(Op(o.target, o.action, scale_rank(o.rank, rank_factor), o.layers) for o in ops)
    plan = validate_ops(ops, len(layers))
    for i, layer_ops in sorted(plan.items()):
        for op in layer_ops:
            if op.target == "embed":
                _embed(model, op, std)
                continue
            layer = layers[i]
            attn, mlp = layer.attention, layer.mlp
            if op.target == "qkv":
                act = "gelu" if op.action == "nonlinear" else None
                attn.query_key_value = LowRankLinear.from_linear(attn.query_key_value, op.rank, activation=act, std=std)
            elif op.target == "dense":
                attn.dense = (nn.Identity() if op.action == "remove"
                              else LowRankLinear.from_linear(attn.dense, op.rank, std=std))
            elif op.target == "attention":
                layer.attention = NoAttention()
            elif op.action == "linearize":
                mlp.act = nn.Identity()
            elif op.action == "bottleneck":
                h = mlp.dense_h_to_4h.in_features
                with _device_of(mlp.dense_h_to_4h):
                    new = LowRankLinear(h, h, op.rank, bias=True, activation="gelu")
                if mlp.dense_h_to_4h.weight.device.type != "meta":
                    new.reset_parameters(std)
                layer.mlp = new
            elif op.action == "factorize":
                mlp.dense_h_to_4h = LowRankLinear.from_linear(mlp.dense_h_to_4h, op.rank, std=std)
                mlp.dense_4h_to_h = LowRankLinear.from_linear(mlp.dense_4h_to_h, op.rank, std=std)
    return {i: [o.describe() for o in v] for i, v in plan.items()}


def _device_of(module):
    import torch

    return torch.device(next(module.parameters()).device)


def _embed(model, op: Op, std: float) -> None:
    from ..lowrank import FactorizedEmbedding

    emb = model.gpt_neox.embed_in
    if op.action == "freeze":
        emb.weight.requires_grad_(False)
        return
    with _device_of(emb):
        model.gpt_neox.embed_in = FactorizedEmbedding(emb.num_embeddings, emb.embedding_dim, op.rank, std=std)


def census(model) -> Counter:
    """Counter of (layer index or -1, module path inside the layer, class name) over the model's leaf-ish modules:
    what surgery changed, per type and layer."""
    out = Counter()
    for name, mod in model.named_modules():
        m = re.match(r"gpt_neox\.layers\.(\d+)\.(.+)$", name)
        if m and "." not in m.group(2).replace("attention.", "").replace("mlp.", ""):
            out[(int(m.group(1)), m.group(2), type(mod).__name__)] += 1
        elif name in ("gpt_neox.embed_in", "embed_out"):
            out[(-1, name, type(mod).__name__)] += 1
    return out
