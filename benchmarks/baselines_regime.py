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

from helpers.baselines import report as R
from helpers.baselines import study as S
from helpers.profiles import settings
from helpers.sweep import regime_cli

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
    records = regime_cli(__doc__, lambda: settings(NOTEBOOK, S.PROFILES, "local", quiet=True), lambda run: grid(),
                         S.regime_search, R.regime_table)
    print("chosen:", R.regime_choice(list(records.values())))


if __name__ == "__main__":
    main()
