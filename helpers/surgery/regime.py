"""Seed 000's regime search (benchmarks/surgery_regime.py, `make surgery-regime`): the original (1) and no attention (6)
trained under each point's settings on a seed the notebooks never report; the rule that picks a point is
helpers.surgery.summary.regime_choice (torch-free), fixed before the points it judges."""
from __future__ import annotations

import dataclasses
import time

from ..profiles import apply_overrides
from ..sweep import sweep
from .study import LADDER_SETTINGS, SurgeryConfig, check_specs, data, data_sample, references, train_experiment

REGIME_SEED = 10     # the search selects on a seed the notebooks never report (they use 0, 1, 2)


def regime_point(cfg: SurgeryConfig, seed: int = REGIME_SEED, device: str = "cpu") -> dict:
    """One point of the regime search: the original (1) and no attention (6) trained under `cfg`; their final
    validation losses, the gap, the bigram/unigram references and the wall time per run; a record's parts."""
    out, curves = {}, {}
    for exp_id, label in ((1, "original"), (6, "no_attention")):
        t0 = time.time()
        res = train_experiment(exp_id, seed, cfg)
        out[f"{label}.eval_loss"] = res["metrics"]["eval_loss"]
        out[f"{label}.wall_s"] = time.time() - t0
        out[f"{label}.params"] = res["params"]["total"]
        curves[f"{label}.eval_loss"] = res["curves"].get("eval_loss", {})
    out["gap"] = out["no_attention.eval_loss"] - out["original.eval_loss"]
    out.update(references(cfg))
    out["original_below_bigram"] = out["bigram_ce"] - out["original.eval_loss"]
    d = data(cfg)
    out["ngram_ce"] = {str(n): ce for n, ce in d.ladder.items()}
    out["train_tokens_available"] = len(d.train) * cfg.block
    out["original_below_trigram"] = d.ladder[3] - out["original.eval_loss"]
    return {"metrics": out, "curves": curves, "params": {"total": out["original.params"]}}


def _regime_key(cfg: SurgeryConfig, seed: int) -> dict:
    """What a regime point's record id comes from: its settings with the one seed it trains; the settings added with
    the ladder only where set (the points recorded before them keep their ids)."""
    key = dataclasses.asdict(dataclasses.replace(cfg, seeds=(seed,)))
    return {k: v for k, v in key.items() if k not in LADDER_SETTINGS} | data_sample(cfg)


def regime_search(run, points: dict, seed: int = REGIME_SEED, force: bool = False) -> dict:
    """{name: record} for each point {name: dotted overrides of run.cfg} (recorded points are loaded)."""
    for over in points.values():     # a point that cannot build experiment 1 or 6 fails here, before training
        check_specs(apply_overrides(run.cfg, over, "regime point"), (1, 6))
    # keyed by what the point trains (one seed), not by the profile's seed list: a point stays recorded (and is
    # loaded on a rerun) when the notebooks' seeds change
    out = sweep(run, "regime", {f"regime {n}": o for n, o in points.items()}, regime_point, (seed,),
                run.cfg.workers, force, "regimes",
                key=lambda c: _regime_key(c, seed))
    return {n: out[f"regime {n}", seed] for n in points}
