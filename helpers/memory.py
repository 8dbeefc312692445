"""Memory plans: what one training or inference step of a full-profile model needs on one GPU, before anyone pays
for the GPU.

A plan is weights + gradients + optimizer state + activations (+ buffers a notebook keeps, such as calibration
statistics or a teacher copy). The first three follow exactly from parameter counts of the model built on the `meta`
device (no weights are made). Activations are an estimate of what a decoder layer keeps for backward with fused
attention (sdpa / flash: no s x s score matrix is stored), per token and layer, in elements:

    layer norm inputs and outputs 4h, q/k/v h + 2 kv, attention output h, MLP hidden 2i (GELU) or 4i (SwiGLU)

plus the logits (b s V in the activation dtype, an fp32 copy for the loss and its gradient). This is Korthikanti et
al. (2022)'s count without dropout masks; benchmarks/bench_gpu.py compares it with torch.cuda.max_memory_allocated.
Gradient checkpointing keeps only each layer's input (h per token) plus one layer's full set.
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass

from .models import from_config, param_counts

GiB = 1024 ** 3
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp64": 8}
HEADROOM = 0.9            # a plan "fits" a GPU when it needs at most 90% of its memory (CUDA context, fragmentation)


@dataclass
class MemoryPlan:
    """Bytes one step needs on the GPU, by part; `setting` says the precision, batch and tricks it assumes."""

    name: str
    params: int
    trainable: int
    weights: float
    grads: float = 0.0
    optimizer: float = 0.0
    activations: float = 0.0
    other: float = 0.0          # buffers on the GPU beside the model (a teacher copy, decompositions)
    host: float = 0.0           # CPU memory the step needs beside the model (e.g. float64 calibration statistics)
    setting: str = ""

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer + self.activations + self.other

    def fits(self, gpu_gib: float = 80.0) -> bool:
        return self.total <= HEADROOM * gpu_gib * GiB

    def line(self, gpu_gib: float = 80.0) -> str:
        g = lambda b: f"{b / GiB:.1f}"  # noqa: E731
        host = f", host {g(self.host)} GiB" if self.host else ""
        return (f"{self.name}: {g(self.total)} GiB = weights {g(self.weights)} + grads {g(self.grads)} + optimizer "
                f"{g(self.optimizer)} + activations {g(self.activations)} + other {g(self.other)}{host} "
                f"[{self.setting}] -> {'fits' if self.fits(gpu_gib) else 'does NOT fit'} one {gpu_gib:.0f} GB GPU")

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total, "fits_80gb": self.fits(80.0)}


def _shape(config) -> dict:
    h = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    gated = getattr(config, "model_type", "") in ("llama", "mistral", "qwen2", "gemma")
    return {"h": h, "kv": h * kv_heads // heads, "i": config.intermediate_size, "L": config.num_hidden_layers,
            "V": config.vocab_size, "gated": gated}


def activation_bytes(config, batch: int, seq: int, act: str = "bf16", checkpointing: bool = False) -> float:
    """Estimated bytes of activations kept for backward by one step of a decoder LM (see the module docstring)."""
    s = _shape(config)
    per_layer = 4 * s["h"] + s["h"] + 2 * s["kv"] + s["h"] + (4 if s["gated"] else 2) * s["i"]   # elements / token
    tokens, nb = batch * seq, BYTES[act]
    layers = (s["L"] * s["h"] + per_layer) if checkpointing else s["L"] * per_layer
    logits = tokens * s["V"] * (nb + 4 + 4)        # logits, their fp32 copy for the loss, the gradient
    return tokens * layers * nb + logits


def counts(config) -> dict:
    """{"total", "trainable"} of the model built from `config` on the meta device (memoised per config)."""
    return dict(_counts(config.to_json_string()))


@functools.lru_cache(maxsize=64)
def _counts(config_json: str) -> tuple:
    from transformers import AutoConfig  # here: the plans are read by the torch-free runner, and transformers
                                              # loads torch

    d = json.loads(config_json)
    config = AutoConfig.for_model(d.pop("model_type"), **d)
    return tuple(param_counts(from_config(config, device="meta")).items())


def training_plan(name: str, config, batch: int, seq: int, precision: str = "bf16-autocast",
                  trainable: int | None = None, checkpointing: bool = False, other: float = 0.0,
                  host: float = 0.0, params: int | None = None) -> MemoryPlan:
    """AdamW training step. precision: fp32 | bf16-autocast (fp32 weights, bf16 matmuls) | fp16-amp (the same bytes,
    fp16 matmuls with a loss scaler: GPUs without bf16) | pure-bf16 (bf16 weights
    and optimizer state, no master copy) | bf16-frozen (bf16 frozen weights, fp32 trainable adapters: LoRA).
    `params`: the model's size where it differs from `config`'s (a compressed student); activations follow config."""
    allowed = ("fp32", "bf16-autocast", "fp16-amp", "pure-bf16", "bf16-frozen")
    if precision not in allowed:
        raise ValueError(f"unknown precision '{precision}'; allowed: {', '.join(allowed)}")
    c = counts(config)
    n = c["total"] if params is None else params
    t = c["trainable"] if trainable is None else trainable
    w = {"fp32": 4, "bf16-autocast": 4, "fp16-amp": 4, "pure-bf16": 2, "bf16-frozen": 2}[precision]
    tw = 2 if precision == "pure-bf16" else 4                        # bytes of a trainable parameter
    frozen_w = (n - t) * w + t * tw if precision == "bf16-frozen" else n * w
    act = "fp32" if precision == "fp32" else "fp16" if precision == "fp16-amp" else "bf16"
    setting = f"{precision}, batch {batch} x {seq}" + (", gradient checkpointing" if checkpointing else "")
    return MemoryPlan(name, n, t, frozen_w, t * tw, 2 * t * tw,
                      activation_bytes(config, batch, seq, act, checkpointing), other, host, setting)


def inference_plan(name: str, config, batch: int, seq: int, weights: str = "bf16", other: float = 0.0,
                   host: float = 0.0) -> MemoryPlan:
    """Forward pass without gradients: weights plus the largest live tensors (one layer's MLP hidden, the logits)."""
    c = counts(config)
    s = _shape(config)
    live = batch * seq * (4 * s["h"] + 2 * s["i"]) * BYTES[weights] + batch * seq * s["V"] * (BYTES[weights] + 4)
    return MemoryPlan(name, c["total"], 0, c["total"] * BYTES[weights], activations=live, other=other, host=host,
                      setting=f"{weights} weights, no grad, batch {batch} x {seq}")


def largest_micro_batch(name: str, config, seq: int, precision: str, gpu_gib: float = 80.0,
                        candidates=(1, 2, 4, 8, 16, 32, 64), **kw) -> int | None:
    """The largest micro-batch among `candidates` whose training step fits the GPU by its plan (None: none does):
    the same optimizer batch then needs fewer accumulation steps, and each matmul is larger."""
    fit = [b for b in candidates if training_plan(name, config, b, seq, precision, **kw).fits(gpu_gib)]
    return max(fit) if fit else None


def check_fits(plan: MemoryPlan, device: str, override: str) -> None:
    """Raise a clear error before a run starts when CUDA is used and the plan needs more than the GPU has."""
    if not str(device).startswith("cuda"):
        return
    import torch  # only on a GPU run (this module is read by the torch-free runner)

    have = torch.cuda.get_device_properties(torch.device(device)).total_memory
    if plan.total > HEADROOM * have:
        raise MemoryError(f"{plan.name} needs about {plan.total / GiB:.1f} GiB of GPU memory ({plan.setting}); "
                          f"{torch.cuda.get_device_name(torch.device(device))} has {have / GiB:.1f} GiB. "
                          f"Lower it with {override}")
