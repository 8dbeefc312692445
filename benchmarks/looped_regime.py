"""Regime search for the looped transformer on 2 CPU cores (issue 5): which d, width, loops, learning rate, batch and
token format let a 1-block looped model learn linear regression in context within a few minutes of training?

Every point trains one looped model (seed 0) for the same wall-clock budget on its own core (two points side by
side) and is scored on the fixed test set at its final setting against averaging and least squares at k = d and
k = 2d (the test prompts' seed: this search chose the regime; the notebook's learning rates are then chosen on
validation prompts, see its section 1). Each point is saved as a record (experiment "regime") in
results/05_looped_transformer/, which Analysis.ipynb tabulates.

    python benchmarks/looped_regime.py                 # the grid below, 240 s per point: 28 min on 2 cores (measured)
    python benchmarks/looped_regime.py --budget 20 --only d=5 d=8    # a quick look at two points
"""
from __future__ import annotations

import argparse

import pandas as pd

from helpers import looped_report as LR
from helpers import looped_study as L
from helpers.profiles import resolve


def grid(cfg) -> dict:
    """One factor at a time around d = 5 (13 points, width 64, 4 heads, 8 loops / window 4, Adam 1e-3, batch 128,
    extra_dim tokens), plus the paper's token format and a scan over d."""
    base = {**L.at_dims(cfg, 5), "model.token_format": "extra_dim"}
    points = {
        "d=5 paper tokens": {**base, "model.token_format": "paper"},
        "d=5": base,
        "d=5 lr 2e-3": {**base, "train.lr": 2e-3},
        "d=5 lr 5e-4": {**base, "train.lr": 5e-4},
        "d=5 batch 64": {**base, "train.batch_size": 64},
        "d=5 batch 256": {**base, "train.batch_size": 256},
        "d=5 width 32": {**base, "model.width": 32},
        "d=5 width 128": {**base, "model.width": 128},
        "d=5 4 loops": {**base, "model.loops": 4, "model.window": 2, "train.loops": L.icl.Schedule(2, 4, 2, 100)},
        "d=5 16 loops": {**base, "model.loops": 16, "model.window": 8, "train.loops": L.icl.Schedule(8, 16, 2, 100)},
    }
    for d in (4, 6, 8):
        points[f"d={d}"] = {**base, **L.at_dims(cfg, d)}
    return points


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=240, help="training seconds per point (default 240)")
    ap.add_argument("--only", nargs="*", help="names of grid points to run (default: all)")
    ap.add_argument("--force", action="store_true", help="retrain points that already have a record")
    args = ap.parse_args()
    run = resolve(LR.NOTEBOOK, L.PROFILES, "local", quiet=True,
                  # a wall-clock search on purpose (what learns in this many seconds here): the budget defines it
                  overrides={"train.steps": 100_000, "train.time_budget_s": args.budget, "workers": 2})
    points = grid(run.cfg)
    if args.only:
        unknown = sorted(set(args.only) - set(points))
        if unknown:
            raise SystemExit(f"unknown grid point(s) {unknown}; allowed: {sorted(points)}")
        points = {n: points[n] for n in args.only}
    records = L.regime_search(run, points, seed=0, force=args.force)   # points already recorded are loaded
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 4):
        print(LR.regime_table(list(records.values())))


if __name__ == "__main__":
    main()
