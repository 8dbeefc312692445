"""Seed 000's tables from its records (torch-free): one row per run, the all-26 summary with each variant's verdict
against the original of its model (Dunnett's many-to-one test) and the share of attention's benefit it keeps, the
table of every experiment of the records' notebooks, and the regime search's table."""
from __future__ import annotations

import math

import pandas as pd

from ..analysis import frame, ladder
from ..stats import many_to_one
from .experiments import EXPERIMENTS, NOTEBOOK_OF, ORIGINAL, Scale, same_model, stand_in

# The rule that picks the local profile's point from the regime search (issue 39), fixed in code before the search's
# points with the n-gram ladder were run. (Two probes of the original alone, 600 and 900 steps on seed 10, had been
# run before it while building the data option; the search re-runs both as recorded points.)
GATE_ORDER = 3         # the original must end below the trigram table of the text it trained on, on every seed
# on the search's seed: about 3 seed-sds of the original at the old point (0.036 over seeds 0-2), so that the gate
# can hold on each reported seed, not only on the one the rule saw
REGIME_MARGIN = 0.10
REGIME_GAP = 0.3       # attention must still matter there: no attention - original >= 0.3 nats (issue 10's ask)


def rows(records) -> pd.DataFrame:
    """One row per run record of seed 000 (id, name, seed, losses, tokens/s, params, validation curve)."""
    out = []
    for r in (records.values() if isinstance(records, dict) else records):
        exp_id = int(r["experiment"][3:])
        m = r["metrics"]
        out.append({"id": exp_id, "name": EXPERIMENTS[exp_id].name, "seed": r["seed"],
                    **{k: v for k, v in m.items() if not isinstance(v, dict)},       # the ladder: one column a rung
                    **{f"ngram{n}_ce": ce for n, ce in ladder(m).items()},
                    **{f"seen{n}": share for n, share in (m.get("ngram_seen") or {}).items()},
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
    extra = [c for c in df.columns if c.startswith(("ngram", "seen"))] + ["train_tokens_available"]
    for col in ("bigram_ce", "unigram_ce", *extra):
        if col in df.columns:
            out[col] = out["id"].map(df.groupby("id")[col].first())
    if "params.trainable" in df.columns:
        out["trainable"] = out["id"].map(df.groupby("id")["params.trainable"].first())
    # seeds that learned no more than the previous token, and (with the ladder) seeds at or above the gate's rung:
    # named in the conclusion, never averaged in silently
    for col, ref in (("at_bigram_seeds", "bigram_ce"), ("at_gate_seeds", f"ngram{GATE_ORDER}_ce")):
        if ref in df.columns:
            at = df[df["eval_loss"] >= df[ref]]
            out[col] = out["id"].map(at.groupby("id")["seed"].apply(list)).map(
                lambda x: x if isinstance(x, list) else [])
    if f"ngram{GATE_ORDER}_ce" in df.columns:   # the worst seed's margin under the gate (negative: above it)
        worst = df.assign(margin=df[f"ngram{GATE_ORDER}_ce"] - df["eval_loss"]).groupby("id")["margin"].min()
        out["gate_margin_min"] = out["id"].map(worst)
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


# ------------------------------------------------------------------------------------------------ regime search
def regime_choice(records: list[dict]) -> str | None:
    """The point the rule picks: among those whose original ends >= REGIME_MARGIN below the GATE_ORDER-gram table of
    its train text and whose gap is >= REGIME_GAP, the one trained on the fewest tokens (then the fewest
    parameters); None when no point qualifies (points without a ladder never do)."""
    ok = []
    for r in records:
        m, t = r["metrics"], r["config"]["train"]
        rungs = ladder(m)
        if rungs and rungs[GATE_ORDER] - m["original.eval_loss"] >= REGIME_MARGIN and m["gap"] >= REGIME_GAP:
            ok.append((t["max_steps"] * t["batch_size"] * t.get("grad_accum", 1) * r["config"]["block"],
                       m["original.params"], r["variant"]))
    return min(ok)[2].removeprefix("regime ") if ok else None


def regime_table(records: list[dict]):
    """One row per regime point: tokenization, stand-in, training, the two losses, the gap, the references (the
    n-gram ladder of the point's train text where recorded) and which point the rule picks."""
    rows, chosen = [], regime_choice(records)
    for r in records:
        c, m = r["config"], r["metrics"]
        size = c["sizes"]["410m"] or {}
        rungs = ladder(m)
        name = r["variant"].removeprefix("regime ")
        rows.append({"point": name, "tokenizer": c["tokenizer"],
                     "layers x width": f"{size.get('layers')} x {size.get('hidden')}", "block": c["block"],
                     "steps x batch": f"{c['train']['max_steps']} x {c['train']['batch_size']}", "lr": c["train"]["lr"],
                     "eval": "spread" if c.get("spread") else "first blocks",
                     "original": m["original.eval_loss"], "no attention": m["no_attention.eval_loss"],
                     "gap": m["gap"], "bigram": m["bigram_ce"], "trigram": rungs.get(3), "4-gram": rungs.get(4),
                     "below trigram": rungs[3] - m["original.eval_loss"] if rungs else None,
                     "unigram": m["unigram_ce"],
                     "wall per run s": (m["original.wall_s"] + m["no_attention.wall_s"]) / 2, "seed": r["seed"],
                     "chosen": "<- rule" if name == chosen else ""})
    return frame(rows).sort_values("gap", ascending=False).reset_index(drop=True)
