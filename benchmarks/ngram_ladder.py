"""The n-gram ladder of the from-scratch families' local data: interpolated 2- to 5-gram references
(helpers.pretrain.ngram_ladder, Witten-Bell) of each tokenization, scored on the validation blocks the runs are
scored on, built from the whole train split and from the first train tokens a run of a given budget sees.

The groundwork of issue 39 (gates one rung above the bigram): this prints the rungs a model must clear; it trains
nothing and writes nothing.

    python benchmarks/ngram_ladder.py [--profile local]
"""
from __future__ import annotations

import argparse
import time

from helpers.pretrain import bigram_cross_entropy, head, ngram_ladder
from helpers.pretraining import config as PC
from helpers.pretraining.data import check_inputs
from helpers.surgery import study as SS


def rows(name: str, d, seen_tokens: dict) -> None:
    """Print the ladder of data d from the whole train split and from the first blocks of each budget."""
    budgets = {"whole train split": None, **seen_tokens}
    for label, tokens in budgets.items():
        train = d.train if tokens is None else head(d.train, -(-tokens // d.block))
        t0 = time.time()
        ladder = ngram_ladder(train, d.val, d.vocab)
        jm = bigram_cross_entropy(train, d.val, d.vocab)
        print(f"{name:<10} {label:<28} {len(train) * d.block:>10,} tokens  bigram(0.8) {jm:.4f}  "
              + "  ".join(f"{n}-gram {v:.4f}" for n, v in ladder.items()) + f"  ({time.time() - t0:.1f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="local")
    args = ap.parse_args()
    cfg = PC.PROFILES[args.profile]
    d = check_inputs(cfg)
    # 675 steps: about what the 4 x 2 cell reached in its equal-CPU-time budget in the records issue 39 recomputed
    # (the 691,200 tokens it names); the equal-tokens budget is the profile's own
    four_by_two = 4 * 2 * cfg.lm.block * 675
    rows("07", d, {"4 x 2 x 675 steps": four_by_two, "equal tokens": cfg.equal_tokens})
    s = SS.PROFILES[args.profile]
    t = s.train
    rows("01-03", SS.data(s), {f"{t.batch_size} x {t.max_steps} steps": t.batch_size * t.max_steps * s.block})


if __name__ == "__main__":
    main()
