"""Notebook 07's tables that read records alone (torch-free): the generations beside the bigram table's (and the
line that compares their word counts by Fisher's exact test), and the regime search's table."""
from __future__ import annotations

from scipy import stats as st

from ..analysis import frame, one, records_of


def generations_table(sections: dict, data_record):
    """The greedy and sampled continuations of the best run (lowest eval loss) of each section, beside the bigram
    table's own sample, each with the share of its words that occur in the validation split."""
    rows = []
    for name, recs in sections.items():
        recs = records_of(recs)
        if not recs:
            continue
        best = min(recs, key=lambda r: r["metrics"]["eval_loss"])
        for g in best["tables"]["generations"]:
            rows.append({"section": name, "run": f"{best['variant']} s{best['seed']}",
                         "eval_loss": round(best["metrics"]["eval_loss"], 3), "mode": g["mode"],
                         "valid_word_share": g.get("valid_word_share"), "text": g["text"]})
    if data_record:
        g = one(data_record)["tables"]["generations"][0]
        rows.append({"section": "reference", "run": "bigram table of the train split", "eval_loss":
                     round(one(data_record)["metrics"]["bigram_ce"], 3), "mode": g["mode"],
                     "valid_word_share": g["valid_word_share"], "text": g["text"]})
    return frame(rows)


def regime_table(records: list[dict]):
    """One row per regime point: tokenization, model, block, budget, lr; each extreme cell's margin below the bigram
    table, their gap, the steps each reached."""
    rows = []
    for r in records:
        c, m = r["config"], r["metrics"]
        t, size = c["lm"]["train"], c["lm"]["size"]
        rows.append({"point": r["variant"].removeprefix("regime "), "tokenizer": c["lm"]["tokenizer"],
                     "model": f"{size['hidden']}x{size['layers']}", "block": c["lm"]["block"],
                     "budget": f"{t['time_budget_s']:g} s {t.get('budget_clock') or 'wall'}", "lr": t["lr"],
                     "small cell below bigram": m["small.below_bigram"], "large cell below bigram":
                     m["large.below_bigram"], "gap small-large": m["gap"], "bigram": m["bigram_ce"],
                     "small steps": m["small.steps"], "large steps": m["large.steps"], "seed": r["seed"]})
    return frame(rows).sort_values("large cell below bigram", ascending=False).reset_index(drop=True)


def generations_line(recs: dict) -> str:
    """The best runs' sampled words against the bigram table's, as counts with Fisher's exact test (the records hold
    each sample's word count and valid share); '' when the counts are missing (then nothing is compared)."""
    data = recs["data"][0]
    ref_words, ref_share = data["metrics"].get("bigram_sample.words"), data["metrics"].get(
        "bigram_sample.valid_word_share")
    best = [min(records_of(recs[e]), key=lambda r: r["metrics"]["eval_loss"])
            for e in ("grid", "schedules", "lr_range") if records_of(recs.get(e, []))]
    counts = [(r["metrics"].get("sampled.words"), r["metrics"].get("sampled.valid_word_share")) for r in best]
    if not best or ref_words is None or ref_share is None or any(w is None or sh is None for w, sh in counts):
        return ""
    words = sum(w for w, _ in counts)
    valid = sum(round(w * sh) for w, sh in counts)
    ref_valid = round(ref_words * ref_share)
    p = float(st.fisher_exact([[valid, words - valid], [ref_valid, ref_words - ref_valid]]).pvalue)
    return (f"generations: {valid} of {words} complete words of the best runs' sampled continuations ({len(best)} "
            f"sections, {data['config']['quality_samples']} samples each) are words of the validation split, against "
            f"{ref_valid} of {ref_words} for the bigram table's samples (Fisher's exact p = {p:.2g}: "
            f"{'a difference' if p < 0.05 else 'no measurable difference'})")
