"""Does notebook 04 say the same thing when its forward passes run under fp16 autocast, as they do on a GPU without
bf16 (T4, P100: helpers.train.inference_autocast)? Measured on the local model (SmolLM2-135M-Instruct, offline) with
the CPU's fp16 autocast standing in for the GPU's (fp16 matmul outputs, fp32 accumulation: the same numerics class,
not the same kernels). Margins, stated before the run:

1. the teacher's held-out loss moves by at most 0.01 nats;
2. the calibration statistics (float64 sums of fp16-rounded inputs) differ by at most 1% (relative Frobenius norm of
   each Linear's second moment, the worst one);
3. at 20% fewer block-Linear parameters, whiten's and plain SVD's loss increases over the teacher each move by at most
   5% of themselves, and whiten / svd (seed 001's target ratio) by at most 0.02.

    python benchmarks/fp16_forward_check.py [--eval-blocks 16]
"""
from __future__ import annotations

import argparse
import contextlib

import torch

from helpers.compression import calibrate as C
from helpers.compression import data as D
from helpers.compression import measure as M
from helpers.compression import study as S
from helpers.profiles import settings
from helpers.results import save_run

MARGINS = {"teacher_loss_abs": 0.01, "stats_rel": 0.01, "increase_rel": 0.05, "ratio_abs": 0.02}


def measure(data, cfg, fp16: bool) -> dict:
    """The teacher's loss, the statistics and the 20% sweep (svd, whiten), every forward pass in fp32 or fp16."""
    data.pop("teacher_eval", None)                    # memoised per run of the teacher: not shared between modes
    data.pop("bases", None)
    with torch.autocast("cpu", dtype=torch.float16) if fp16 else contextlib.nullcontext():
        stats = C.calibrate(data["model"], data["calib_batches"], M.block_modules(data["model"]))
        sweep = M.measure_sweep(data, cfg, stats)
    inc = {r["method"]: r["loss"] - sweep["teacher_loss"] for r in sweep["rows"]}
    return {"stats": stats, "teacher_loss": sweep["teacher_loss"], "increase": inc,
            "ratio": inc["whiten"] / inc["svd"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-blocks", type=int, default=16)
    args = ap.parse_args()
    run = settings("fp16_forward_check", S.PROFILES, "local", quiet=True,
                  overrides={"sweep_eval_blocks": args.eval_blocks, "methods": ("svd", "whiten"),
                             "groups": ("both",), "reductions": (0.2,)})
    data = D.load(run.cfg, run.device)
    fp32, fp16 = measure(data, run.cfg, False), measure(data, run.cfg, True)
    # q/k/v and gate/up share one statistics object: compare each object once
    pairs = {id(s): (s, fp16["stats"][p]) for p, s in fp32["stats"].items()}.values()
    stats_rel = max(float(torch.linalg.norm(b.outer / b.n - a.outer / a.n) / torch.linalg.norm(a.outer / a.n))
                    for a, b in pairs)
    m = {"teacher_loss.fp32": fp32["teacher_loss"], "teacher_loss.fp16": fp16["teacher_loss"],
         "teacher_loss_abs": abs(fp16["teacher_loss"] - fp32["teacher_loss"]), "stats_rel": stats_rel,
         **{f"{k}.increase.{mode}": r["increase"][k] for k in ("svd", "whiten")
            for mode, r in (("fp32", fp32), ("fp16", fp16))},
         "increase_rel": max(abs(fp16["increase"][k] / fp32["increase"][k] - 1) for k in ("svd", "whiten")),
         "ratio.fp32": fp32["ratio"], "ratio.fp16": fp16["ratio"], "ratio_abs": abs(fp16["ratio"] - fp32["ratio"])}
    met = {k: m[k] <= v for k, v in MARGINS.items()}
    for k, v in MARGINS.items():
        print(f"{k:>18}: {m[k]:.5f} (margin {v}) -> {'met' if met[k] else 'MISSED'}")
    print(f"teacher loss {m['teacher_loss.fp32']:.4f} (fp32) / {m['teacher_loss.fp16']:.4f} (fp16 autocast); "
          f"loss increase at 20%: svd {m['svd.increase.fp32']:.4f} / {m['svd.increase.fp16']:.4f}, whiten "
          f"{m['whiten.increase.fp32']:.4f} / {m['whiten.increase.fp16']:.4f}; whiten / svd {m['ratio.fp32']:.4f} / "
          f"{m['ratio.fp16']:.4f}")
    path = save_run("benchmarks", "fp16_forward_check", "fp16-forward-passes",
                    {"profile": "local", "model": run.cfg.model, "eval_blocks": args.eval_blocks,
                     "calib_blocks": run.cfg.calib_blocks, "block": run.cfg.block, "margins": MARGINS},
                    {**m, **{f"met.{k}": v for k, v in met.items()}}, profile="local", seed=0, device=run.device)
    print(f"record: {path}")


if __name__ == "__main__":
    main()
