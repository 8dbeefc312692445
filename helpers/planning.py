"""The GPU profiles (full, gpu-small) planned before anyone pays for them: the shape of a notebook's plan (the memory
plan of its largest step, helpers.memory, and an estimate of its wall time from the newest GPU benchmark record,
benchmarks/bench_gpu.py -> results/benchmarks/throughput-*.json), and the tables of all of them. Each family's
planner (`full_plan(notebook, bench, cfg, bf16)`: any config of its study, bf16 or not) lives in its study module;
helpers.families collects them.

Time model: a training run of a model with N parameters over T tokens takes 6 N T / (MFU x peak FLOP/s), with the MFU
measured by the benchmark on the most similar case (same model where there is one); inference 2 N T. The looped
model's steps/s and notebook 04's per-layer statistics and bases are measured directly (on the full profile's
shapes; gpu-small's smaller ones are scaled from them, as their planners say). On another card each step's time is
scaled by the two cards' peaks in the precision it runs in (NotebookPlan.on, Card.tflops). What the model leaves out
(evaluation passes, data preparation, Python overhead) makes these lower bounds; the notebook runner's per-cell
timeout in a GPU profile is `TIMEOUT_FACTOR` x the estimate on the GPU in use (where CARDS knows it), at least one
hour.

    python -m helpers plan                  # prints every notebook's plan and estimate (the benchmark's GPU)
    python -m helpers plan --device t4      # the same plans on another card (CARDS): memory against its memory
                                            # and host RAM, times scaled by the ratio of the cards' peak FLOP/s
                                            # in the precision each step runs in (Card.tflops)
    python -m helpers plan --profile gpu-small --device t4     # the profile sized for one 16 GB GPU, on a T4
    python -m helpers plan --profile gpu-small --device t4 --markdown --gpus 2    # its sweeps over two T4s (Kaggle)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re

from .memory import GiB, MemoryPlan, check_fits
from .models import llama_linear_shapes
from .paths import results_dir
from .results import ResultsError, load_records, validate

# WikiText-2 (raw) training split: 2,088,628 words (Merity et al. 2016, Table 1) x 1.286 BPE tokens per word (the
# fertility of SmolLM2's 49k BPE on this repository's English Wikipedia text, results/00_data_and_baselines/
# corpus-stats-*; Pythia's 50k BPE is assumed to be alike): an estimate, not a count
WIKITEXT2_TRAIN_TOKENS = round(2_088_628 * 1.286)
TIMEOUT_FACTOR = 3
MIN_TIMEOUT_S = 3600
GPU_SMALL_TARGET_H = 1.0        # what gpu-small is sized for: each notebook within an hour on a T4, by the plan


PRECISIONS = ("16-bit", "fp32", "fp64")     # what a work item's matmuls run in (NotebookPlan.precision)


@dataclasses.dataclass(frozen=True)
class Card:
    """A GPU a user may run on: memory, the dense 16-bit tensor peak (bf16 where it has it, else fp16) from the
    vendor's data sheet (the MFU's denominator), whether it has bf16, the host RAM of the usual machine that offers
    it, the longest session that offer allows (None: no limit known), which `auto` holds the full plan's time
    against, and the data sheet's fp32 (without TF32: torch's default for matmuls) and fp64 peaks. `amp_tflops`:
    what PyTorch's 16-bit mixed precision can reach where it is not the tensor peak (None: it is).
    `sustained_tflops`: the 16-bit rate the card is reported to hold on a long matmul where that is well below its
    peak (a power-capped T4); information for the plan's text, not the time model (NotebookPlan.on scales by the
    data-sheet peaks, the benchmark card's included, which does not hold its peak either)."""
    name: str
    memory_gib: float
    peak_tflops: float
    bf16: bool
    host_gib: float | None = None
    offered_by: str = ""
    session_h: float | None = None
    fp32_tflops: float | None = None
    fp64_tflops: float | None = None
    amp_tflops: float | None = None
    sustained_tflops: float | None = None

    def tflops(self, precision: str) -> float:
        """The peak a work item in `precision` (PRECISIONS) is scaled by."""
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{precision}'; allowed: {', '.join(PRECISIONS)}")
        rate = {"16-bit": self.amp_tflops or self.peak_tflops, "fp32": self.fp32_tflops,
                "fp64": self.fp64_tflops}[precision]
        if rate is None:
            raise ValueError(f"{self.name} has no {precision} peak in CARDS")
        return rate


