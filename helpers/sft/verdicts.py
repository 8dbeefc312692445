"""Notebook 06's DPO verdicts from records (torch-free): preference before and after against the SFT model
(McNemar), the change of log p(chosen), the answer loss and F1 against SFT (paired), and the four criteria fixed
before the runs they judge (SUCCESS), per run and seed."""
from __future__ import annotations

import numpy as np

from ..analysis import one, records_of
from ..stats import mcnemar, paired_bootstrap

# What makes a DPO run a success (issue 38; fixed here before the DPO runs that will be judged by it), on its own
# training seed, against the SFT model it started from; a run that meets the preference and misses another is
# "displacement": its preference rose because its own answers fell, not because it got better.
SUCCESS = {
    "points": 10.0,               # held-out preference >= +10 points over SFT ...
    "mcnemar_p": 0.05,            # ... with McNemar p < 0.05 ...
    "min_pairs": 300,             # ... on >= 300 held-out pairs
    "median_chosen_change": 0.0,  # no displacement: the median change of log p(chosen) >= 0
    "answer_loss": 0.3,           # held-out answer loss <= SFT's + 0.3 nats
    "f1": -0.02,                  # paired definition F1 >= SFT's - 0.02
}


def paired(a: dict, b: dict) -> dict:
    """Held-out answer-loss difference b - a on the same rows, with a paired bootstrap 95% interval over the rows
    (one training run each: an interval over evaluation rows, not over training)."""
    def rows(r):
        t = r["tables"]["test_rows"]
        return {"seq_loss_sum": [x["loss_sum"] for x in t], "seq_tokens": [x["tokens"] for x in t]}

    return paired_bootstrap(rows(a), rows(b))


def f1_paired(a: dict, b: dict, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean definition F1 of b minus a over the same generation prompts, with a paired bootstrap 95% interval."""
    fa = np.array([x["f1"] for x in a["tables"]["answers"]])
    fb = np.array([x["f1"] for x in b["tables"]["answers"]])
    d = fb - fa
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    lo, hi = np.quantile(d[idx].mean(1), [0.025, 0.975])
    return {"delta": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": len(d)}


def correct(rec: dict, name: str) -> np.ndarray:
    """Per pair of set `name`: does the model give the chosen answer the higher log-probability?"""
    t = rec["tables"][f"logps.{name}"] if f"logps.{name}" in rec["tables"] else rec["tables"][f"ref.{name}"]
    return np.array([x["chosen"] > x["rejected"] for x in t])


def _last(curve: dict):
    return curve[max(curve, key=int)] if curve else None


def chosen_change(rec: dict, pairs_record) -> np.ndarray:
    """Per held-out pair: log p(chosen) under the DPO model minus under the SFT reference (nats); negative where the
    answer the model was taught to prefer became less likely."""
    ref = np.array([x["chosen"] for x in one(pairs_record)["tables"]["ref.heldout"]])
    return np.array([x["chosen"] for x in rec["tables"]["logps.heldout"]]) - ref


def success(row: dict) -> dict:
    """{criterion: met} for one dpo_rows row under SUCCESS, and its label: "success" (all four), "displacement" (the
    preference met, another missed), "no preference gain" (the preference missed)."""
    met = {"preference": row["points"] >= SUCCESS["points"] and row["McNemar p"] < SUCCESS["mcnemar_p"]
           and row["pairs"] >= SUCCESS["min_pairs"],
           "no displacement": row["median chosen change"] >= SUCCESS["median_chosen_change"],
           "answer loss": row["answer loss - SFT"] <= SUCCESS["answer_loss"],
           "F1": row["F1 - SFT"] >= SUCCESS["f1"]}
    label = "success" if all(met.values()) else "displacement" if met["preference"] else "no preference gain"
    return {**met, "label": label}


def dpo_rows(dpo_records, pairs_record, sft_record) -> list[dict]:
    """One row per DPO run (loss, seed) against the SFT model on the held-out pairs: likelihood accuracy before and
    after with McNemar's test, implicit-reward accuracy, the final training loss, log p(chosen)'s change (median, and
    on how many pairs it fell), the answer-loss change (paired over rows), F1 against SFT (paired over prompts), the
    hard case, answer length and repeats; then the four SUCCESS criteria, each met or not, and the run's label."""
    pr = one(pairs_record)
    before = correct(pr, "heldout")
    rows = []
    for r in sorted(records_of(dpo_records), key=lambda r: (r["variant"], r["seed"])):
        after = correct(r, "heldout")
        m = mcnemar(before, after)
        loss = paired(sft_record, r)
        moved = chosen_change(r, pairs_record)
        f1 = f1_paired(sft_record, r)
        rows.append({"loss": r["variant"], "seed": r["seed"], "final train loss": _last(r["curves"]["train_loss"]),
                     "held-out acc SFT": m["before"], "held-out acc DPO": m["after"], "points": 100 * m["diff"],
                     "gained": m["gained"], "lost": m["lost"], "McNemar p": m["p"], "pairs": m["n"],
                     "reward acc": _last(r["curves"].get("heldout_reward_acc", {})),
                     "answer loss - SFT": loss["delta"], "lo": loss["lo"], "hi": loss["hi"],
                     "hard acc SFT": sft_record["metrics"].get("hard.likelihood_acc"),
                     "hard acc DPO": r["metrics"].get("hard.likelihood_acc"), "F1": r["metrics"].get("f1"),
                     "words": r["metrics"].get("words"), "repeat rate": r["metrics"].get("repeat_rate"),
                     "median chosen change": float(np.median(moved)), "chosen fell": int((moved < 0).sum()),
                     "F1 - SFT": f1["delta"], "F1 lo": f1["lo"], "F1 hi": f1["hi"]})
        rows[-1].update(success(rows[-1]))
    return rows


def success_line(rs: list[dict], loss: str) -> str:
    """One DPO loss's runs against the four criteria, per seed, each met or missed, with the figures and the label."""
    def one_seed(r):
        return (f"s{r['seed']} {r['label'].upper()}: preference {r['points']:+.1f} points (McNemar p = "
                f"{r['McNemar p']:.2g}, {r['pairs']} pairs; >= +{SUCCESS['points']:g} with p < "
                f"{SUCCESS['mcnemar_p']:g}: {_met(r['preference'])}); log p(chosen) median "
                f"{r['median chosen change']:+.2f} nats, fell on {r['chosen fell']} of {r['pairs']} (>= 0: "
                f"{_met(r['no displacement'])}); answer loss "
                f"{r['answer loss - SFT']:+.3f} (<= +{SUCCESS['answer_loss']:g}: {_met(r['answer loss'])}); F1 "
                f"{r['F1 - SFT']:+.3f} [{r['F1 lo']:+.3f}, {r['F1 hi']:+.3f}] (>= {SUCCESS['f1']:+g}: {_met(r['F1'])})")
    return (f"f. DPO ({loss}) against the SFT model it started from, the four criteria fixed before the runs they "
            f"judge: " + "; ".join(one_seed(r) for r in rs) + ".")

def _met(ok: bool) -> str:
    return "met" if ok else "missed"
