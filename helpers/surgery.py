"""Module surgery on GPT-NeoX (Pythia) driven by declarative, validated experiment specs (seed 000).

An experiment is a tuple of `Op`s. Each op names a target, an action, a rank where one is needed, and a layer
selection; no variant needs module code edited.

  target     actions                       what happens in each selected layer
  qkv        lowrank r | nonlinear r       attention.query_key_value -> LowRankLinear (GELU between for nonlinear)
  dense      lowrank r | remove            attention.dense -> LowRankLinear | Identity (heads go straight out)
  attention  remove                        the whole attention -> NoAttention (zero); the MLP and residual remain
  mlp        linearize                     the MLP's GELU -> Identity
  mlp        bottleneck r                  the MLP -> LowRankLinear(hidden, hidden, r, GELU)
  mlp        lora r                        dense_h_to_4h and dense_4h_to_h -> LowRankLinear each (GELU kept)
  embed      freeze | factorize r          embed_in not trained | embed_in -> (V x r) @ (r x hidden)

Layer selections: "all"; "after:k" (layers >= k: the first k keep the original); "a-b" (inclusive range);
"i,j,..." and mixes such as "0-3,7". Indices are 0-based.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

ACTIONS = {
    "qkv": ("lowrank", "nonlinear"),
    "dense": ("lowrank", "remove"),
    "attention": ("remove",),
    "mlp": ("linearize", "bottleneck", "lora"),
    "embed": ("freeze", "factorize"),
}
NEEDS_RANK = {("qkv", "lowrank"), ("qkv", "nonlinear"), ("dense", "lowrank"), ("mlp", "bottleneck"),
              ("mlp", "lora"), ("embed", "factorize")}
# the parts of a layer an op rewrites: two ops that claim the same slot of the same layer contradict each other
SLOTS = {
    ("qkv", "lowrank"): {"qkv"}, ("qkv", "nonlinear"): {"qkv"},
    ("dense", "lowrank"): {"dense"}, ("dense", "remove"): {"dense"},
    ("attention", "remove"): {"qkv", "dense"},
    ("mlp", "linearize"): {"mlp.act"}, ("mlp", "bottleneck"): {"mlp.act", "mlp.up", "mlp.down"},
    ("mlp", "lora"): {"mlp.up", "mlp.down"},
    ("embed", "freeze"): {"embed"}, ("embed", "factorize"): {"embed"},
}


def parse_layers(sel: str, n_layers: int) -> list[int]:
    """'all' | 'after:k' | 'a-b' | 'i,j' (and mixes) -> sorted 0-based indices, validated against n_layers."""
    sel = str(sel).strip()
    if sel == "all":
        return list(range(n_layers))
    m = re.fullmatch(r"after:(\d+)", sel)
    if m:
        k = int(m.group(1))
        if k >= n_layers:
            raise ValueError(f"layer selection '{sel}': keeping the first {k} layers leaves nothing to change in a "
                             f"{n_layers}-layer model; use after:k with 0 <= k < {n_layers}")
        return list(range(k, n_layers))
    out = set()
    for part in sel.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"bad layer selection '{sel}'; allowed: 'all', 'after:k', 'a-b', 'i,j,...'")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise ValueError(f"bad layer range '{part.strip()}' in '{sel}': the end is before the start")
        if b >= n_layers:
            raise ValueError(f"layer index {b} in '{sel}' is out of range: the model has {n_layers} layers "
                             f"(valid indices 0-{n_layers - 1})")
        out.update(range(a, b + 1))
    return sorted(out)


def _ranges(idx: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    out, start = [], None
    for i, j in enumerate(idx):
        if start is None:
            start = j
        if i + 1 == len(idx) or idx[i + 1] != j + 1:
            out.append(f"{start}" if start == j else f"{start}-{j}")
            start = None
    return ",".join(out)


def map_layers(sel: str, full_layers: int, layers: int) -> str:
    """A layer selection written for a `full_layers`-deep model, mapped by depth fraction onto a `layers`-deep
    stand-in (the identity when the depths agree).

      after:k   the first k layers keep the original -> the first max(1, round(k * layers / full_layers)) do (a
                kept prefix never vanishes; it keeps at least one layer free of the op, at most layers - 1)
      a-b, i,j  stand-in layer j is selected when the full-depth layer at its centre, floor((j + 0.5) * full /
                layers), is; a selection that catches no centre takes the stand-in layer holding its middle
    e.g. 24 -> 6 layers: after:1, after:2, after:3 -> after:1; after:6 -> after:2; 12-18 -> 3-4; 20-23 -> 5."""
    if layers == full_layers or str(sel).strip() == "all":
        return sel
    if not 1 <= layers <= full_layers:
        raise ValueError(f"a stand-in of {layers} layers cannot map selections of a {full_layers}-layer model; "
                         f"allowed: 1-{full_layers} layers")
    m = re.fullmatch(r"after:(\d+)", str(sel).strip())
    if m:
        k = int(m.group(1))
        parse_layers(sel, full_layers)        # validates k against the full depth
        return f"after:{0 if k == 0 else min(layers - 1, max(1, round(k * layers / full_layers)))}"
    chosen = set(parse_layers(sel, full_layers))
    idx = [j for j in range(layers) if int((j + 0.5) * full_layers / layers) in chosen]
    if not idx:
        middle = sum(chosen) / len(chosen)
        idx = [min(layers - 1, int((middle + 0.5) * layers / full_layers))]
    return _ranges(idx)


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

    from .lowrank import LowRankLinear, NoAttention

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
            elif op.action == "lora":
                mlp.dense_h_to_4h = LowRankLinear.from_linear(mlp.dense_h_to_4h, op.rank, std=std)
                mlp.dense_4h_to_h = LowRankLinear.from_linear(mlp.dense_4h_to_h, op.rank, std=std)
    return {i: [o.describe() for o in v] for i, v in plan.items()}


def _device_of(module):
    import torch

    return torch.device(next(module.parameters()).device)


def _embed(model, op: Op, std: float) -> None:
    from .lowrank import FactorizedEmbedding

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


def build(config, ops: tuple[Op, ...] = (), device: str = "cpu", rank_factor: float = 1.0):
    """Random-init GPT-NeoX from `config` with the surgery applied (device='meta': shapes only, for counting)."""
    from .models import from_config

    model = from_config(config, device=device)
    apply_surgery(model, ops, rank_factor=rank_factor)
    return model
