"""The full profile on one GPU, planned before anyone pays for it: per notebook, the memory plan of its largest
step (helpers.memory) and an estimate of its wall time from the newest GPU benchmark record
(benchmarks/bench_gpu.py -> results/benchmarks/throughput-*.json).

Time model: a training run of a model with N parameters over T tokens takes 6 N T / (MFU x peak FLOP/s), with the MFU
measured by the benchmark on the most similar case (same model where there is one); inference 2 N T. The looped
model's steps/s and notebook 04's per-layer statistics and bases are measured directly. What the model leaves out
(evaluation passes, data preparation, Python overhead) makes these lower bounds; the notebook runner's per-cell
timeout in the full profile is `TIMEOUT_FACTOR` x the estimate, at least one hour.

    python -m helpers plan          # prints every notebook's plan and estimate
"""
from __future__ import annotations

import dataclasses
import math

from .memory import GiB, MemoryPlan, training_plan

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
    from .results import load_records

    recs = [r for r in (records if records is not None else load_records(notebook="benchmarks", report=False))
            if r.get("experiment") == "bench_gpu" and r.get("status") == "ok"]
    if not recs:
        return {}
    rec = max(recs, key=lambda r: r.get("created", ""))
    return {"gpu": rec["config"]["gpu"], "cases": {row["case"]: row for row in rec["tables"]["cases"]}}


def _train_s(b: dict, case: str, params: int, tokens: float, flops_per_param: int = 6) -> float | None:
    """Seconds to train `params` over `tokens` at the MFU the benchmark measured on `case`."""
    row = (b.get("cases") or {}).get(case)
    if not row or "tokens_per_s" not in row:
        return None
    rate = row["flops_per_s"]                  # achieved FLOP/s on that case = its MFU x the device's peak
    return flops_per_param * params * tokens / rate


# ------------------------------------------------------------------------------------------------ per notebook
def _surgery(nb: str, b: dict, cfg=None) -> NotebookPlan:
    from .models import pythia_config
    from .surgery_study import EXPERIMENTS, PROFILES

    cfg = cfg or PROFILES["full"]
    mem, work = [], []
    for size in ("410m", "2.8b"):
        exps = [e for e in EXPERIMENTS.values() if e.notebook == nb and e.model == size]
        if not exps:
            continue
        bs, accum = (cfg.micro_batch or {}).get(size, (cfg.train.batch_size, cfg.train.grad_accum))
        conf = pythia_config(size)
        plan = training_plan(f"pythia-{size}", conf, bs, cfg.block, "bf16-autocast",
                             checkpointing=bool(cfg.train.gradient_checkpointing))
        mem.append(plan)
        if cfg.epochs:
            per_run, length = cfg.epochs * WIKITEXT2_TRAIN_TOKENS, f"{cfg.epochs} epochs of " \
                f"~{WIKITEXT2_TRAIN_TOKENS / 1e6:.1f}M tokens"
        else:
            per_run = cfg.train.max_steps * bs * accum * cfg.block
            length = f"{cfg.train.max_steps} steps of {bs * accum} x {cfg.block} tokens"
        tokens = len(exps) * len(cfg.seeds) * per_run
        case = ("pythia-410m train sdpa" if (size, bs) == ("410m", 8) else f"pythia-{size} train sdpa, notebook batch 2")
        work.append((f"{len(exps)} pythia-{size} runs x {len(cfg.seeds)} seed(s) x {length}, micro-batch {bs} x "
                     f"{accum}", _train_s(b, case, plan.params, tokens)))
    return NotebookPlan(nb, mem, work, b.get("gpu"),
                        "low-rank variants are timed as the original (their matmuls are smaller: an upper bound)")