CARDS = {
    # H100 SXM5: fp64 66.9 is its FP64 tensor-core peak, which cuBLAS's float64 matmuls use
    "h100": Card("NVIDIA H100 80GB", 80.0, 989.4, True, None, "the benchmark's card", fp32_tflops=66.9,
                 fp64_tflops=66.9),
    # A100 (SXM4 and PCIe, 40 and 80 GB: one chip, one set of peaks): 312 bf16 dense, fp32 19.5; fp64 19.5 is the
    # data sheet's FP64 tensor-core figure (its non-tensor-core fp64 is 9.7), which cuBLAS's float64 matmuls use,
    # as the H100's 66.9 above; the two memory sizes are told apart by name ("NVIDIA A100-SXM4-40GB")
    "a100": Card("NVIDIA A100 80GB", 80.0, 312.0, True, fp32_tflops=19.5, fp64_tflops=19.5),
    "a100 40gb": Card("NVIDIA A100 40GB", 40.0, 312.0, True, fp32_tflops=19.5, fp64_tflops=19.5),
    # the other cards a run may land on (benchmarks/bench_gpu.py reads its MFU denominator here), from NVIDIA's
    # data sheets, dense (not sparse) bf16 tensor peaks; fp64 is the FP64 tensor-core peak where the card has one.
    # Hopper: H100 PCIe 756 / fp32 51.2 / fp64 51.2 (80 GB); H100 NVL 835 / 60 / 60 (94 GB); H200 and GH200 are the
    # H100 SXM's chip and clocks (989.4, 66.9; 141 GB; GH200 96 GB HBM3); H200 NVL 835 / 60 / 60 (141 GB).
    "h100 pcie": Card("NVIDIA H100 PCIe", 80.0, 756.0, True, fp32_tflops=51.2, fp64_tflops=51.2),
    "h100 nvl": Card("NVIDIA H100 NVL", 94.0, 835.0, True, fp32_tflops=60.0, fp64_tflops=60.0),
    "h200": Card("NVIDIA H200", 141.0, 989.4, True, fp32_tflops=66.9, fp64_tflops=66.9),
    "h200 nvl": Card("NVIDIA H200 NVL", 141.0, 835.0, True, fp32_tflops=60.0, fp64_tflops=60.0),
    "gh200": Card("NVIDIA GH200", 96.0, 989.4, True, fp32_tflops=66.9, fp64_tflops=66.9),
    # Ada / Ampere GA10x (no FP64 tensor cores): fp64 at 1/64 of fp32 (CUDA C++ Programming Guide, arithmetic
    # instruction throughput, compute capability 8.6 / 8.9). L40S 362.05 / fp32 91.6 (48 GB), L40 181.05 / 90.5
    # (48 GB), L4 121 / 30.3 (24 GB), RTX 4090 165.2 (fp32 accumulate) / 82.6 (24 GB); A10G (AWS's A10 variant,
    # 24 GB) 70 as benchmarks/bench_gpu.py had it, fp32 31.2 (the A10's). Colab offers the L4 on its paid tiers,
    # whose sessions are limited too (at most 24 hours: Colab's FAQ)
    "l40s": Card("NVIDIA L40S", 48.0, 362.05, True, fp32_tflops=91.6, fp64_tflops=91.6 / 64),
    "l40": Card("NVIDIA L40", 48.0, 181.05, True, fp32_tflops=90.5, fp64_tflops=90.5 / 64),
    "l4": Card("NVIDIA L4", 24.0, 121.0, True, None, "Colab", 24.0, fp32_tflops=30.3, fp64_tflops=30.3 / 64),
    "a10g": Card("NVIDIA A10G", 24.0, 70.0, True, fp32_tflops=31.2, fp64_tflops=31.2 / 64),
    "rtx 4090": Card("NVIDIA GeForce RTX 4090", 24.0, 165.2, True, fp32_tflops=82.6, fp64_tflops=82.6 / 64),
    # free cards: Colab's T4 (15 GiB usable, ~12.7 GB of host RAM), Kaggle's P100 16 GB (~30 GB of host RAM). Both
    # services end a session after 12 hours at most (Colab's free tier often sooner). The T4's float64 runs at 1/32
    # of its fp32. The P100 has no tensor cores: its 18.7 TFLOP/s is the fp16 vector peak with fp16 accumulation,
    # while PyTorch's fp16 matmuls accumulate in fp32 (cublasGemmEx with CUDA_R_32F: pytorch/pytorch#123157), so its
    # mixed precision runs at the fp32 rate (measured: AMP trained a Wide-ResNet no faster than fp32 on Kaggle's
    # P100, 47.6 vs 47.0 min; blog.ceshine.net, 2019). The T4 (16 GB) sustains about 24 of its 65 fp16 TFLOP/s on a
    # long matmul, held back by its 70 W power cap (NVIDIA's developer forum): its sustained_tflops. The P100 (sm_60)
    # cannot be driven by torch 2.13's CUDA 12.8+ wheels (families.check_gpu stops a run on it); its entry stays for
    # plans under a torch that still builds sm_60
    "t4": Card("NVIDIA T4", 15.0, 65.0, False, 12.7, "Colab (free)", 12.0, fp32_tflops=8.1, fp64_tflops=0.25,
               sustained_tflops=24.0),
    "p100": Card("NVIDIA P100 16GB", 16.0, 18.7, False, 29.0, "Kaggle", 12.0, fp32_tflops=9.3, fp64_tflops=4.7,
                 amp_tflops=9.3),
}


