"""GPU throughput of the full profile's models, measured in one run on one CUDA device (issue 13):

  pythia-410m / 2.8b   training steps (AdamW, bf16 autocast, the notebooks' precision) at sequence 1024: tokens/s,
                       MFU = 6 x parameters x tokens/s / the device's peak dense bf16 FLOP/s, sdpa vs
                       flash_attention_2 (when the flash_attn package is installed); the training core's levers
                       (fused AdamW, TF32, torch.compile) each on and off, all on, and all on at the largest
                       micro-batch the memory plan allows
  07 pretraining LM    the same for notebook 07's full model (NeoX 768 x 10, block 512)
  06 SFT step          SmolLM2-360M (bf16 weights) with LoRA r = 16 on every Linear, batch 8 x 1024
  04 calibration       Mistral-7B forward passes in bf16, batch 1 x 1024 (calibration and evaluation speed)
  05 looped model      steps/s of the looped transformer at d = 20 (the full profile's final curriculum point), alone
                       and as the full profile packs it: per_gpu runs side by side on the one GPU (their summed
                       steps/s over one run's is the packing speedup the plan reads)

Weights are random (no download; throughput does not depend on their values). Each case also reports the measured
peak memory (torch.cuda.max_memory_allocated) beside helpers.memory's plan for it. The record goes to
results/benchmarks/. On a machine without CUDA it prints one line and exits 0.

    python benchmarks/bench_gpu.py [--steps 10]
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import time

import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoModelForCausalLM

from helpers.compression.calibrate import InputStats
from helpers.compression.factorize import Bases
from helpers.looped import config as L
from helpers.looped.training import fixed, train_model
from helpers.memory import inference_plan, largest_micro_batch, training_plan
from helpers.models import NeoXSize, count_params, mistral_config, neox_config, pythia_config, smollm2_config
from helpers.parallel import map_processes
from helpers.planning import card_of
from helpers.results import save_run


def peak_flops(name: str) -> float | None:
    """The device's dense bf16 tensor peak in FLOP/s from the planner's card table (helpers.planning.CARDS, the
    vendors' data sheets), or None: a card the table does not know, or one without bf16 (this benchmark's steps run
    in bf16 autocast)."""
    card = card_of(name)
    return card.peak_tflops * 1e12 if card is not None and card.bf16 else None


def _timed(step, steps: int, warmup: int = 3) -> float:
    """Seconds per call of step() after `warmup` calls, synchronising the GPU around the timed loop."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def _build(config, attn: str = "sdpa", dtype=torch.float32):
    with torch.device("cuda"):                       # initialise on the GPU: a 7B model's CPU init takes minutes
        return AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)


def lm_training(name: str, config, batch: int, seq: int, steps: int, attn: str = "sdpa", lora: bool = False,
                fused: bool = True, tf32: bool = True, compiled: bool = False) -> dict:
    """tokens/s, MFU and peak memory of AdamW training steps (bf16 autocast on fp32 weights; LoRA: bf16 frozen base);
    the levers: AdamW's fused kernel, TF32 matmuls, torch.compile of the model (its compile is in the warm-up)."""

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch.backends.cuda.matmul.allow_tf32 = tf32
    model = _build(config, attn, torch.bfloat16 if lora else torch.float32)
    if lora:
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=fused, foreach=None if fused else True)
    ids = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")
    forward = torch.compile(model) if compiled else model

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    s = _timed(step, steps)
    n, trainable = count_params(model), count_params(model, trainable_only=True)
    plan = training_plan(name, config, batch, seq, "bf16-frozen" if lora else "bf16-autocast",
                         trainable=trainable if lora else None)
    peak = torch.cuda.max_memory_allocated()
    model = opt = forward = None    # free the GPU memory before the next case (the closure is done with them)
    torch.backends.cuda.matmul.allow_tf32 = True
    tps = batch * seq / s
    # MFU counts 6 N per token for full training; with frozen weights the weight-gradient matmuls are skipped (4 N)
    flops = (4 if lora else 6) * n * tps
    return {"step_s": s, "tokens_per_s": tps, "flops_per_s": flops, "params": n, "trainable": trainable,
            "peak_gib": peak / 2**30, "plan_gib": plan.total / 2**30, "batch": batch, "seq": seq, "attn": attn}


def forward_only(name: str, config, batch: int, seq: int, steps: int) -> dict:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = _build(config, "sdpa", torch.bfloat16).eval()
    ids = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")

    def step():
        with torch.no_grad():
            model(input_ids=ids)

    s = _timed(step, steps, warmup=2)
    n = count_params(model)
    peak = torch.cuda.max_memory_allocated()
    model = None
    tps = batch * seq / s
    return {"step_s": s, "tokens_per_s": tps, "flops_per_s": 2 * n * tps, "params": n, "peak_gib": peak / 2**30,
            "plan_gib": inference_plan(name, config, batch, seq).total / 2**30, "batch": batch, "seq": seq}


