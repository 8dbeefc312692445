"""Seed 000 from its records (torch-free): per-run rows, the all-26 summary with each variant's verdict against the
original of its model and the share of attention's benefit it keeps, the notes' claims re-tested, the regime-search
table, figures, the conclusion, `report()` for Analysis.ipynb and the README's seed-000 block.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd

from .. import plots
from ..analysis import Report, frame, select
from ..stats import describe, describe_equivalence, equivalence, many_to_one, p_text
from .experiments import EXPERIMENTS, NOTEBOOK_OF, NOTEBOOKS, ORIGINAL, Scale, same_model, stand_in

__all__ = ["NOTEBOOKS", "TITLE", "readme_block", "report"]   # NOTEBOOKS: the family registry reads it here

TITLE = "Pythia low-rank surgery (seed 000, notebooks 01-03)"


def rows(records) -> pd.DataFrame:
    """One row per run record of seed 000 (id, name, seed, losses, tokens/s, params, validation curve)."""
    out = []
    for r in (records.values() if isinstance(records, dict) else records):
        exp_id = int(r["experiment"][3:])
        out.append({"id": exp_id, "name": EXPERIMENTS[exp_id].name, "seed": r["seed"], **r["metrics"],
                    **{f"params.{k}": v for k, v in r["params"].items()}, "curve": r["curves"].get("eval_loss", {}),
                    "peak_mem_mb": r["provenance"].get("peak_mem_mb")})
    return frame(out).sort_values(["id", "seed"]).reset_index(drop=True)


def summarize(df, reference=None, same: dict | None = None) -> pd.DataFrame:
    """Mean +- std over seeds per experiment (and the per-seed losses), with parameters, ratio and delta to the
    original of the same model (experiment 1 or 19), and the share of attention's benefit each 410m variant keeps.
    Every variant faces one control, so the test is many-to-one: Dunnett's test on the variance pooled over the
    control and its variants (df = runs - groups; helpers.stats.many_to_one), each variant's Welch p beside it.
    `reference`: a summary holding experiments this df lacks (the original and no-attention runs of notebook 01).
    `same`: {experiment: N} of experiments that are the same model as N at this scale (rows marked, not measured).

    retained = (loss(no attention) - loss(variant)) / (loss(no attention) - loss(original)): 1 keeps all of what
    attention buys over none, 0 nothing; its s.e. by the delta method from the three arms' standard errors (the
    no-attention arm enters numerator and denominator)."""
    g = df.groupby(["id", "name"], sort=True)
    out = g.agg(params=("params.total", "first"), full_scale=("params.full_scale", "first"),
                loss_mean=("eval_loss", "mean"), loss_std=("eval_loss", "std"), seeds=("seed", "count"),
                tokens_per_s=("tokens_per_s", "mean")).reset_index()
    out["losses"] = out["id"].map(df.groupby("id")["eval_loss"].apply(list))
    for col in ("bigram_ce", "unigram_ce"):
        if col in df.columns:
            out[col] = out["id"].map(df.groupby("id")[col].first())
    if "bigram_ce" in df.columns:       # seeds that learned no more than the previous token (named in the conclusion)
        at = df[df["eval_loss"] >= df["bigram_ce"]]
        out["at_bigram_seeds"] = out["id"].map(at.groupby("id")["seed"].apply(list)).map(
            lambda x: x if isinstance(x, list) else [])
    out["loss_std"] = out["loss_std"].fillna(0.0)
    out["ppl"] = out["loss_mean"].map(lambda x: math.exp(min(x, 50)))
    ref = out.set_index("id")
    if reference is not None:
        extra = reference[~reference["id"].isin(ref.index)].set_index("id")
        ref = pd.concat([ref, extra])
    families = {}                                   # control -> {row index: variant losses}
    for i, row in out.iterrows():
        b = ORIGINAL[EXPERIMENTS[row["id"]].model]
        if b in ref.index:
            out.loc[i, "params_ratio"] = row["params"] / ref.loc[b, "params"]
            if row["id"] != b:
                families.setdefault(b, {})[i] = row["losses"]
    for b, variants in families.items():
        for i, v in zip(variants, many_to_one(variants, ref.loc[b, "losses"])):
            for col, key in (("delta_loss", "diff"), ("delta_se", "se"), ("df", "df"), ("p", "p"),
                             ("p_welch", "p_welch"), ("n_ref", "n_b"), ("verdict", "verdict"), ("m", "m"), ("t", "t"),
                             ("test", "test"), ("levene_p", "levene_p"), ("sd_ratio", "sd_ratio")):
                out.loc[i, col] = v[key]
    if {1, 6} <= set(ref.index):
        for i, row in out.iterrows():
            if EXPERIMENTS[row["id"]].model == "410m":       # the original and no attention: 1 and 0 by definition
                out.loc[i, "retained"], out.loc[i, "retained_se"] = ((1.0, 0.0) if row["id"] == 1 else (0.0, 0.0)
                                                                     if row["id"] == 6 else
                                                                     retained(ref.loc[6], row, ref.loc[1]))
    out["same_as"] = pd.NA
    if same:
        rows = [{"id": i, "name": EXPERIMENTS[i].name, "same_as": n, "seeds": 0} for i, n in sorted(same.items())]
        out = pd.concat([out, pd.DataFrame(rows)], ignore_index=True).sort_values("id").reset_index(drop=True)
    return out


def _se(row) -> float:
    n = int(row["seeds"])
    return float(row["loss_std"]) / math.sqrt(n) if n > 1 else float("nan")


def retained(none, variant, original) -> tuple[float, float]:
    """(share of attention's benefit kept, its delta-method s.e.) from summary rows of no attention, the variant
    and the original: r = (L_none - L_v) / (L_none - L_orig). The variant and original arms are independent runs;
    the no-attention arm is shared by numerator and denominator, which the covariance term accounts for. With one
    seed in any arm the s.e. is NaN."""
    d = float(none["loss_mean"] - original["loss_mean"])
    num = float(none["loss_mean"] - variant["loss_mean"])
    s_n, s_v, s_o = _se(none), _se(variant), _se(original)
    if d == 0 or any(math.isnan(x) for x in (s_n, s_v, s_o)):
        return num / d if d else float("nan"), float("nan")
    # r = N / D with N = Ln - Lv, D = Ln - Lo: Var N = sn^2 + sv^2, Var D = sn^2 + so^2, Cov(N, D) = sn^2
    var = (s_n ** 2 + s_v ** 2) / d ** 2 + num ** 2 * (s_n ** 2 + s_o ** 2) / d ** 4 - 2 * num * s_n ** 2 / d ** 3
    return num / d, math.sqrt(max(var, 0.0))


def mean_curves(df) -> dict:
    """{"<id> <name>": {step: mean validation loss over seeds}} for plotting (curve keys may be JSON strings)."""
    out = {}
    for exp_id, g in df.groupby("id"):
        curves = [{int(k): v for k, v in c.items()} for c in g["curve"]]
        steps = sorted({s for c in curves for s in c})
        out[f"{exp_id} {EXPERIMENTS[exp_id].name[:28]}"] = {
            s: sum(c[s] for c in curves if s in c) / sum(1 for c in curves if s in c) for s in steps}
    return out


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


def scale_of(records: list[dict]) -> Scale:
    """The sizes and rank scaling the records were trained with (enough to find which experiments coincide)."""
    sizes, scale = {"410m": None, "2.8b": None}, True
    for r in records:
        sizes[r["config"]["model"]] = r["config"]["size"]
        scale = r["config"]["scale_ranks"]
    return Scale(sizes=sizes, scale_ranks=scale)


def run_records(records: list[dict]) -> list[dict]:
    """The experiment runs (not the regime search), each from its home notebook."""
    return [r for r in records if str(r["experiment"]).startswith("exp")
            and r["notebook"] == NOTEBOOK_OF.get(int(r["experiment"][3:]))]


def table_from_records(records: list[dict]):
    """The table of every experiment of the records' notebooks (all 26 for notebooks 01-03) from run records: each
    experiment from its home notebook, the ones that are the same model as another at this scale marked."""
    recs = run_records(records)
    if not recs:
        return None
    cfg = scale_of(recs)
    notebooks = {r["notebook"] for r in records}
    same = {i: n for i, n in same_model(cfg).items() if NOTEBOOK_OF[i] in notebooks}
    out = summarize(rows(recs), same=same)
    out["notes_params"] = out["id"].map(lambda i: EXPERIMENTS[i].notes_params)
    out["stand_in"] = out["id"].map(lambda i: stand_in(cfg, EXPERIMENTS[i]))
    return out


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


# ------------------------------------------------------------------------------------------------ figures, report
def _hlines(frame) -> dict:
    """{"bigram": ce, "unigram": ce} from a rows or summary frame that carries the references."""
    out = {}
    for col, label in (("bigram_ce", "bigram table"), ("unigram_ce", "unigram")):
        if col in frame.columns and frame[col].notna().any():
            out[label] = float(frame[col].dropna().iloc[0])
    return out


def curves_figure(df, title: str):
    """Validation loss over steps, mean over seeds, one line per experiment; the bigram/unigram references dashed."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    plots.curves(ax, mean_curves(df), title=title, hlines=_hlines(df))
    return fig


def params_figure(summary, title: str):
    """Final validation loss (mean +- std over seeds) against parameters, with the Pareto frontier and the bigram
    reference."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    measured = summary.dropna(subset=["loss_mean"])
    plots.loss_vs_params(ax, measured, title=title)
    for label, y in _hlines(measured).items():
        ax.axhline(y, ls="--", lw=1, color="grey")
        ax.annotate(label, (ax.get_xlim()[0], y), textcoords="offset points", xytext=(4, 3), fontsize=8,
                    color="grey")
    return fig


TABLE_COLUMNS = ["id", "name", "stand_in", "same_as", "params", "params_ratio", "loss_mean", "loss_std", "seeds",
                 "at_bigram_seeds",
                 "delta_loss", "delta_se", "df", "p", "p_welch", "verdict", "retained", "retained_se", "tokens_per_s",
                 "full_scale", "notes_params"]


def report(records: list[dict]):
    """Analysis.ipynb's section for notebooks 01-03: the regime search, the all-26 table with the bigram reference
    and the retained-benefit column, loss vs parameters, the notes' claims with their verdicts."""
    rep = Report(TITLE, records)
    regime = [r for r in rep.records if r["experiment"] == "regime"]
    if regime:
        rep.table("regime search (benchmarks/surgery_regime.py): where does attention matter on a CPU?",
                  regime_table(regime))
    table = table_from_records(rep.records)
    if table is not None:
        rep.table("all experiments: parameters, validation loss over seeds, delta to the original of the same model "
                  "(Dunnett, pooled variance; Welch p beside), share of attention's benefit kept",
                  table[[c for c in TABLE_COLUMNS if c in table.columns]])
        rep.figure("validation loss vs parameters", params_figure(table, "seed 000: validation loss vs parameters "
                                                                         "(Pareto frontier dashed)"))
        rep.text = conclusion(table) + "\n\nThe notes' claims:\n" + claims(table)
    return rep


# ------------------------------------------------------------------------------------------------ regime search
def regime_table(records: list[dict]):
    """One row per regime point: tokenization, stand-in, training, the two losses, the gap and the references."""
    rows = []
    for r in records:
        c, m = r["config"], r["metrics"]
        size = c["sizes"]["410m"] or {}
        rows.append({"point": r["variant"].removeprefix("regime "), "tokenizer": c["tokenizer"],
                     "layers x width": f"{size.get('layers')} x {size.get('hidden')}", "block": c["block"],
                     "steps x batch": f"{c['train']['max_steps']} x {c['train']['batch_size']}", "lr": c["train"]["lr"],
                     "original": m["original.eval_loss"], "no attention": m["no_attention.eval_loss"],
                     "gap": m["gap"], "bigram": m["bigram_ce"], "unigram": m["unigram_ce"],
                     "wall per run s": (m["original.wall_s"] + m["no_attention.wall_s"]) / 2, "seed": r["seed"]})
    return frame(rows).sort_values("gap", ascending=False).reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ README block
def readme_block(records: list[dict]) -> str:
    """The README's seed-000 results (`python -m helpers readme`), from the records of notebooks 01-03: the regime
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