def card_of(gpu: str | None) -> Card | None:
    """The CARDS entry of a device name ("NVIDIA H100 80GB HBM3" -> h100), or None: an entry matches when each word of
    its key is a word of the name (words: runs of letters and digits, so "NVIDIA A100-SXM4-40GB" has a100 and 40gb),
    the most specific (most words, then longest) first ("NVIDIA H100 PCIe" -> h100 pcie, not h100; "NVIDIA
    A100-PCIE-40GB" -> a100 40gb, not a100; "NVIDIA GH200" -> gh200, not h200; "NVIDIA L40" -> l40, not l4)."""
    words = set(re.findall(r"[a-z0-9]+", (gpu or "").lower()))
    hits = [key for key in CARDS if set(key.split()) <= words]
    return CARDS[max(hits, key=lambda k: (len(k.split()), len(k)))] if hits else None


@dataclasses.dataclass
class NotebookPlan:
    notebook: str
    memory: list[MemoryPlan]
    work: list[tuple[str, float | None]]       # (what, seconds on the benchmark's GPU; None = no measurement)
    gpu: str | None = None
    notes: str = ""
    card: Card | None = None                    # set by on(): the card the plan is shown for
    fixed: tuple = ()                           # work items that are wall-clock budgets: the same on every card
    profile: str = "full"                       # the GPU profile planned (full or gpu-small)
    runs: dict = dataclasses.field(default_factory=dict)   # work item -> its independent runs (missing: 1)
    per_device: int = 1                         # runs its sweeps put side by side on one GPU (not the budgets)
    pack_speedup: float | None = None           # their throughput over one run's (None: per_device, i.e. free)
    # work item -> (the precision the benchmark measured it in, the one it runs in on the planned card); missing:
    # 16-bit both (mixed precision, or bf16 weights)
    precision: dict = dataclasses.field(default_factory=dict)

    @property
    def peak(self) -> MemoryPlan:
        return max(self.memory, key=lambda p: p.total)

    @property
    def host(self) -> float:
        """Bytes of host memory the plan's largest step holds (float64 statistics, offloaded bases)."""
        return max(m.host for m in self.memory)

    @property
    def estimate_s(self) -> float | None:
        times = [s for _, s in self.work]
        return None if not times or any(s is None for s in times) else sum(times)

    def wall_s(self, gpus: int = 1, packed: bool = True) -> float | None:
        """The estimate with each work item's independent runs spread over `gpus` GPUs (W&B agents, or the sweep
        runner on a multi-GPU machine) and, packed, per_device of them side by side on each GPU (not the wall-clock
        budgets, which must not share a GPU): ceil(runs / slots) rounds of one run's time, the runs of an item
        taken as equal, a packed round slowed by per_device / pack_speedup (the planner's assumption until a GPU
        measures it: benchmarks/bench_gpu.py's packed case)."""
        if self.estimate_s is None:
            return None
        total = 0.0
        for what, s in self.work:
            n = self.runs.get(what, 1)
            k = self.per_device if packed and what not in self.fixed else 1
            slowdown = k / min(k, self.pack_speedup or k)
            total += math.ceil(n / (gpus * k)) * s / n * slowdown
        return total

    def timeout_s(self) -> int:
        est = self.estimate_s
        return MIN_TIMEOUT_S if est is None else max(MIN_TIMEOUT_S, int(TIMEOUT_FACTOR * est))

    def runs_in(self, what: str) -> tuple[str, str]:
        """(the precision the benchmark measured a work item in, the one it runs in on the planned card)."""
        return self.precision.get(what, ("16-bit", "16-bit"))

    def on(self, card: Card) -> "NotebookPlan":
        """This plan on another card: each time scaled by (the benchmark card's peak in the precision it was measured
        in / this card's peak in the precision it runs in there), i.e. at the fraction of peak measured on the
        benchmark's card (optimistic on older cards, which rarely reach it; a T4 holds about 24 of its 65 TFLOP/s
        on a long fp16 matmul, capped by its 70 W: NVIDIA's developer forum); wall-clock budgets unchanged; memory
        as planned, except a step a gpu-check on this card measured (measured_memory)."""
        bench = card_of(self.gpu)

        def scaled(what, s):
            if what in self.fixed:
                return s                        # a wall-clock budget: the same on every card
            if s is None or bench is None:
                return None
            measured, runs = self.runs_in(what)
            return s * bench.tflops(measured) / card.tflops(runs)

        return dataclasses.replace(self, work=[(w, scaled(w, s)) for w, s in self.work], gpu=card.name, card=card,
                                   memory=measured_memory(self, card))

    def at_sustained_s(self) -> float | None:
        """The estimate with the 16-bit steps at the card's sustained rate instead of its peak (Card.sustained_tflops;
        None where the card has none): how much longer the plan may run where a card cannot hold its peak."""
        est, card = self.estimate_s, self.card
        if est is None or card is None or card.sustained_tflops is None:
            return None
        return sum(s * card.tflops("16-bit") / card.sustained_tflops
                   if what not in self.fixed and self.runs_in(what)[1] == "16-bit" else s for what, s in self.work)

    def text(self) -> str:
        gib = self.card.memory_gib if self.card else 80.0
        lines = [f"== memory and time plan of {self.notebook} ({self.profile} profile)"
                 + (f" on {self.card.name} ({gib:.0f} GiB; times scaled from the benchmark by peak FLOP/s in each "
                    "step's precision)" if self.card else "")]
        lines += ["  " + p.line(gib) for p in self.memory]
        host = self.host
        if self.card and self.card.host_gib and host > self.card.host_gib * GiB:
            lines.append(f"  host memory {host / GiB:.1f} GiB does NOT fit the {self.card.host_gib:.1f} GB of "
                         f"{self.card.offered_by or 'its usual machine'}")
        for what, s in self.work:
            runs = self.runs_in(what)[1]
            lines.append(f"  {what}{'' if runs == '16-bit' else f' [{runs}]'}: "
                         + (f"{s / 3600:.2f} h" if s is not None else "no GPU measurement yet"))
        est = self.estimate_s
        lines.append(f"  estimated total on {self.gpu or 'the benchmark GPU'}: "
                     + (f"{est / 3600:.1f} h (a lower bound: evaluation and data preparation not counted); "
                        f"cell timeout {self.timeout_s() / 3600:.1f} h" if est is not None
                        else "unknown (run benchmarks/bench_gpu.py on a GPU)"))
        slow = self.at_sustained_s()
        if slow is not None and slow > est:
            lines.append(f"  at the {self.card.sustained_tflops:g} TFLOP/s this card sustains on a long 16-bit matmul "
                         f"(not its {self.card.tflops('16-bit'):g} peak): up to {slow / 3600:.1f} h")
        if self.profile == "gpu-small" and self.card and est is not None and est > GPU_SMALL_TARGET_H * 3600:
            lines.append(f"  more than the {GPU_SMALL_TARGET_H:.0f} h per notebook gpu-small is sized for on a T4 "
                         f"(Kaggle's 'GPU T4 x2' accelerator runs at the T4's plan)")
        if est is not None and (self.runs or self.per_device > 1):
            spread = [(f"{self.per_device} runs per GPU", self.wall_s(1))] if self.per_device > 1 else []
            each = f" x {self.per_device} runs each" if self.per_device > 1 else ""
            spread += [(f"{g} GPUs{each}", self.wall_s(g)) for g in (2, 8)]
            lines.append("  spread (planned, not measured; python -m helpers sweeps): "
                         + "; ".join(f"{w} {s / 3600:.1f} h" for w, s in spread))
        if self.notes:
            lines.append("  " + self.notes)
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the benchmark
def bench_records() -> list[dict]:
    """The committed benchmark records (what bench() reads when given none)."""
    return load_records(notebook="benchmarks", report=False)


