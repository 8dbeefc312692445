"""Seed 000 at the local size: training tokens/s and peak memory of the original vs the most compressed variants.

Each model trains the same steps on the same batches (one thread, as in the notebooks' worker processes); the
figures are printed side by side with the ratio to the original, and recorded in results/benchmarks/.

    python benchmarks/bench_surgery.py [--steps 40] [--threads 1]
"""
from __future__ import annotations

import argparse

import torch

from helpers.profiles import settings
from helpers.results import save_run
from helpers.surgery import study as P

# the original, and the variants with the fewest parameters at full scale: attention removed (6), no dense (8),
# MLP bottleneck 8 (10), partial attention + bottleneck MLPs (16), and the 2.8b pair (19 vs 20)
IDS = (1, 6, 8, 10, 16, 19, 20)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = settings("bench_surgery", P.PROFILES, "local", quiet=True,
                  overrides={"seeds": (0,), "train.max_steps": args.steps, "train.eval_every": 0})
    rows = []
    for exp_id in IDS:
        res = P.train_experiment(exp_id, 0, run.cfg, run.device)
        rows.append({"id": exp_id, "params": res["params"]["total"], "full_scale": res["params"]["full_scale"],
                     "tokens_per_s": res["metrics"]["tokens_per_s"], "peak_mb": res["provenance"]["peak_mem_mb"]})
    base = {r["id"]: r for r in rows}
    print(f"{'exp':>4} {'params':>10} {'full scale':>14} {'tokens/s':>10} {'vs orig':>8} {'peak MB':>8}")
    for r in rows:
        b = base[1 if P.EXPERIMENTS[r["id"]].model == "410m" else 19]
        r["speedup"] = r["tokens_per_s"] / b["tokens_per_s"]
        print(f"{r['id']:>4} {r['params']:>10,} {r['full_scale']:>14,} {r['tokens_per_s']:>10,.0f} "
              f"{r['speedup']:>7.2f}x {r['peak_mb']:>8.0f}")
    path = save_run("benchmarks", "bench_surgery", "local-stand-ins",
                    {"profile": "local", "steps": args.steps, "threads": args.threads, "ids": list(IDS),
                     "sizes": run.cfg.sizes},
                    {f"exp{r['id']:02d}.{k}": r[k] for r in rows
                     for k in ("tokens_per_s", "speedup", "peak_mb", "params")},
                    profile="local", seed=0, device=run.device)
    print(f"record: {path}")


if __name__ == "__main__":
    main()
