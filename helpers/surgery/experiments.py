"""Seed 000's 26 experiments as data, and what each becomes on a smaller stand-in (torch-free: Analysis reads it).

Registry: every experiment under its seed number and name, as a tuple of surgery ops (helpers.surgery.ops), with the
parameter count the notes printed (helpers.surgery.study.param_table recomputes them at full scale).

Stand-ins: a profile's sizes {"410m": None | {"hidden", "layers", "heads"}, "2.8b": ...} and `scale_ranks` say how
an experiment is shrunk: layer selections mapped by depth fraction (helpers.layers.map_layers), ranks multiplied by
the width ratio. Anything with `.sizes` and `.scale_ranks` serves as the scale (the study's SurgeryConfig, or the
`Scale` that reports rebuild from records).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..models import PYTHIA
from .ops import Op, map_ops, resolved, scale_rank

LL8 = Op("qkv", "lowrank", 8)
NO_DENSE = Op("dense", "remove")


def partial(k: int) -> tuple[Op, ...]:
    """The 'partial' attention of experiments 12-24: layers < k keep the full query_key_value, the rest get LinearLora
    r=8, and no layer keeps the output projection `dense` (the notes say 'full attention'; the counts prove the dense
    is gone everywhere)."""
    return (Op("qkv", "lowrank", 8, f"after:{k}"), NO_DENSE)


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    model: str                      # "410m" | "2.8b"
    ops: tuple[Op, ...]
    notes_params: int
    counted: str = "total"          # which count the notes printed: total | trainable
    note: str = ""                  # why our count differs from the notes (empty: it matches)
    notebook: str = ""
    claim: str = ""                 # the notes' verbal result, where there is one

    def describe(self) -> str:
        return "; ".join(o.describe() for o in self.ops) or "original"


def _e(id, name, model, ops, notes, nb, **kw):
    return Experiment(id, name, model, tuple(ops), notes, notebook=nb, **kw)


A, M, P = NB_ATTENTION, NB_MLP, NB_PARTIAL = "01_attention_lowrank", "02_mlp_lowrank", "03_partial_layers"
NOTEBOOKS = (NB_ATTENTION, NB_MLP, NB_PARTIAL)
# The notes' names are kept as they are ("LoraMLP", "linear-lora"): their "LoRA" is a low-rank replacement of a
# weight (helpers.lowrank.LowRankLinear), not a LoRA adapter beside a frozen weight (that is notebook 06's).
EXPERIMENTS = {e.id: e for e in [
    _e(1, "original-model-pythia-410m-1", "410m", [], 405_334_016, A),
    _e(2, "linear-lora-8-2", "410m", [LL8], 330_623_168, A),
    _e(3, "nonlinear-lora-8-3", "410m", [Op("qkv", "nonlinear", 8)], 330_623_168, A),
    _e(4, "linear-lora-32-4", "410m", [Op("qkv", "lowrank", 32)], 332_983_040, A),
    _e(5, "linear-lora-256-5", "410m", [Op("qkv", "lowrank", 256)], 355_008_512, A),
    _e(6, "no-attention-6", "410m", [Op("attention", "remove")], 304_572_416, A),
    _e(7, "linear-lora-8-all-attention-7", "410m", [LL8, Op("dense", "lowrank", 8)], 305_850_752, A),
    _e(8, "linear-lora-8-no-dense-8", "410m", [LL8, NO_DENSE], 305_432_768, A),
    _e(9, "linea-mlp-9", "410m", [LL8, NO_DENSE, Op("mlp", "linearize")], 305_432_768, M),
    _e(10, "nonlinear-lora-8-mlp-10", "410m", [LL8, NO_DENSE, Op("mlp", "bottleneck", 8)], 104_401_280, M),
    _e(11, "nonlinear-lora-768-mlp-11", "410m", [LL8, NO_DENSE, Op("mlp", "bottleneck", 768)], 141_775_040, M),
    _e(12, "partial-linear-lora-8-attention-12", "410m", partial(1), 308_545_720, P),
    _e(13, "6-layers-partial-linear-lora-8-attention-13", "410m", partial(6), 324_110_480, P),
    _e(14, "3-layers-partial-linear-lora-8-attention-14", "410m", partial(3), 314_771_624, P),
    _e(15, "2-layers-partial-linear-lora-8-attention-15", "410m", partial(2), 311_658_672, P),
    _e(16, "3-layers-partial-linear-lora-6-nonlinear-lora-8-attention-16", "410m",
       [*partial(3), Op("mlp", "bottleneck", 8, "after:6")], 163_998_008, P,
       claim="marked WRONG by its author; kept as run"),
    _e(17, "3-layers-partial-linear-lora-12-nonlinear-lora-8-attention-17", "410m",
       [*partial(3), Op("mlp", "bottleneck", 8, "after:12")], 214_255_880, P,
       claim="marked WRONG by its author; kept as run"),
    _e(18, "3-layers-partial-linear-lora-12-nonlinear-lora-8-256-attention-18", "410m",
       [*partial(3), Op("mlp", "bottleneck", 256, "after:12")], 214_255_880, P,
       note="implemented as titled (MLP bottleneck r=256): 220,353,704; the notes printed 214,255,880, which is "
            "experiment 17's count, i.e. rank 8"),
    _e(19, "original-model-pythia-2.8b-19", "2.8b", [], 2_775_208_960, P),
    _e(20, "3-layers-partial-linear-lora-8-pythia-2.8b-20", "2.8b", partial(3), 1_997_624_552, P),
    _e(21, "6-layers-partial-linear-lora-8-pythia-2.8b-21", "2.8b", partial(6), 2_056_361_168, P),
    _e(22, "6-layers-partial-...-20-layers-LoraMLP-8-22", "410m", [*partial(6), Op("mlp", "factorize", 16, "20-23")],
       291_211_536, M),
    _e(23, "6-layers-partial-...-12-18-layers-LoraMLP-8-23", "410m",
       [*partial(6), Op("mlp", "factorize", 16, "12-18")], 266_537_328, M, claim="matched the original"),
    _e(24, "6-layers-partial-...-12-18-layers-LoraMLP-8-24", "2.8b",
       [*partial(6), Op("mlp", "factorize", 16, "12-18")], 1_692_226_992, P, claim="matched the original"),
    _e(25, "freeze-embeddings-25", "410m", [Op("embed", "freeze")], 353_822_720, A, counted="trainable",
       claim="loss much higher"),
    _e(26, "lora-embeddings-26", "410m", [Op("embed", "factorize", 512)], 405_334_016, A,
       note="the factorized embedding (50304x512)@(512x1024) gives 380,102,656; the notes printed the unmodified "
            "model's count",
       claim="loss higher, only ~10M fewer params"),
]}
NOTEBOOK_OF = {e.id: e.notebook for e in EXPERIMENTS.values()}
ORIGINAL = {"410m": 1, "2.8b": 19}          # the control each variant of a model size is compared with


def get(ids) -> list[Experiment]:
    out = []
    for i in ids:
        if i not in EXPERIMENTS:
            raise ValueError(f"unknown experiment id {i!r}; allowed: 1-{max(EXPERIMENTS)}")
        out.append(EXPERIMENTS[i])
    return out


# ------------------------------------------------------------------------------------------------ stand-ins
@dataclass(frozen=True)
class Scale:
    """How a profile shrinks the experiments: per-size stand-in shape (None = the real Pythia) and rank scaling."""

    sizes: dict
    scale_ranks: bool = True


def stand_in_ops(scale, exp: Experiment) -> tuple[Op, ...]:
    """The experiment's ops with layer selections mapped onto the stand-in's depth (unchanged at full depth)."""
    size = scale.sizes[exp.model]
    depth = PYTHIA[exp.model]["num_hidden_layers"]
    return exp.ops if size is None else map_ops(exp.ops, depth, size["layers"])


def rank_factor(scale, which: str) -> float:
    """Ranks of a narrower stand-in are multiplied by its width / Pythia's width (at least 1 after rounding), so
    each factor compresses its matrix about as much as at full scale."""
    size = scale.sizes[which]
    return size["hidden"] / PYTHIA[which]["hidden_size"] if size is not None and scale.scale_ranks else 1.0


def layers_of(scale, which: str) -> int:
    size = scale.sizes[which]
    return PYTHIA[which]["num_hidden_layers"] if size is None else size["layers"]


def stand_in(scale, exp: Experiment) -> str:
    """What the experiment does to the stand-in, ranks scaled: e.g. 'qkv lowrank r=1 [after:2]; dense remove'."""
    f = rank_factor(scale, exp.model)
    ops = [Op(o.target, o.action, scale_rank(o.rank, f), o.layers) for o in stand_in_ops(scale, exp)]
    return "; ".join(o.describe() for o in ops) or "original"


def same_model(scale) -> dict[int, int]:
    """{experiment: the lowest-numbered experiment it builds the same model as} at this scale, for every
    experiment that coincides with an earlier one (same model size, same ops on every layer after depth mapping and
    rank scaling); e.g. at width 32 ranks 8 and 32 both scale to 1, so experiment 4 is the same model as 2."""
    first, out = {}, {}
    for exp in EXPERIMENTS.values():
        ops = stand_in_ops(scale, exp)
        key = (exp.model, resolved(ops, layers_of(scale, exp.model), rank_factor(scale, exp.model)))
        if key in first:
            out[exp.id] = first[key]
        else:
            first[key] = exp.id
    return out


def same_in(scale, ids) -> dict[int, int]:
    """same_model() restricted to the experiments `ids` (a notebook's own list)."""
    same = same_model(scale)
    return {i: same[i] for i in ids if i in same}