def mistral_layer_bases(block_tokens: int = 1024) -> dict:
    """Notebook 04's per-layer costs at Mistral-7B's width: the calibration statistics of one decoder layer's four
    distinct Linear inputs for one block of tokens (float64, accumulated on the CPU and on the GPU), and the whiten
    and svd bases of that layer's seven Linears on the GPU (offloaded to the CPU, as the notebook does)."""

    c = mistral_config()
    h, i, kv = c.hidden_size, c.intermediate_size, c.hidden_size * c.num_key_value_heads // c.num_attention_heads
    shapes = {"q": (h, h), "k": (h, kv), "v": (h, kv), "o": (h, h), "gate": (h, i), "up": (h, i), "down": (i, h)}
    inputs = {"q": "attn", "k": "attn", "v": "attn", "o": "o", "gate": "mlp", "up": "mlp", "down": "down"}
    with torch.device("cuda"):
        mods = {n: nn.Linear(a, b, bias=False, dtype=torch.bfloat16) for n, (a, b) in shapes.items()}
    dims = {"attn": h, "o": h, "mlp": h, "down": i}
    xs = {k: torch.randn(block_tokens, d, device="cuda", dtype=torch.bfloat16) for k, d in dims.items()}
    out = {"block_tokens": block_tokens}
    for where in ("cpu", "cuda"):                 # where calibrate accumulates: the CPU, or the GPU in passes
        stats = {k: InputStats(d, device=where) for k, d in dims.items()}
        for k, st in stats.items():               # warm-up (allocations, kernels)
            st.update(xs[k][:8])
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for k, st in stats.items():
            st.update(xs[k])
        torch.cuda.synchronize()
        out[f"stats_s_per_layer_block_{where}"] = time.perf_counter() - t0
    stats = {k: st.to("cpu") for k, st in stats.items()}
    for method in ("whiten", "svd"):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        made = Bases(mods, method, {n: stats[inputs[n]] for n in mods})
        made.module("down", 1024)
        torch.cuda.synchronize()
        out[f"{method}_bases_s_per_layer"] = time.perf_counter() - t0
        del made
    return out


def _final_point():
    """(study config, looped model, training held at the full profile's final curriculum point: its largest step)."""
    cfg = L.PROFILES["full"]
    m = cfg.model
    return cfg, m, dataclasses.replace(cfg.train, dims=fixed(m.n_dims), points=fixed(m.n_positions),
                                       loops=fixed(m.loops), time_budget_s=None, log_every=10**9)


def looped_steps(steps: int) -> dict:
    cfg, m, tcfg = _final_point()
    train_model(m, dataclasses.replace(tcfg, steps=3), 0, "cuda")                  # warm-up (kernels, allocator)
    res = train_model(m, dataclasses.replace(tcfg, steps=steps), 0, "cuda")
    std = train_model(L.standard_config(cfg), dataclasses.replace(tcfg, steps=steps), 0, "cuda")
    return {"looped_steps_per_s": res["steps_per_s"], "looped_params": res["params"],
            "standard_steps_per_s": std["steps_per_s"], "standard_params": std["params"], "batch": tcfg.batch_size,
            "loops": m.loops, "d": m.n_dims, "points": m.n_positions}


def _packed_run(steps: int, seed: int, device: str) -> dict:
    """One looped run in a worker pinned to the GPU (helpers.parallel): its wall-clock span."""
    _, m, tcfg = _final_point()
    train_model(m, dataclasses.replace(tcfg, steps=3), seed, device)               # warm-up in this process
    start = time.time()
    res = train_model(m, dataclasses.replace(tcfg, steps=steps), seed, device)
    return {"start": start, "end": time.time(), "steps": res["steps"]}


