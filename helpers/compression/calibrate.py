"""Calibration for notebook 04's factorizations: the input statistics of a model's Linears, gathered by hooks.

Forward hooks accumulate, per targeted Linear, the input's mean and second moment in float64 over a calibration set
(streaming: no activation is stored); `capture_inputs` keeps one Linear's actual inputs instead (for the gradient
fit and held-out errors).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ..precision import inference_autocast


# ------------------------------------------------------------------------------------------------ calibration
@dataclass
class InputStats:
    """Streaming first and second moments of a Linear's input, in float64, accumulated on `device` (the CPU, or a
    GPU during calibration: a 14336-wide x^T x per block is milliseconds there and seconds on a CPU)."""

    dim: int
    name: str = ""                  # the module's name, for errors
    n: int = 0
    total: torch.Tensor = None      # (in,)   sum of x
    outer: torch.Tensor = None      # (in, in) sum of x x^T
    abs_total: torch.Tensor = None  # (in,)   sum of |x|
    device: str = "cpu"

    def __post_init__(self):
        self.total = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        self.outer = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=self.device)
        self.abs_total = torch.zeros(self.dim, dtype=torch.float64, device=self.device)

    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None, where: str = "") -> None:
        """Add a batch of inputs (..., dim), skipping positions where mask is 0. Non-finite values are refused here,
        at the source: once in the sums every statistic is NaN and the factorization fails much later."""
        x = x.detach().reshape(-1, self.dim)
        if mask is not None:
            x = x[mask.reshape(-1).bool().to(x.device)]
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"{where or 'calibration inputs'}: {bad} non-finite value(s) (NaN/inf) in the input of "
                             f"{self.name or 'this Linear'}; the statistics would be NaN and no factorization could be "
                             "computed. Check the model's dtype (fp16 overflows) and the batch's tokens.")
        x = x.to(self.total.device, torch.float64)
        self.n += x.shape[0]
        self.total += x.sum(0)
        self.outer += x.T @ x
        self.abs_total += x.abs().sum(0)

    def to(self, device) -> "InputStats":
        """Move the accumulators (e.g. to the CPU once a calibration pass on the GPU is done)."""
        self.total, self.outer, self.abs_total = (t.to(device) for t in (self.total, self.outer, self.abs_total))
        self.device = str(device)
        return self

    @staticmethod
    def nbytes(dim: int) -> int:
        return 8 * (dim * dim + 2 * dim)

    @property
    def mean(self) -> torch.Tensor:
        return self.total / max(self.n, 1)

    def covariance(self, centered: bool = True) -> torch.Tensor:
        second = self.outer / max(self.n, 1)
        return second - torch.outer(self.mean, self.mean) if centered else second


def find_linears(model, pattern: str = r".*") -> dict[str, nn.Linear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear) and re.fullmatch(pattern, name)}


@torch.no_grad()
def calibrate(model, batches, modules: dict[str, nn.Linear], device: str = "cpu",
              stats_budget: int | None = None) -> dict[str, InputStats]:
    """Run `batches` (dicts with input_ids[, attention_mask]) through the model, collecting input statistics of
    every module in `modules` with forward hooks; padding positions (attention_mask 0) are skipped.

    On a GPU the statistics accumulate on it, in passes over the batches that each take as many layers as fit
    `stats_budget` bytes (default: half the free GPU memory; Mistral-7B's are 66 GB in float64, so two or three
    passes), and move to the CPU after their pass. On the CPU: one pass (or passes, given a budget), statistics on
    the CPU."""
    batches = list(batches)
    on_gpu = torch.device(device).type == "cuda"
    if on_gpu and stats_budget is None:
        stats_budget = torch.cuda.mem_get_info(torch.device(device))[0] // 2
    groups = _passes(modules, stats_budget) if stats_budget is not None else [list(modules)]
    stats: dict[str, InputStats] = {}
    for names in groups:
        part = _calibration_pass(model, batches, {n: modules[n] for n in names}, device,
                                 device if on_gpu else "cpu")
        stats.update({n: st.to("cpu") for n, st in part.items()} if on_gpu else part)
    # one object per shared input across passes too (q/k/v, gate/up): `Bases` decomposes each input once
    return {n: stats[n] for n in modules}


def _layer_of(name: str) -> str:
    m = re.search(r"(.*\.layers\.\d+)\.", name)
    return m.group(1) if m else name


def _passes(modules: dict[str, nn.Linear], budget: int) -> list[list[str]]:
    """Modules grouped by decoder layer, layers packed into passes of at most `budget` bytes of statistics (a layer
    is never split: its q/k/v and gate/up share one input and one statistics object)."""
    layers: dict[str, list[str]] = {}
    for name in modules:
        layers.setdefault(_layer_of(name), []).append(name)
    passes, current, used = [], [], 0
    for names in layers.values():
        need = sum(InputStats.nbytes(modules[n].in_features) for n in names)
        if current and used + need > budget:
            passes.append(current)
            current, used = [], 0
        current, used = current + names, used + need
    return passes + ([current] if current else [])


def _calibration_pass(model, batches, modules: dict[str, nn.Linear], device: str, stats_device: str):
    stats = {name: InputStats(m.in_features, name=name, device=stats_device) for name, m in modules.items()}
    current, seen = {}, {}

    def hook(name):
        def fn(mod, args):
            # q/k/v (and gate/up) read the same tensor: accumulate it once and share the statistics object.
            # `seen` holds the tensors until the batch ends, so no address is reused for another input meanwhile.
            key = (args[0].data_ptr(), tuple(args[0].shape))
            first = seen.get(key)
            if first is not None and first[0] != name:
                stats[name] = stats[first[0]]
                return
            seen[key] = (name, args[0])
            stats[name].update(args[0], current.get("mask"), f"calibration batch {current['index']}")
        return fn

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in modules.items()]
    try:
        model.eval()
        for index, batch in enumerate(batches):
            current.update(mask=batch.get("attention_mask"), index=index)
            seen.clear()
            with inference_autocast(device):     # fp16 matmuls on a GPU without bf16 (statistics stay float64)
                model(input_ids=batch["input_ids"].to(device), attention_mask=None
                      if batch.get("attention_mask") is None else batch["attention_mask"].to(device))
    finally:
        for h in handles:
            h.remove()
    return stats



# ------------------------------------------------------------------------------------------------ one Linear
def capture_inputs(model, batches, path: str, max_tokens: int | None = None, device: str = "cpu") -> torch.Tensor:
    """The actual inputs (tokens x in) of one Linear over `batches` (for the gradient fit and held-out MSE)."""
    rows = []
    lin = model.get_submodule(path)

    def fn(mod, args):
        rows.append(args[0].detach().reshape(-1, lin.in_features).float().cpu())

    h = lin.register_forward_pre_hook(fn)
    try:
        with torch.no_grad():
            for batch in batches:
                model(input_ids=batch["input_ids"].to(device))
                if max_tokens and sum(r.shape[0] for r in rows) >= max_tokens:
                    break
    finally:
        h.remove()
    x = torch.cat(rows)
    return x[:max_tokens] if max_tokens else x
