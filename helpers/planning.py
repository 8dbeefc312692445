"""The full profile on one GPU, planned before anyone pays for it: the shape of a notebook's plan (the memory plan
of its largest step, helpers.memory, and an estimate of its wall time from the newest GPU benchmark record,
benchmarks/bench_gpu.py -> results/benchmarks/throughput-*.json), and the tables of all of them. Each family's
planner (`full_plan(notebook, bench, cfg)`) lives in its study module; helpers.families collects them.

Time model: a training run of a model with N parameters over T tokens takes 6 N T / (MFU x peak FLOP/s), with the MFU
measured by the benchmark on the most similar case (same model where there is one); inference 2 N T. The looped
model's steps/s and notebook 04's per-layer statistics and bases are measured directly. What the model leaves out
(evaluation passes, data preparation, Python overhead) makes these lower bounds; the notebook runner's per-cell
timeout in the full profile is `TIMEOUT_FACTOR` x the estimate, at least one hour.

    python -m helpers plan          # prints every notebook's plan and estimate
"""
from __future__ import annotations

import dataclasses

from .memory import GiB, MemoryPlan, check_fits
from .results import load_records

# WikiText-2 (raw) training split: 2,088,628 words (Merity et al. 2016, Table 1) x 1.286 BPE tokens per word (the
# fertility of SmolLM2's 49k BPE on this repository's English Wikipedia text, results/00_data_and_baselines/
# corpus-stats-*; Pythia's 50k BPE is assumed to be alike): an estimate, not a count
WIKITEXT2_TRAIN_TOKENS = round(2_088_628 * 1.286)
TIMEOUT_FACTOR = 3
MIN_TIMEOUT_S = 3600


@dataclasses.dataclass
class NotebookPlan:
    notebook: str
    memory: list[MemoryPlan]
    work: list[tuple[str, float | None]]       # (what, seconds on the benchmark's GPU; None = no measurement)
    gpu: str | None = None
    notes: str = ""

    @property
    def peak(self) -> MemoryPlan:
        return max(self.memory, key=lambda p: p.total)

    @property
    def estimate_s(self) -> float | None:
        times = [s for _, s in self.work]
        return None if not times or any(s is None for s in times) else sum(times)

    def timeout_s(self) -> int:
        est = self.estimate_s
        return MIN_TIMEOUT_S if est is None else max(MIN_TIMEOUT_S, int(TIMEOUT_FACTOR * est))

    def text(self) -> str:
        lines = [f"== memory and time plan of {self.notebook} (full profile)"]
        lines += ["  " + p.line() for p in self.memory]
        for what, s in self.work:
            lines.append(f"  {what}: " + (f"{s / 3600:.2f} h" if s is not None else "no GPU measurement yet"))
        est = self.estimate_s
        lines.append(f"  estimated total on {self.gpu or 'the benchmark GPU'}: "
                     + (f"{est / 3600:.1f} h (a lower bound: evaluation and data preparation not counted); "
                        f"cell timeout {self.timeout_s() / 3600:.1f} h" if est is not None
                        else "unknown (run benchmarks/bench_gpu.py on a GPU)"))
        if self.notes:
            lines.append("  " + self.notes)
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the benchmark
def bench(records: list[dict] | None = None) -> dict:
    """{"gpu", "peak", "cases": {case: row}} from the newest bench_gpu record (empty when there is none)."""
    recs = [r for r in (records if records is not None else load_records(notebook="benchmarks", report=False))
            if r.get("experiment") == "bench_gpu" and r.get("status") == "ok"]
    if not recs:
        return {}
    rec = max(recs, key=lambda r: r.get("created", ""))
    return {"gpu": rec["config"]["gpu"], "cases": {row["case"]: row for row in rec["tables"]["cases"]}}


def train_seconds(b: dict, case: str, params: int, tokens: float, flops_per_param: int = 6) -> float | None:
    """Seconds to train `params` over `tokens` at the MFU the benchmark measured on `case`."""
    row = (b.get("cases") or {}).get(case)
    if not row or "tokens_per_s" not in row:
        return None
    rate = row["flops_per_s"]                  # achieved FLOP/s on that case = its MFU x the device's peak
    return flops_per_param * params * tokens / rate


def table(plans: list[NotebookPlan], gpu_gib: float = 80.0) -> list[dict]:
    """One row per notebook: peak GPU memory, host memory, fits, estimated hours (README's full-profile table)."""
    return [{"notebook": p.notebook, "peak_gib": round(p.peak.total / GiB, 1), "peak_step": p.peak.name,
             "host_gib": round(max(m.host for m in p.memory) / GiB, 1),
             "fits_80gb": all(m.fits(gpu_gib) for m in p.memory),
             "hours": None if p.estimate_s is None else round(p.estimate_s / 3600, 1),
             "timeout_h": round(p.timeout_s() / 3600, 1)} for p in plans]


def markdown(plans: list[NotebookPlan]) -> str:
    """The README's full-profile table, generated from the plans (and so from the benchmark record)."""
    gpu = next((p.gpu for p in plans if p.gpu), None)
    head = (f"| notebook | largest step | GPU memory (plan) | host memory | fits 80 GB | est. time on {gpu or '-'} |\n"
            "|---|---|---|---|---|---|")
    rows = []
    for r in table(plans):
        host = f"{r['host_gib']} GiB" if r["host_gib"] else "-"
        hours = "unknown" if r["hours"] is None else f"{r['hours']} h"
        rows.append(f"| {r['notebook']} | {r['peak_step']} | {r['peak_gib']} GiB | {host} | "
                    f"{'yes' if r['fits_80gb'] else 'NO'} | {hours} |")
    return "\n".join([head, *rows])


def check(plan: NotebookPlan, device: str) -> None:
    """Stop a run whose plan does not fit the GPU in use, naming the overrides that lower it."""
    for m in plan.memory:
        check_fits(m, device, "a smaller micro-batch with more accumulation (train.batch_size / train.grad_accum) "
                              "or train.gradient_checkpointing=True, via the notebook's OVERRIDES")


def lora_params(config, lora) -> int:
    """Trainable parameters of LoRA (rank r: r x (in + out) per adapted Linear) on a Llama-shaped model."""
    h, i, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = h * config.num_key_value_heads // config.num_attention_heads
    shapes = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h), "gate_proj": (h, i),
              "up_proj": (h, i), "down_proj": (i, h)}
    return L * sum(lora.r * sum(shapes[t]) for t in lora.targets)
