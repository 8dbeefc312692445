"""Regime search for notebook 00's from-scratch GPT-NeoX on 2 CPU cores (issue 39): which budget and tokenization let
the model end below the trigram table of its own tokens (report.GATE_ORDER), within minutes of one core per run?

Every point trains the local profile's LM under its overrides with one seed (helpers.baselines.study.REGIME_SEED,
never the notebook's), two points side by side, and records its validation loss, its unigram and bigram references
and its n-gram ladder. The rule that picks a point (helpers.baselines.report.regime_choice: the fewest training
tokens among the points at least REGIME_MARGIN nats below their trigram) was fixed in code before the search ran;
the chosen point becomes the local profile of notebook 00, whose seed-0 run is new data for it. Records go to
results/00_data_and_baselines/regime-*; Analysis.ipynb shows them.

    python benchmarks/baselines_regime.py                   # the grid below (make baselines-regime)
    python benchmarks/baselines_regime.py --only "1200 steps"
"""
from __future__ import annotations

import argparse

import pandas as pd

from helpers.baselines import report as R
from helpers.baselines import study as S
from helpers.profiles import settings

NOTEBOOK = "00_data_and_baselines"


def grid() -> dict:
    """The old local point (600 steps: 0.7 epoch of the English train split's 1.74M BPE-8192 tokens), twice its
    budget, and twice its budget on the 2048-token BPE (denser n-gram counts, a smaller embedding). The safety stop
    is raised to an hour for all: a point is defined by its steps. Each point names its steps: the local profile it
    overrides is the chosen point since the search ran."""
    safe = {"lm.train.time_budget_s": 3600}
    return {
        "600 steps (old local)": {**safe, "lm.train.max_steps": 600, "lm.train.eval_every": 100},
        "1200 steps": {**safe, "lm.train.max_steps": 1200, "lm.train.eval_every": 200},
        "bpe-2048 1200 steps": {**safe, "lm.tokenizer": "en-bpe-2048", "lm.train.max_steps": 1200,
                                "lm.train.eval_every": 200},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="names of grid points to run (default: all)")
    ap.add_argument("--force", action="store_true", help="retrain points that already have a record")
    args = ap.parse_args()
    run = settings(NOTEBOOK, S.PROFILES, "local", quiet=True)
    points = grid()
    if args.only:
        unknown = sorted(set(args.only) - set(points))
        if unknown:
            raise SystemExit(f"unknown grid point(s) {unknown}; allowed: {sorted(points)}")
        points = {n: points[n] for n in args.only}
    records = S.regime_search(run, points, force=args.force)     # points already recorded are loaded
    with pd.option_context("display.width", 220, "display.max_columns", 20, "display.precision", 3):
        print(R.regime_table(list(records.values())))
    print("chosen:", R.regime_choice(list(records.values())))


if __name__ == "__main__":
    main()