def _data(b: dict, cfg=None) -> NotebookPlan:
    from .data_study import PROFILES
    from .models import neox_config

    lm = (cfg or PROFILES["full"]).lm
    conf = neox_config(lm.size, vocab_size=50304)
    t = lm.train
    plan = training_plan("NeoX from scratch", conf, t.batch_size, lm.block, "bf16-autocast")
    tokens = t.max_steps * t.batch_size * t.grad_accum * lm.block
    return NotebookPlan("00_data_and_baselines", [plan], [
        (f"NeoX {lm.size.hidden} x {lm.size.layers}: {t.max_steps} steps of {t.batch_size * t.grad_accum} x "
         f"{lm.block} tokens", _train_s(b, "07 pretraining LM train, batch 8", plan.params, tokens))], b.get("gpu"))


def _compression(b: dict, cfg=None) -> NotebookPlan:
    from .compression_study import PROFILES
    from .memory import counts, inference_plan
    from .models import mistral_config

    cfg = cfg or PROFILES["full"]
    conf = mistral_config()
    n = counts(conf)["total"]
    h, i, L = conf.hidden_size, conf.intermediate_size, conf.num_hidden_layers
    stats_host = L * (3 * h * h + i * i) * 8                       # float64 second moments of 4 inputs per layer
    block_params = n - 2 * conf.vocab_size * h                      # the Linears that get compressed
    # whiten bases keep V (out x min(in, out)) per Linear in float32, offloaded to the host
    kv = h * conf.num_key_value_heads // conf.num_attention_heads
    v_elems = L * (h * h + kv * kv * 2 + h * h + 2 * h * i + h * h)
    heal = cfg.heal
    student_trainable = round((1 - cfg.heal_reduction) * block_params)
    # healing: the student (bf16, factors trainable) alone on the GPU (the teacher waits on the CPU); AdamW states
    # follow the parameters' dtype (bf16)
    heal_plan = training_plan("04 healing (student)", conf, heal.batch_size, cfg.heal_block, "pure-bf16",
                              trainable=student_trainable, checkpointing=bool(heal.gradient_checkpointing),
                              params=n - block_params + student_trainable)
    heal_plan.setting += ", teacher on the host meanwhile"
    calib = inference_plan("04 calibration / evaluation (teacher)", conf, 4, cfg.block, host=stats_host + v_elems * 4)
    calib_weights = calib.weights
    tokens_fwd = (cfg.calib_blocks + cfg.eval_blocks + 3 * len(cfg.reductions) * len(cfg.groups) *
                  cfg.sweep_eval_blocks + L * 2 * cfg.sens_eval_blocks) * cfg.block
    fwd = _train_s(b, "04 Mistral-7B forward, batch 1", n, tokens_fwd, flops_per_param=2)
    layer = (b.get("cases") or {}).get("04 Mistral-7B layer: statistics and bases")
    # statistics accumulate on the GPU in passes of layers that fit half the memory the teacher leaves (calibrate);
    # each pass after the first repeats the calibration forward passes. Older records timed the CPU path only.
    passes = math.ceil(stats_host / (0.5 * (80 * GiB - calib_weights)))
    per_block = layer and layer.get("stats_s_per_layer_block_cuda", layer.get("stats_s_per_layer_block"))
    stats_s = layer and (per_block * L * cfg.calib_blocks * cfg.block / layer["block_tokens"]
                         + (passes - 1) * (_train_s(b, "04 Mistral-7B forward, batch 1", n, cfg.calib_blocks *
                                                    cfg.block, flops_per_param=2) or 0))
    bases_s = layer and L * (layer["whiten_bases_s_per_layer"] * 2 + layer["svd_bases_s_per_layer"] * 2)
    heal_s = _train_s(b, "04 Mistral-7B forward, batch 1", n, heal.max_steps * heal.batch_size * heal.grad_accum *
                      cfg.heal_block, flops_per_param=6)
    return NotebookPlan("04_lowrank_compression", [calib, heal_plan], [
        (f"forward passes (calibration, teacher, sweeps, sensitivity): {tokens_fwd / 1e6:.1f}M tokens", fwd),
        (f"calibration statistics (float64, on the GPU in {passes} passes): {cfg.calib_blocks} blocks x {L} layers",
         stats_s),
        ("bases (whiten and svd/scaled, each twice: sweep and healing)", bases_s),
        (f"healing: {heal.max_steps} steps of {heal.batch_size * heal.grad_accum} x {cfg.heal_block} tokens", heal_s),
    ], b.get("gpu"), "host memory: float64 statistics and offloaded bases live on the CPU (see 'host')")