def bench_case(b: dict, case: str) -> dict | None:
    """One case's row of bench()'s result, or None when the benchmark did not measure it."""
    return (b.get("cases") or {}).get(case)


def bench(records: list[dict] | None = None) -> dict:
    """{"gpu", "cases": {case: row}} from the newest bench_gpu record, with the cases the newest gpu-check on its card
    measured in their place (gpu_check_records; the gpu-check alone without a bench_gpu record); else empty."""
    records = records if records is not None else bench_records()
    recs = [r for r in records if r.get("experiment") == "bench_gpu" and r.get("status") == "ok"]
    rec = max(recs, key=lambda r: r.get("created", "")) if recs else None
    out = {"gpu": rec["config"]["gpu"], "cases": {row["case"]: row for row in rec["tables"]["cases"]}} if rec else {}
    check = next((r for r in gpu_check_records(records) if not rec or _same_card(r["config"]["gpu"], out["gpu"])), None)
    if check is not None:
        out = {"gpu": out.get("gpu", check["config"]["gpu"]),
               "cases": {**out.get("cases", {}), **{row["case"]: row for row in check["tables"].get("cases", [])}}}
    return out


# ------------------------------------------------------------------------------------------------ the gpu-check hook
def gpu_check_records(records: list[dict] | None = None) -> list[dict]:
    """`make gpu-check`'s records (benchmarks/gpu_check.py) measured on a GPU, never CPU mode's, newest first: among
    `records`, else read from results/benchmarks/gpu-check-*.json alone (cheap: NotebookPlan.on reads them)."""
    if records is None:
        records = []
        for path in sorted((results_dir() / "benchmarks").glob("gpu-check-*.json")):
            try:
                validate(rec := json.loads(path.read_text()))
                records.append(rec)
            except (OSError, ValueError, ResultsError):
                continue
    return sorted([r for r in records if r.get("experiment") == "gpu_check" and r.get("status") == "ok"
                   and r.get("config", {}).get("cpu_mode") is False], key=lambda r: r.get("created", ""), reverse=True)


