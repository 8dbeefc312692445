"""Regime search for seed 000 on 2 CPU cores (issue 10): which tokenization, stand-in shape and training let the
original model use attention, measurably, within about a minute of one core per run?

Every point trains the original (experiment 1) and no attention (experiment 6) from scratch with one seed
(helpers.surgery.regime.REGIME_SEED, never one the notebooks report), two points side by side, and records the two
validation losses, their gap, and the bigram/unigram references of the point's tokenization (tables of the train
split scored on the validation split). Records go to results/01_attention_lowrank/regime-*; Analysis.ipynb shows
them. The chosen point becomes the local profile of notebooks 01-03 (helpers.surgery.study.PROFILES["local"]).

    python benchmarks/surgery_regime.py                    # the grid below (make surgery-regime)
    python benchmarks/surgery_regime.py --only "bytes 6x96" "bytes 4x96"
"""
from __future__ import annotations

from helpers.profiles import settings
from helpers.surgery import experiments as SE
from helpers.surgery import regime as SG
from helpers.surgery import study as S
from helpers.surgery import summary as SR
from helpers.sweep import regime_cli


def size(layers: int, hidden: int, heads: int = 4) -> dict:
    """The 410m stand-in at this shape; the 2.8b stand-in (not trained here) 4/3 as deep, as in the profile."""
    return {"410m": {"hidden": hidden, "layers": layers, "heads": heads},
            "2.8b": {"hidden": hidden, "layers": min(32, round(layers * 4 / 3)), "heads": heads}}


def grid() -> dict:
    """The old local point (Pythia's depth at width 32, BPE-2048), the same shape on bytes, and shallow-wide byte
    stand-ins around 6 layers x 96 (depth, width, steps, block, learning rate one at a time); then (issue 39) the
    same stand-ins with spread evaluation and train text seen once, at 300-900 steps."""
    # every point pins what the search ran with, not what the local profile (its base) says today: the profile moved
    # to the search's pick (spread evaluation, train_tokens, eval every 100 steps), and a point that followed it
    # would be another experiment under the same name, retrained instead of loaded
    pinned = {"spread": False, "train_tokens": None, "train.eval_every": 50}
    bytes6 = {**pinned, "tokenizer": "bytes", "sizes": size(6, 96), "block": 64, "train.max_steps": 300,
              "train.lr": 5e-3}
    return {
        "bpe-2048 24x32 (old local)": {**pinned, "tokenizer": "en-bpe-2048", "sizes": size(24, 32, 2),
                                       "train.max_steps": 200, "train.lr": 4e-3, "eval_blocks": 128},
        "bytes 24x32": {**bytes6, "sizes": size(24, 32, 2)},
        "bytes 6x96": bytes6,
        "bytes 6x96 200 steps": {**bytes6, "train.max_steps": 200},
        "bytes 6x96 lr 3e-3": {**bytes6, "train.lr": 3e-3},
        "bytes 6x96 block 128": {**bytes6, "block": 128, "train.max_steps": 150},
        "bytes 4x96": {**bytes6, "sizes": size(4, 96)},
        "bytes 6x64": {**bytes6, "sizes": size(6, 64)},
        "bytes 4x128": {**bytes6, "sizes": size(4, 128)},
        # issue 39: evaluation blocks spread over every validation document, train blocks spread over the train
        # split and seen once each (train_tokens = steps x batch x block), so each point's n-gram ladder is built from
        # the text its runs saw; the rule (helpers.surgery.summary.regime_choice) needs the original >= 0.10 below
        # that text's trigram table, with a gap >= 0.3
        **{name: {**bytes6, "spread": True, "train_tokens": over.get("train.max_steps", 300) * 16 * 64, **over}
           for name, over in {
               "spread 6x96 300": {},
               "spread 6x96 600": {"train.max_steps": 600},
               "spread 6x96 900": {"train.max_steps": 900},
               "spread 6x96 600 lr 1e-2": {"train.max_steps": 600, "train.lr": 1e-2},
               "spread 4x128 600": {"train.max_steps": 600, "sizes": size(4, 128)},
           }.items()},
    }


def main():
    regime_cli(__doc__, lambda: settings(SE.NB_ATTENTION, S.PROFILES, "local", quiet=True, overrides={"workers": 2}),
               lambda run: grid(), SG.regime_search, SR.regime_table)


if __name__ == "__main__":
    main()
