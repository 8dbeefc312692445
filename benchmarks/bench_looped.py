"""Training steps/s of the looped model vs standard transformers at equal width (one thread, the local profile's
sizes and batch), measured back to back in one run, recorded in results/benchmarks/.

    python benchmarks/bench_looped.py [--steps 60]
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from helpers.looped import config as L
from helpers.looped.training import fixed, train_model
from helpers.profiles import settings
from helpers.results import save_run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = settings("bench_looped", L.PROFILES, "local", quiet=True)
    cfg = run.cfg
    tcfg = dataclasses.replace(cfg.train, steps=args.steps, time_budget_s=None, loops=fixed(cfg.model.loops))
    models = {f"looped 1 block x {cfg.model.loops} loops (window {cfg.model.window})": cfg.model}
    for layers in (2, 3, 4):
        models[f"standard {layers} layers"] = dataclasses.replace(L.standard_config(cfg), n_layer=layers)
    rows = {}
    for name, mcfg in models.items():
        res = train_model(mcfg, tcfg, 0, run.device)
        rows[name] = {"steps_per_s": res["steps_per_s"], "params": res["params"]}
        print(f"{name:<40} {res['steps_per_s']:7.2f} steps/s  {res['params']:>8,} params")
    first = next(iter(rows.values()))["steps_per_s"]
    for name, r in rows.items():
        print(f"{name:<40} {r['steps_per_s'] / first:6.2f}x the looped model's steps/s")
    config = {"profile": "local", "steps": args.steps, "batch": tcfg.batch_size, "points": cfg.train.points.end,
              "models": {n: dataclasses.asdict(m) for n, m in models.items()}}    # the settings are in the run id
    path = save_run("benchmarks", "bench_looped", "steps-per-s", config,
                    {f"{n}.{k}": v for n, r in rows.items() for k, v in r.items()}, profile="local", seed=0,
                    device=run.device)
    print(f"record: {path}")


if __name__ == "__main__":
    main()