def _same_card(a: str | None, b: str | None) -> bool:
    ca, cb = card_of(a), card_of(b)
    return ca == cb if ca is not None and cb is not None else a == b


def measured_memory(plan: NotebookPlan, card: Card, records: list[dict] | None = None) -> list[MemoryPlan]:
    """The plan's memory steps, each that the newest gpu-check on `card` measured in the same notebook, profile, step
    and setting with its activations set to the peak minus the exact weights, gradients, optimizer state and buffers
    (fits() and the tables then read the measured peak); the others as planned."""
    rec = next((r for r in gpu_check_records(records) if _same_card(r["config"]["gpu"], card.name)), None)
    peaks = {(r["notebook"], r["profile"], r["step"], r["setting"]): r["peak_gib"] * GiB
             for r in (rec["tables"].get("steps", []) if rec else []) if r.get("peak_gib")}
    return [m if (peak := peaks.get((plan.notebook, plan.profile, m.name, m.setting))) is None else dataclasses.replace(
        m, activations=max(0.0, peak - (m.total - m.activations)),
        setting=f"{m.setting}; measured {peak / GiB:.1f} GiB on {card.name} (gpu-check)") for m in plan.memory]


def train_seconds(b: dict, case: str, params: int, tokens: float, flops_per_param: int = 6) -> float | None:
    """Seconds to train `params` over `tokens` at the MFU the benchmark measured on `case`."""
    row = bench_case(b, case)
    if not row or "tokens_per_s" not in row:
        return None
    rate = row["flops_per_s"]                  # achieved FLOP/s on that case = its MFU x the device's peak
    return flops_per_param * params * tokens / rate