def _looped(b: dict, cfg=None) -> NotebookPlan:
    import torch

    from .looped import LoopedTransformer
    from .looped_study import PROFILES, task_config

    cfg = cfg or PROFILES["full"]

    with torch.device("meta"):
        n = sum(p.numel() for p in LoopedTransformer(cfg.model).parameters())
    tokens = cfg.train.batch_size * 2 * cfg.model.n_positions
    # every loop's block activations are kept for backward (fp32): ~20 floats per token and width, per loop
    act = tokens * cfg.model.loops * 20 * cfg.model.width * 4
    mem = MemoryPlan("looped d=20", n, n, 4 * n, 4 * n, 8 * n, act, setting=f"fp32, batch {cfg.train.batch_size}, "
                     f"{cfg.model.loops} loops")
    row = (b.get("cases") or {}).get("05 looped d=20")
    lps, sps = (row["looped_steps_per_s"], row["standard_steps_per_s"]) if row else (None, None)
    seeds = len(cfg.seeds)
    task_steps = sum(max(1, task_config(cfg, t)[0].loops) / cfg.model.loops for t in cfg.tasks) * cfg.task_steps
    work = [(f"looped and standard, {seeds} seeds x {cfg.train.steps:,} steps",
             lps and seeds * cfg.train.steps * (1 / lps + 1 / sps)),
            (f"{len(cfg.options)} options x {cfg.option_steps:,} steps", lps and len(cfg.options) * cfg.option_steps / lps),
            (f"{len(cfg.tasks)} tasks x {cfg.task_steps:,} steps (scaled by their loops)", lps and task_steps / lps)]
    return NotebookPlan("05_looped_transformer", [mem], work, b.get("gpu"),
                        "steps/s measured at the final curriculum point (the largest prompts): an upper bound")


def _pretrain(b: dict, cfg=None) -> NotebookPlan:
    from .models import neox_config
    from .pretrain_study import PROFILES

    cfg = cfg or PROFILES["full"]
    lm = cfg.lm
    cells = list(_grid_cells(cfg.grid))
    big = max(bs for bs, _ in cells)
    plan = training_plan("07 LM", neox_config(lm.size, vocab_size=32000), big, lm.block, "bf16-autocast")
    budget = lm.train.time_budget_s
    runs = len(cells) + 2 * len(cfg.noise_seeds) + len(cfg.schedules) + len(cfg.lr_range)
    return NotebookPlan("07_pretraining", [plan], [
        (f"{runs} runs of a {budget / 60:.0f}-minute budget (grid {len(cells)}, noise {2 * len(cfg.noise_seeds)}, "
         f"schedules {len(cfg.schedules)}, lr {len(cfg.lr_range)})", runs * budget)], b.get("gpu"),
        "time-budgeted runs: the time does not depend on the GPU, the steps they reach do")


def lora_params(config, lora) -> int:
    """Trainable parameters of LoRA (rank r: r x (in + out) per adapted Linear) on a Llama-shaped model."""
    h, i, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = h * config.num_key_value_heads // config.num_attention_heads
    shapes = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h), "gate_proj": (h, i),
              "up_proj": (h, i), "down_proj": (i, h)}
    return L * sum(lora.r * sum(shapes[t]) for t in lora.targets)


