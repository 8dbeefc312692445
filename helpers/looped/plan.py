"""Notebook 05's cost and plan on a GPU: forward FLOPs per prediction and per training step (a record's cost column,
the plan's scaling between sizes), and the full profile's plan `full_plan` from the GPU benchmark's steps/s
(helpers.planning), with the planned gain of several runs side by side on one GPU (`pack_speedup`).
"""
from __future__ import annotations

import torch

from ..memory import MemoryPlan
from ..models import LoopedConfig, count_params
from ..planning import NotebookPlan, bench_case, card_of
from .config import PROFILES, LoopedStudyConfig, standard_config, task_config
from .model import LoopedTransformer


def flops_per_prediction(mcfg: LoopedConfig, n_points: int, loops: int | None = None) -> float:
    """Forward FLOPs per prediction of a prompt of n_points (x, y) pairs: every block applied (loops for the looped
    model, its depth for the standard one) costs 2 x its parameters per token plus ~2 T x width for the causal
    attention over T = 2 n tokens; read-in and read-out once; divided by the n predictions."""
    with torch.device("meta"):
        model = LoopedTransformer(mcfg)
    block = count_params(model.blocks[0])
    applied = (loops or mcfg.loops) if mcfg.looped else mcfg.n_layer
    T = 2 * n_points
    per_token = applied * (2 * block + 2 * T * mcfg.width) + 2 * (count_params(model.read_in) +
                                                                  count_params(model.read_out))
    return per_token * T / n_points


def flops_per_step(cfg: LoopedStudyConfig, mcfg: LoopedConfig) -> float:
    """Forward FLOPs of one training step at the curriculum's end: batch x prompt length x FLOPs per prediction."""
    return cfg.train.batch_size * mcfg.n_positions * flops_per_prediction(mcfg, mcfg.n_positions)


# ------------------------------------------------------------------------------------------------ full-profile plan
def full_plan(notebook: str, b: dict, cfg=None, bf16: bool = True) -> NotebookPlan:
    """The full profile's plan: the looped model's memory and steps/s from the GPU benchmark (helpers.planning)."""
    cfg = cfg or PROFILES["full"]
    with torch.device("meta"):
        n = count_params(LoopedTransformer(cfg.model))
    tokens = cfg.train.batch_size * 2 * cfg.model.n_positions
    # every loop's block activations are kept for backward (fp32): ~20 floats per token and width, per loop
    act = tokens * cfg.model.loops * 20 * cfg.model.width * 4
    mem = MemoryPlan(f"looped d={cfg.model.n_dims}", n, n, 4 * n, 4 * n, 8 * n, act,
                     setting=f"fp32, batch {cfg.train.batch_size}, {cfg.model.loops} loops")
    row = bench_case(b, "05 looped d=20")
    lps, sps = (row["looped_steps_per_s"], row["standard_steps_per_s"]) if row else (None, None)
    # measured on the full profile's d = 20 models; another size is scaled by its FLOPs per step, which a
    # latency-bound small model does not fully gain
    ref = PROFILES["full"]
    if lps and cfg.model != ref.model:
        lps *= flops_per_step(ref, ref.model) / flops_per_step(cfg, cfg.model)
        sps *= flops_per_step(ref, standard_config(ref)) / flops_per_step(cfg, standard_config(cfg))
    seeds = len(cfg.seeds)
    option_steps = cfg.option_steps or cfg.train.steps
    n_options = len(cfg.options) + (option_steps != cfg.train.steps)
    task_steps = sum(max(1, task_config(cfg, t)[0].loops) / cfg.model.loops for t in cfg.tasks) * cfg.task_steps
    work = [(f"looped and standard, {seeds} seeds x {cfg.train.steps:,} steps",
             lps and seeds * cfg.train.steps * (1 / lps + 1 / sps), 2 * seeds),
            (f"{n_options} options x {len(cfg.option_seeds)} seeds x {option_steps:,} steps",
             lps and n_options * len(cfg.option_seeds) * option_steps / lps, n_options * len(cfg.option_seeds)),
            (f"{len(cfg.tasks)} tasks x {len(cfg.task_seeds)} seeds x {cfg.task_steps:,} steps (scaled by their loops)",
             lps and len(cfg.task_seeds) * task_steps / lps, len(cfg.tasks) * len(cfg.task_seeds))]
    return NotebookPlan(notebook, [mem], [(w, s) for w, s, _ in work], b.get("gpu"),
                        "steps/s measured at the final curriculum point (the largest prompts): an upper bound"
                        + ("" if cfg.model == ref.model else "; scaled from d = 20 by FLOPs per step"),
                        runs={w: n for w, _, n in work}, per_device=cfg.per_gpu,
                        # fp32 throughout: the training loop uses no autocast and leaves torch's default (no TF32);
                        # the benchmark's case ran with TF32 allowed, which its small latency-bound matmuls barely use
                        precision={w: ("fp32", "fp32") for w, _, _ in work},
                        pack_speedup=lps and pack_speedup(b, cfg, lps))


def pack_speedup(b: dict, cfg: LoopedStudyConfig, lps: float) -> float:
    """The planned throughput of cfg.per_gpu looped runs side by side on one GPU over one run's: free (per_gpu) until
    together they reach the MFU the benchmark measured for Pythia-410m (what that GPU does when it is busy), then
    capped there. An assumption: a latency-bound step leaves the GPU idle between kernels, which other processes'
    kernels fill (time-sliced, not concurrent, without MPS). The packed case of benchmarks/bench_gpu.py measures it;
    once recorded at this per_gpu, that measurement is used instead."""
    packed = bench_case(b, "05 looped d=20 packed")
    if packed and packed.get("runs") == cfg.per_gpu:
        return packed["speedup"]                          # measured (benchmarks/bench_gpu.py)
    busy = (bench_case(b, "pythia-410m train sdpa") or {}).get("mfu")
    card = card_of(b.get("gpu"))
    if not busy or card is None:
        return cfg.per_gpu
    run_mfu = 3 * flops_per_step(cfg, cfg.model) * lps / (card.peak_tflops * 1e12)   # training = 3 x forward
    return min(cfg.per_gpu, busy / run_mfu)