def table(plans: list[NotebookPlan], gpu_gib: float = 80.0) -> list[dict]:
    """One row per notebook: peak GPU memory, host memory, fits (the card's memory where the plan is shown for one,
    else gpu_gib), estimated hours (docs/profiles.md's full-profile table)."""
    return [{"notebook": p.notebook, "peak_gib": round(p.peak.total / GiB, 1), "peak_step": p.peak.name,
             "host_gib": round(p.host / GiB, 1),
             "fits_80gb": all(m.fits(p.card.memory_gib if p.card else gpu_gib) for m in p.memory),
             "host_fits": not (p.card and p.card.host_gib and p.host > p.card.host_gib * GiB),
             "hours": None if p.estimate_s is None else round(p.estimate_s / 3600, 1),
             "timeout_h": round(p.timeout_s() / 3600, 1)} for p in plans]


def markdown(plans: list[NotebookPlan]) -> str:
    """docs/profiles.md's full-profile table, generated from the plans (and so from the benchmark record); for plans
    shown on a card (NotebookPlan.on), its memory and host RAM decide "fits"."""
    gpu = next((p.gpu for p in plans if p.gpu), None)
    card = plans[0].card if plans else None
    size = f"{card.memory_gib:.0f} GiB" if card else "80 GB"
    head = (f"| notebook | largest step | GPU memory (plan) | host memory | fits {size} | est. time on {gpu or '-'} |\n"
            "|---|---|---|---|---|---|")
    rows = []
    for r in table(plans):
        host = (f"{r['host_gib']} GiB" + ("" if r["host_fits"] else " (more than the host has)")) if r["host_gib"] \
            else "-"
        hours = "unknown" if r["hours"] is None else f"{r['hours']} h"
        rows.append(f"| {r['notebook']} | {r['peak_step']} | {r['peak_gib']} GiB | {host} | "
                    f"{'yes' if r['fits_80gb'] else 'NO'} | {hours} |")
    return "\n".join([head, *rows])


def spread_markdown(plans: list[NotebookPlan], gpus: int = 8, packed: bool = True) -> str:
    """docs/several-gpus.md's table: each notebook with sweeps on one GPU one run at a time (the plan), one GPU
    with its small runs packed, and `gpus` GPUs (one W&B agent each, or the sweep runner on a machine with them),
    packed and not (packed=False: the two unpacked columns only, e.g. for Kaggle's two T4s)."""
    gpu = next((p.gpu for p in plans if p.gpu), None) or "-"
    cols = [(f"1 GPU ({gpu}), as planned", 1, False), ("1 GPU, packed", 1, True), (f"{gpus} GPUs", gpus, False),
            (f"{gpus} GPUs, packed", gpus, True)]
    cols = [c for c in cols if packed or not c[2]]
    rows = ["| notebook | " + " | ".join(c[0] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for p in plans:
        if not p.runs:
            continue
        cells = [p.wall_s(g, k) for _, g, k in cols]
        rows.append(f"| {p.notebook} | " + " | ".join("unknown" if c is None else f"{c / 3600:.1f} h" for c in cells)
                    + " |")
    return "\n".join(rows)


def host_ram() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check(plan: NotebookPlan, device: str) -> None:
    """Stop a GPU run whose plan does not fit the GPU in use or this machine's RAM, naming the overrides that lower
    it (and, for the full profile, the profile sized for 16 GB cards)."""
    smaller = ("PROFILE='gpu-small' (sized for one 16 GB GPU: `python -m helpers plan --profile gpu-small --device "
               "t4`)" if plan.profile == "full" else "")
    for m in plan.memory:
        check_fits(m, device, "a smaller micro-batch with more accumulation (train.batch_size / train.grad_accum) "
                              "or train.gradient_checkpointing=True, via the notebook's OVERRIDES"
                              + (f" or {smaller}" if smaller else ""))
    host, ram = plan.host, host_ram()
    if str(device).startswith("cuda") and host > ram:
        raise MemoryError(f"{plan.notebook} ({plan.profile} profile) plans {host / GiB:.1f} GiB of host memory "
                          f"(float64 statistics, offloaded bases); this machine has {ram / GiB:.1f} GiB"
                          + (f". Use {smaller}" if smaller else ""))


def lora_params(config, lora) -> int:
    """Trainable parameters of LoRA (rank r: r x (in + out) per adapted Linear) on a Llama-shaped model."""
    shapes = llama_linear_shapes(config)
    return config.num_hidden_layers * sum(lora.r * sum(shapes[t]) for t in lora.targets)
