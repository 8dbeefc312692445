"""Seed 000 in words, from its summary (torch-free): the conclusion's sentences, every verbal result of the notes
re-tested against the data (`claims`), and docs/results.md's seed-000 block (`readme_block`)."""
from __future__ import annotations

import math

import pandas as pd

from ..analysis import select
from ..stats import describe, describe_equivalence, equivalence, p_text
from .experiments import EXPERIMENTS, ORIGINAL
from .summary import regime_table, run_records, scale_of, table_from_records


# ------------------------------------------------------------------------------------------------ conclusion
def conclusion(summary) -> str:
    """Plain sentences from the measured numbers: each variant against the original of its model by Dunnett's
    many-to-one test over seeds (pooled variance; one seed in an arm is "n = 1: no test"), the variance check, the
    share of attention's benefit it keeps, and the experiments that are the same model as another at this scale."""
    lines = []
    if "bigram_ce" in summary.columns and summary["bigram_ce"].notna().any():
        ref = summary.dropna(subset=["bigram_ce"]).iloc[0]
        lines.append(f"references on the validation split: bigram table {ref['bigram_ce']:.3f}, unigram "
                     f"{ref['unigram_ce']:.3f} nats/token")
        orig = summary[summary["id"] == 1]
        if len(orig) and orig["loss_mean"].notna().all():
            o = orig.iloc[0]
            gap = o["bigram_ce"] - o["loss_mean"]
            lines.append(f"the original (exp 1) ends {abs(gap):.3f} nats {'below' if gap > 0 else 'ABOVE'} the "
                         f"bigram line (loss {o['loss_mean']:.3f} +- {o['loss_std']:.3f}, n = {int(o['seeds'])})"
                         + ("" if gap > 0 else ": it has not learned to use context, so no comparison of attention "
                                               "variants means anything here"))
        failed = _bigram_failures(summary)
        if failed:
            lines.append(failed)
    measured = summary.dropna(subset=["delta_loss"]) if "delta_loss" in summary.columns else None
    if measured is None or not len(measured):
        lines.append("no original to compare with in this profile (run notebook 01 first for experiment 1)")
    else:
        lines += [_line(r) for _, r in measured.sort_values("delta_loss").iterrows()]
        lev = measured.dropna(subset=["levene_p"]) if "levene_p" in measured.columns else measured.iloc[:0]
        if len(lev):
            r = lev.iloc[0]
            unlike = r["levene_p"] < 0.05 or r["sd_ratio"] > 4
            caveat = (f" (the spreads look unlike, and with {int(r['seeds'])} runs an arm the test has little power: "
                      "read each row's Welch p beside Dunnett's)" if unlike else " (no evidence against pooling)")
            lines.append(f"the pooled variance: largest / smallest arm sd {r['sd_ratio']:.1f}, Brown-Forsythe p = "
                         f"{r['levene_p']:.3g}{caveat}")
    if "same_as" in summary.columns:
        for _, r in summary[summary["same_as"].notna()].iterrows():
            lines.append(f"exp {int(r['id']):>2}: same model as exp {int(r['same_as'])} at this scale (after depth "
                         "mapping and rank scaling); not trained again")
    return "\n".join(lines)


def _bigram_failures(summary) -> str:
    """One sentence naming every run that ends at or above the bigram table of its own tokens ('' when none)."""
    if "at_bigram_seeds" not in summary.columns:
        return ""
    bad = [(int(r["id"]), r["at_bigram_seeds"], int(r["seeds"])) for _, r in summary.iterrows()
           if isinstance(r["at_bigram_seeds"], list) and r["at_bigram_seeds"]]
    if not bad:
        return ""
    named = "; ".join(f"exp {i} ({EXPERIMENTS[i].name}) seed{'s' if len(s) > 1 else ''} "
                      f"{', '.join(map(str, s))} of {n}" for i, s, n in bad)
    return (f"runs that end at or above the bigram table of their own tokens, i.e. learned no more than the previous "
            f"token: {named}. Beside an original that learned, that is a finding about the variant, not a place "
            f"in a ranking")