def looped_packed(steps: int, alone_steps_per_s: float) -> dict:
    """per_gpu looped runs side by side on GPU 0 (the sweep runner's packing): summed steps/s over the span from the
    first start to the last end, and its ratio to one run alone."""
    k = L.PROFILES["full"].per_gpu
    out = map_processes(_packed_run, {i: (steps, i, "cuda") for i in range(k)}, device="cuda", per_device=k,
                        n_devices=1)
    span = max(r["end"] for r in out.values()) - min(r["start"] for r in out.values())
    total = sum(r["steps"] for r in out.values()) / span
    return {"runs": k, "steps_per_s_summed": total, "speedup": total / alone_steps_per_s}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per case (after warm-up)")
    ap.add_argument("--looped-steps", type=int, default=200)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing measured (run it on a GPU machine)")
        return 0

    torch.backends.cuda.matmul.allow_tf32 = True
    gpu = torch.cuda.get_device_name(0)
    peak = peak_flops(gpu)
    print(f"device: {gpu}, peak dense bf16 {peak / 1e12 if peak else float('nan'):.0f} TFLOP/s"
          + ("" if peak else " (unknown to this table: MFU not computed)"))
    attns = ["sdpa"] + (["flash_attention_2"] if importlib.util.find_spec("flash_attn") else [])
    if len(attns) == 1:
        print("flash_attn is not installed: flash_attention_2 not measured")
    cases = {}
    for attn in attns:
        cases[f"pythia-410m train {attn}"] = lambda a=attn: lm_training("pythia-410m", pythia_config("410m"), 8, 1024,
                                                                        args.steps, a)
    cases["pythia-410m train sdpa, notebook batch 2"] = lambda: lm_training("pythia-410m", pythia_config("410m"), 2,
                                                                            1024, args.steps)
    cases["pythia-2.8b train sdpa, notebook batch 2"] = lambda: lm_training("pythia-2.8b", pythia_config("2.8b"), 2,
                                                                            1024, args.steps)
    # the training core's levers on Pythia-410m at 1024 (issue 27: target MFU >= 40%), one off or on at a time
    big = largest_micro_batch("pythia-410m", pythia_config("410m"), 1024, "bf16-autocast",
                              torch.cuda.get_device_properties(0).total_memory / 2**30, candidates=(8, 16, 32))
    levers = {"levers off (for-each AdamW, no TF32, eager)": dict(fused=False, tf32=False),
              "+ fused AdamW": dict(fused=True, tf32=False), "+ TF32": dict(fused=False, tf32=True),
              "+ torch.compile": dict(fused=False, tf32=False, compiled=True),
              "all levers on": dict(fused=True, tf32=True, compiled=True)}
    for label, kw in levers.items():
        cases[f"pythia-410m batch 8, {label}"] = lambda kw=kw: lm_training("pythia-410m", pythia_config("410m"), 8,
                                                                           1024, args.steps, **kw)
    if big and big > 8:
        cases[f"pythia-410m batch {big} (the largest the plan allows), all levers on"] = lambda: lm_training(
            "pythia-410m", pythia_config("410m"), big, 1024, args.steps, fused=True, tf32=True, compiled=True)
    cases["07 pretraining LM train, batch 8"] = lambda: lm_training(
        "07 LM", neox_config(NeoXSize(hidden=768, layers=10, heads=12), vocab_size=32000), 8, 512, args.steps)
    cases["06 SmolLM2-360M LoRA SFT step, batch 8"] = lambda: lm_training("SmolLM2-360M", smollm2_config(), 8, 1024,
                                                                          args.steps, lora=True)
    cases["04 Mistral-7B forward, batch 1"] = lambda: forward_only("Mistral-7B", mistral_config(), 1, 1024, args.steps)
    rows = {}
    for name, fn in cases.items():
        try:
            r = fn()
        except torch.OutOfMemoryError as e:
            r = {"error": f"out of memory: {str(e).splitlines()[0]}"}
        if "flops_per_s" in r and peak:
            r["mfu"] = r["flops_per_s"] / peak
        rows[name] = r
        if "error" in r:
            print(f"{name:<42} {r['error']}")
        else:
            print(f"{name:<42} {r['tokens_per_s']:>10,.0f} tokens/s  MFU {r.get('mfu', float('nan')):6.1%}  "
                  f"peak {r['peak_gib']:5.1f} GiB (plan {r['plan_gib']:5.1f})  {r['step_s'] * 1e3:8.1f} ms/step")
    mb = mistral_layer_bases()
    rows["04 Mistral-7B layer: statistics and bases"] = mb
    print(f"{'04 Mistral-7B layer: statistics and bases':<42} statistics per layer and {mb['block_tokens']}-token "
          f"block {mb['stats_s_per_layer_block_cpu']:.2f} s on the CPU, {mb['stats_s_per_layer_block_cuda']:.3f} s on "
          f"the GPU (float64); whiten bases {mb['whiten_bases_s_per_layer']:.1f} s, svd bases "
          f"{mb['svd_bases_s_per_layer']:.1f} s per layer")
    lp = looped_steps(args.looped_steps)
    rows["05 looped d=20"] = lp
    print(f"{'05 looped model d=20, 30 loops':<42} {lp['looped_steps_per_s']:8.1f} steps/s (batch {lp['batch']}); "
          f"standard {lp['standard_steps_per_s']:.1f} steps/s")
    pk = looped_packed(args.looped_steps, lp["looped_steps_per_s"])
    rows["05 looped d=20 packed"] = pk
    print(f"{'05 looped model, ' + str(pk['runs']) + ' runs side by side':<42} {pk['steps_per_s_summed']:8.1f} steps/s "
          f"summed: x{pk['speedup']:.2f} one run's")
    config = {"steps": args.steps, "looped_steps": args.looped_steps, "gpu": gpu, "attn": attns}
    metrics = {f"{case}.{k}": v for case, r in rows.items() for k, v in r.items() if not isinstance(v, str)}
    path = save_run("benchmarks", "bench_gpu", "throughput", config, metrics, profile="full", seed=0, device="cuda",
                    tables={"cases": [{"case": c, **r} for c, r in rows.items()]})
    print(f"record: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