def _sft(b: dict, cfg=None) -> NotebookPlan:
    from .memory import counts
    from .models import smollm2_config
    from .sft_study import PROFILES, SFT_VARIANTS, variant_settings

    cfg = cfg or PROFILES["full"]
    conf = smollm2_config()
    n, lora = counts(conf)["total"], lora_params(conf, cfg.lora)
    s, d, T = cfg.sft, cfg.dpo, cfg.max_length
    plans = [training_plan("06 SFT (LoRA)", conf, s.batch_size, T, "bf16-frozen", trainable=lora),
             # DPO: chosen and rejected of each pair go through the model together
             training_plan("06 DPO (LoRA)", conf, 2 * d.batch_size, T, "bf16-frozen", trainable=lora)]
    sft_tokens = sum(v.steps * v.batch_size * v.grad_accum * T for v in (variant_settings(cfg, x)[0]
                                                                          for x in SFT_VARIANTS))
    dpo_tokens = len(cfg.dpo_losses) * d.steps * 2 * d.batch_size * T
    models_scored = len(SFT_VARIANTS) + 2 * len(cfg.dpo_losses) + 3          # each run, then the comparison
    eval_tokens = models_scored * (cfg.test_rows + 2 * cfg.test_pairs) * T
    case = "06 SmolLM2-360M LoRA SFT step, batch 8"
    return NotebookPlan("06_sft_dpo", plans, [
        (f"{len(SFT_VARIANTS)} SFT runs (LoRA r={cfg.lora.r}): {sft_tokens / 1e6:.0f}M tokens at <= {T}",
         _train_s(b, case, n, sft_tokens, flops_per_param=4)),
        # a DPO step: policy forward + backward through the adapters (4 N) and the reference's forward (2 N)
        (f"{len(cfg.dpo_losses)} DPO runs: {dpo_tokens / 1e6:.0f}M tokens", _train_s(b, case, n, dpo_tokens, 6)),
        (f"held-out scoring of {models_scored} models: {eval_tokens / 1e6:.1f}M tokens",
         _train_s(b, case, n, eval_tokens, 2)),
    ], b.get("gpu"), "tokens counted at max_length (sequences are padded to the longest of their batch); greedy "
       "generation and the DPO accuracy probes are not counted")


def _grid_cells(grid: dict):
    from .sweep import grid as expand

    for point in expand(grid).values():
        yield point["lm.train.batch_size"], point["lm.train.grad_accum"]


PLANNERS = {
    "00_data_and_baselines": _data,
    "01_attention_lowrank": lambda b, cfg=None: _surgery("01_attention_lowrank", b, cfg),
    "02_mlp_lowrank": lambda b, cfg=None: _surgery("02_mlp_lowrank", b, cfg),
    "03_partial_layers": lambda b, cfg=None: _surgery("03_partial_layers", b, cfg),
    "04_lowrank_compression": _compression,
    "05_looped_transformer": _looped,
    "06_sft_dpo": _sft,
    "07_pretraining": _pretrain,
}


def plan(notebook: str, records: list[dict] | None = None, cfg=None) -> NotebookPlan:
    """The plan of a notebook's full profile (or of `cfg`, a full config with the user's overrides)."""
    if notebook not in PLANNERS:
        raise ValueError(f"no full-profile plan for '{notebook}'; planned: {', '.join(PLANNERS)}")
    return PLANNERS[notebook](bench(records), cfg)


def all_plans(records: list[dict] | None = None) -> list[NotebookPlan]:
    b = bench(records)
    return [fn(b) for fn in PLANNERS.values()]


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


def cell_timeout(notebook: str, profile: str) -> int:
    """The notebook runner's per-cell limit: one hour in tiny/local, TIMEOUT_FACTOR x the estimate in full."""
    if profile != "full" or notebook not in PLANNERS:
        return MIN_TIMEOUT_S
    return plan(notebook).timeout_s()


def show(notebook: str, run=None, quiet: bool = False) -> NotebookPlan | None:
    """Print a notebook's plan at the start of a full run and check that it fits the GPU in use; None for a
    notebook without a plan."""
    if notebook not in PLANNERS:
        return None
    p = plan(notebook, cfg=None if run is None else run.cfg)
    if not quiet:
        print(p.text(), flush=True)
    if run is not None:
        from .memory import check_fits

        for m in p.memory:
            check_fits(m, run.device, "a smaller micro-batch with more accumulation (train.batch_size / "
                       "train.grad_accum) or train.gradient_checkpointing=True, via the notebook's OVERRIDES")
    return p