def _line(r) -> str:
    exp = EXPERIMENTS[int(r["id"])]
    row = {"diff": r["delta_loss"], "n_a": int(r["seeds"]), "n_b": int(r["n_ref"]), "test": r["test"],
           "verdict": r["verdict"], "t": _num(r["t"]), "df": _num(r["df"]), "p": _num(r["p"]), "m": int(r["m"])}
    welch_p = _num(r.get("p_welch"))
    kept = ""
    if _num(r.get("retained")) is not None:
        se = _num(r.get("retained_se"))
        kept = f"; keeps {r['retained']:.2f}" + (f" +- {se:.2f}" if se is not None else "") + " of attention's benefit"
    return (f"exp {int(r['id']):>2} ({exp.describe()}): {r['params_ratio']:.2f}x the parameters, loss "
            f"{r['loss_mean']:.3f} +- {r['loss_std']:.3f}, delta {describe(row)}"
            + (f" [Welch p = {welch_p:.3g}]" if welch_p is not None and row["t"] is not None else "") + kept)


def _num(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# ------------------------------------------------------------------------------------------------ the notes' claims
CLAIM_MARGIN = 0.05    # nats: "matched the original" means within +-0.05 of it (stated before the test, issue 28)
CLAIM_TESTS = {
    # claim -> (what the data must show for the claim to hold, in words)
    "matched the original": f"equivalent to the original within +-{CLAIM_MARGIN:g} nats (TOST)",
    "loss much higher": "worse than the original (Dunnett)",
    "loss higher, only ~10M fewer params": "worse than the original (Dunnett)",
}


def claims(summary, margin: float = CLAIM_MARGIN) -> str:
    """Every verbal result of the notes beside its verdict from the data: a claim of a match is tested for
    equivalence (TOST, Welch's df, against +-margin stated before the data): CONSISTENT when equivalent,
    CONTRADICTED when measurably different, UNDECIDED otherwise; a claim of a higher loss holds when the variant is
    worse by the table's Dunnett test. Runs the author marked wrong are reported as run. Only the experiments in
    `summary` are listed."""
    by_id = {int(r["id"]): r for _, r in summary.iterrows()}
    ref = summary.set_index("id")
    out = []
    for exp in EXPERIMENTS.values():
        r = by_id.get(exp.id)
        if not exp.claim or r is None:      # claims of experiments outside this table are another table's
            continue
        if not _isna(r.get("same_as")):
            out.append(f"exp {exp.id}: notes '{exp.claim}' -> same model as exp {int(r['same_as'])} here; see it")
            continue
        if _isna(r.get("verdict")):
            out.append(f"exp {exp.id}: notes '{exp.claim}' -> no original to compare with")
            continue
        if "WRONG" in exp.claim:
            out.append(f"exp {exp.id}: notes '{exp.claim}' -> measured as specified: {_line(r)}")
            continue
        need = CLAIM_TESTS[exp.claim]
        if exp.claim == "matched the original":
            b = ORIGINAL[exp.model]
            eq = equivalence(r["losses"], ref.loc[b, "losses"], margin)
            verdict = {"equivalent": "consistent", "different": "contradicted",
                       "inconclusive": "undecided"}.get(eq["verdict"], "untested")
            measured = describe_equivalence(eq)
        else:
            verdict = ("untested" if r["verdict"] in ("n = 1: no test", "no spread: no test") else
                       "confirmed" if r["verdict"] == "worse" else "not confirmed")
            measured = f"{r['delta_loss']:+.3f}, {r['verdict']} (Dunnett adjusted p = {_fmt(r['p'])}, " \
                       f"n = {int(r['seeds'])} vs {int(r['n_ref'])})"
        out.append(f"exp {exp.id}: notes '{exp.claim}' -> {verdict.upper()} (needs: {need}); measured delta "
                   f"{measured}")
    return "\n".join(out)


def _isna(x) -> bool:
    return x is None or bool(pd.isna(x))


def _fmt(x) -> str:
    return "-" if _isna(x) else f"{x:.3g}"


def _pfmt(x) -> str:
    return "-" if _isna(x) else p_text(x)


# ------------------------------------------------------------------------------------------------ README block
def readme_block(records: list[dict]) -> str:
    """docs/results.md's seed-000 results (`python -m helpers readme`), from the records of notebooks 01-03: the regime
    search, attention's gap over its removal with its standard error, every variant's verdict and retained share, the
    notes' claims with their verdicts."""
    recs, profile = select(records)
    table = table_from_records(recs)
    if table is None:
        return "Seed 000: no records yet (run notebooks 01-03)."
    runs = run_records(recs)
    cfg = scale_of(runs)
    tokenizer = runs[0]["config"]["tokenizer"]
    t = runs[0]["config"]["train"]
    seeds = sorted({r["seed"] for r in runs})
    size = {m: cfg.sizes[m] for m in ("410m", "2.8b")}
    shape = ", ".join(f"{m} -> {s['layers']} x {s['hidden']}" if s else f"{m} real" for m, s in size.items())
    out = [f"**Seed 000** ({profile} profile, {len(table.dropna(subset=['loss_mean']))} distinct models x seeds "
           f"{seeds}; tokenizer {tokenizer}, stand-ins {shape} (layers x width), {t['max_steps']} steps x "
           f"{t['batch_size']} x {runs[0]['config']['block']} tokens, AdamW {t['lr']:g}):", ""]
    regime = [r for r in recs if r["experiment"] == "regime"]
    if regime:
        rt = regime_table(regime)
        best, worst = rt.iloc[0], rt.iloc[-1]
        out.append(f"- Regime search ({len(rt)} points, seed {int(best['seed'])}, `make surgery-regime`): the gap "
                   f"no attention - original runs from {worst['gap']:+.3f} nats ({worst['point']}: "
                   f"{worst['tokenizer']}, {worst['layers x width']}) to {best['gap']:+.3f} ({best['point']}).")
    by = table.set_index("id")
    if {1, 6} <= set(by.index) and not _isna(by.loc[6, "delta_se"]):
        o, n = by.loc[1], by.loc[6]
        out.append(f"- Attention is used: original {o['loss_mean']:.3f} +- {o['loss_std']:.3f}, no attention (6) "
                   f"{n['loss_mean']:.3f} +- {n['loss_std']:.3f}: gap {n['delta_loss']:.3f} nats, s.e. "
                   f"{n['delta_se']:.3f} ({n['delta_loss'] / n['delta_se']:.0f} s.e.; pooled df {n['df']:.0f}, n = "
                   f"{int(n['seeds'])} vs {int(n['n_ref'])}). Bigram table of the same tokens {o['bigram_ce']:.3f}, "
                   f"unigram {o['unigram_ce']:.3f}: the original ends {abs(o['bigram_ce'] - o['loss_mean']):.3f} "
                   f"nats {'below' if o['bigram_ce'] > o['loss_mean'] else 'above'} the bigram line.")
    failed = _bigram_failures(table)
    if failed:
        out.append(f"- {failed[0].upper()}{failed[1:]}.")
    measured = table.dropna(subset=["delta_loss"])
    counts = measured["verdict"].value_counts().to_dict()
    m = int(measured["m"].iloc[0]) if len(measured) else 0
    lev = measured.dropna(subset=["levene_p"])
    check = (f"; arm sds within {lev['sd_ratio'].iloc[0]:.1f}x, Brown-Forsythe p = {lev['levene_p'].iloc[0]:.2g}"
             if len(lev) else "")
    df_txt = f", pooled df {int(measured['df'].dropna().iloc[0])}" if measured["df"].notna().any() else ""
    out.append(f"- Each variant vs the original of its model (Dunnett's many-to-one test over seeds, {m} variants"
               f"{df_txt}{check}): " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ". retained = share "
               "of attention's benefit kept, (L6 - L) / (L6 - L1), +- delta-method s.e.")
    out += ["", "| exp | on the stand-in | loss | delta | Dunnett p | Welch p | verdict | retained |",
            "|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        if not _isna(r["same_as"]):
            out.append(f"| {int(r['id'])} | {r['stand_in']} | same model as {int(r['same_as'])} | | | | | |")
            continue
        kept = "" if _isna(r.get("retained")) else f"{r['retained']:.2f}" + (
            "" if _isna(r.get("retained_se")) or r["id"] in (1, 6) else f" +- {r['retained_se']:.2f}")
        delta = "" if _isna(r.get("delta_loss")) else f"{r['delta_loss']:+.3f}"
        out.append(f"| {int(r['id'])} | {r['stand_in']} | {r['loss_mean']:.3f} +- {r['loss_std']:.3f} | {delta} | "
                   f"{_pfmt(r.get('p'))} | {_fmt(r.get('p_welch'))} | "
                   f"{'' if _isna(r.get('verdict')) else r['verdict']} | {kept} |")
    out += ["", "The notes' claims, re-tested here:", ""]
    out += [f"- {line}" for line in claims(table).splitlines()]
    return "\n".join(out)
