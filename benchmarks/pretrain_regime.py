"""Regime search for seed 003 on 2 CPU cores (issue 23): which tokenization, model, block, budget and learning rate
let every cell of the batch x accumulation grid learn more than a bigram table within seconds of one core, so that a
batch size or a schedule can matter at all?

Every point trains the grid's smallest (2 x 1) and largest (8 x 4) cells from scratch with one seed
(helpers.pretraining.runs.REGIME_SEED, never one the notebook reports) for the point's budget of CPU time (one torch
thread per run, two runs side by side), and records each cell's eval loss, how far it ends below the interpolated
bigram table of the point's tokens (train split -> validation split), and the gap between the two cells. The gate the
notebook applies to every run is "at least 0.3 nats below the bigram"; a point passes when both extremes do (the
largest cell makes the fewest updates, the smallest the noisiest). Records go to results/07_pretraining/regime-*;
Analysis.ipynb shows them. The chosen point is helpers.pretraining.study.PROFILES["local"].

    python benchmarks/pretrain_regime.py                    # the grid below (make pretrain-regime)
    python benchmarks/pretrain_regime.py --only "bpe-1024 96x4 20s"
"""
from __future__ import annotations

from helpers.families import resolve
from helpers.models import NeoXSize
from helpers.pretraining import report as R
from helpers.pretraining.runs import regime_search
from helpers.sweep import regime_cli


def grid() -> dict:
    """The old local point (BPE-8192, 64 x 2, wall-clock budget), then around BPE-1024 with a 96 x 4 model, 20 s of
    CPU time: tokenization, size, block, budget and learning rate one at a time."""
    base = {"lm.tokenizer": "ru-bpe-1024", "lm.size": NeoXSize(hidden=96, layers=4, heads=4), "lm.block": 64,
            "lm.train.time_budget_s": 20, "lm.train.budget_clock": "cpu", "lm.train.lr": 3e-3}
    bytes128 = {**base, "lm.tokenizer": "bytes", "lm.block": 128}
    bytes64x2 = {**bytes128, "lm.size": NeoXSize(hidden=64, layers=2, heads=4)}
    return {
        "bpe-8192 64x2 20s wall (old local)": {**base, "lm.tokenizer": "ru-bpe-8192",
                                               "lm.size": NeoXSize(hidden=64, layers=2, heads=4),
                                               "lm.train.budget_clock": None},
        "bpe-1024 96x4 20s": base,
        "bytes 96x4 block 128 20s": bytes128,
        "bpe-512 96x4 20s": {**base, "lm.tokenizer": "ru-bpe-512"},
        "bpe-2048 96x4 20s": {**base, "lm.tokenizer": "ru-bpe-2048"},
        "bpe-1024 64x2 20s": {**base, "lm.size": NeoXSize(hidden=64, layers=2, heads=4)},
        "bpe-1024 128x4 20s": {**base, "lm.size": NeoXSize(hidden=128, layers=4, heads=4)},
        "bpe-1024 96x4 block 128 20s": {**base, "lm.block": 128},
        "bpe-1024 96x4 10s": {**base, "lm.train.time_budget_s": 10},
        "bpe-1024 96x4 40s": {**base, "lm.train.time_budget_s": 40},
        "bpe-1024 96x4 20s lr 1e-3": {**base, "lm.train.lr": 1e-3},
        "bpe-1024 96x4 20s lr 1e-2": {**base, "lm.train.lr": 1e-2},
        # second round, around the only tokenization that came near the gate: UTF-8 bytes
        "bytes 96x4 block 128 40s": {**bytes128, "lm.train.time_budget_s": 40},
        "bytes 64x2 block 128 20s": bytes64x2,
        "bytes 64x4 block 128 20s": {**bytes128, "lm.size": NeoXSize(hidden=64, layers=4, heads=4)},
        "bytes 96x4 block 64 20s": {**bytes128, "lm.block": 64},
        "bytes 96x4 block 128 20s lr 5e-3": {**bytes128, "lm.train.lr": 5e-3},
        "bytes 96x4 block 128 20s lr 1e-2": {**bytes128, "lm.train.lr": 1e-2},
        "bytes 128x4 block 128 30s": {**bytes128, "lm.size": NeoXSize(hidden=128, layers=4, heads=4),
                                      "lm.train.time_budget_s": 30},
        # third round, around the fastest byte model (64 x 2): budget and learning rate
        "bytes 64x2 block 128 10s": {**bytes64x2, "lm.train.time_budget_s": 10},
        "bytes 64x2 block 128 15s": {**bytes64x2, "lm.train.time_budget_s": 15},
        "bytes 64x2 block 128 20s lr 1e-3": {**bytes64x2, "lm.train.lr": 1e-3},
        "bytes 64x2 block 128 20s lr 1e-2": {**bytes64x2, "lm.train.lr": 1e-2},
    }


def main():
    regime_cli(__doc__, lambda: resolve("07_pretraining", "local", quiet=True, overrides={"workers": 2}),
               lambda run: grid(), regime_search, R.regime_table)


if __name__ == "__main__":
    main()
