"""Notebook 00 from its records (torch-free): corpus and fertility tables, the pretrained reference on held-out
text, the from-scratch GPT-NeoX against its unigram and bigram references, and `report()` for Analysis.ipynb."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .. import plots
from ..analysis import Report, by_experiment, frame, ladder, one

NOTEBOOK = "00_data_and_baselines"
TITLE = "Data, tokenizers and baselines"


def corpus_table(corpora) -> pd.DataFrame:
    return frame(one(corpora)["tables"]["splits"])


def fertility_table(corpora) -> pd.DataFrame:
    """Tokens per whitespace word on the held-out test split (lower = the tokenizer fits the language better)."""
    stats = corpus_table(corpora)
    fert = stats[stats.split == "test"].set_index("corpus").filter(like="fertility")
    fert.columns = [c[len("fertility["):-1] for c in fert.columns]
    return fert


def reference_table(reference) -> pd.DataFrame:
    return frame(one(reference)["tables"]["heldout"], "corpus")


# The from-scratch model's gate, set by issue 39 and in code since 2026-12-07: it must end below the interpolated
# n-gram table of this order built from the same train tokens and scored on the same validation blocks (a model that
# does not has learned no more than that table holds). Not a rule fixed before its data: the committed run (same
# config and seed) had been scored when it was written. One training seed: a property of the run, no interval.
GATE_ORDER = 3
GATE_FIXED = "2026-12-07"


# The regime search's selection rule, fixed here on 2026-12-07 before the search ran (benchmarks/baselines_regime.py):
# the point that trains on the fewest tokens among those whose validation loss ends at least REGIME_MARGIN nats below
# the GATE_ORDER-gram table of its own tokens, on the search's seed; seed 0 at that point (the notebook's run) is
# data the rule never saw.
REGIME_MARGIN = 0.05


def below_gate(metrics: dict) -> float | None:
    """How far the model's validation loss ends below the GATE_ORDER-gram table of its tokens (negative: above;
    None in records before the ladder)."""
    rungs = ladder(metrics)
    return rungs[GATE_ORDER] - metrics["eval_loss"] if rungs else None


def _references(metrics: dict) -> dict:
    """{label: cross-entropy} of the references a record holds: unigram, the bigram table and the ladder's 3- to
    5-gram (older records: fewer)."""
    refs = {label: metrics[key] for key, label in (("unigram_ce", "unigram cross-entropy"),
                                                   ("bigram_ce", "bigram table")) if metrics.get(key) is not None}
    refs.update({f"{n}-gram table": ce for n, ce in ladder(metrics).items() if n > 2})
    return refs


def pretrain_table(pretrain) -> pd.DataFrame:
    rec = one(pretrain)
    keys = ("steps", "tokens", "eval_loss", "test_loss", "unigram_ce", "bigram_ce", "tokens_per_s", "train_time_s",
            "stopped_by_budget")
    row = {"status": rec["status"], **{k: rec["metrics"].get(k) for k in keys}}
    if "bigram_ce" not in rec["metrics"]:          # records made before the bigram reference
        row.pop("bigram_ce")
    row.update({f"{n}-gram_ce": ce for n, ce in ladder(rec["metrics"]).items() if n > 2})
    return pd.Series(row).to_frame(rec["variant"])


def ladder_lines(m: dict) -> list[str]:
    """Where the model's validation loss sits against the n-gram ladder of its tokens, and the gate (met or
    missed). A higher order is not always a stronger table: on few tokens its counts are sparse, so the text names
    the strongest rung (the lowest cross-entropy) beside the gate's."""
    rungs = ladder(m)
    if not rungs:
        return []
    loss = m["eval_loss"]
    best = min(rungs, key=rungs.get)
    gap = rungs[best] - loss
    gate = rungs[GATE_ORDER]
    return [f"n-gram ladder of the same tokens (Witten-Bell tables of the {m['train_tokens_available']:,} train "
            f"tokens, scored on the validation blocks): " + ", ".join(f"{n}-gram {ce:.3f}" for n, ce in rungs.items())
            + f"; the strongest is the {best}-gram, and the model ({loss:.3f}) ends {abs(gap):.3f} nats "
            + ("below it." if gap > 0 else "ABOVE it: it has learned less than that table holds."),
            f"gate (issue 39, in code since {GATE_FIXED}: below the {GATE_ORDER}-gram table of its tokens): "
            f"{'met' if loss < gate else 'MISSED'}, the model ends {abs(gate - loss):.3f} nats "
            f"{'below' if loss < gate else 'at or above'} it; one training seed (n = 1: no interval over seeds)."]


def pretrain_figure(pretrain):
    rec = one(pretrain)
    size = rec["config"]["lm"]["size"]
    fig, ax = plt.subplots(figsize=(7, 4))
    plots.curves(ax, {"train": rec["curves"]["train_loss"], "validation": rec["curves"]["eval_loss"]},
                 title=f"GPT-NeoX {size['hidden']}x{size['layers']} on {rec['config']['lm']['corpus']} "
                       f"({rec['profile']})", hlines=_references(rec["metrics"]))
    return fig


def conclusion(reference, pretrain) -> str:
    lines = []
    if pretrain is not None:
        m = one(pretrain)["metrics"]
        lines.append(f"from scratch: validation loss {m['eval_loss']:.3f} vs unigram cross-entropy "
                     f"{m['unigram_ce']:.3f} "
                     f"({m['unigram_ce'] - m['eval_loss']:+.3f} nats below it) after {m['steps']} steps / "
                     f"{m['tokens']:,} tokens at {m['tokens_per_s']:,.0f} tokens/s; test loss {m['test_loss']:.3f}"
                     + (" (stopped by the time budget)" if m.get("stopped_by_budget") else "") + ".")
        if m.get("bigram_ce") is not None:
            gap = m["bigram_ce"] - m["eval_loss"]
            lines.append(f"against the bigram table of the same tokens ({m['bigram_ce']:.3f}): the model ends "
                         f"{abs(gap):.3f} nats {'below' if gap > 0 else 'ABOVE'} it"
                         + ("." if gap > 0 else ": it has not learned more than a bigram table at this budget."))
        lines += ladder_lines(m)
    if reference is not None:
        ref = one(reference)
        model = ref["config"]["ref_model"]
        for r in ref["tables"]["heldout"]:
            lines.append(f"{model} on held-out {r['corpus']}: {r['bits_per_char']:.3f} bits/char, loss "
                         f"{r['loss']:.3f} (ppl {r['ppl']:.1f}) over {r['tokens']} tokens")
    return "\n".join(lines)


def regime_table(regime) -> pd.DataFrame:
    """The regime search (experiment "regime"): each point's tokens, shape, lr, loss and its margin below the gate's
    rung of its own tokens (positive: below), the strongest rung, and which point the rule chose."""
    recs = sorted(regime, key=lambda r: (r["metrics"]["tokens"], r["variant"]))
    chosen = regime_choice(recs)
    rows = []
    for r in recs:
        m, lm = r["metrics"], r["config"]["lm"]
        rungs = ladder(m)
        rows.append({"point": r["variant"].removeprefix("regime "), "tokenizer": lm["tokenizer"],
                     "size": f"{lm['size']['hidden']} x {lm['size']['layers']}", "lr": lm["train"]["lr"],
                     "steps": m["steps"], "tokens": m["tokens"], "eval_loss": m["eval_loss"],
                     f"{GATE_ORDER}-gram": rungs[GATE_ORDER], "below gate": below_gate(m),
                     "strongest rung": min(rungs, key=rungs.get), "train_time_s": m["train_time_s"],
                     "chosen": r["variant"] == chosen})
    return frame(rows, "point")


def regime_choice(regime) -> str | None:
    """The variant REGIME_MARGIN's rule picks (None: no point clears it)."""
    ok = [r for r in regime if (b := below_gate(r["metrics"])) is not None and b >= REGIME_MARGIN]
    return min(ok, key=lambda r: (r["metrics"]["tokens"], r["variant"]))["variant"] if ok else None


def headline(records: list[dict]) -> str:
    """README's one line for notebook 00: the from-scratch model against the gate's rung of its n-gram ladder (met
    or missed), or the first line of the conclusion where the record predates the ladder."""
    recs = by_experiment(records)
    if "pretrain" not in recs:
        return "no from-scratch record yet"
    m = one(recs["pretrain"])["metrics"]
    rungs = ladder(m)
    if not rungs:
        return conclusion(None, recs["pretrain"]).splitlines()[0]
    gate, loss = rungs[GATE_ORDER], m["eval_loss"]
    return (f"From scratch (one seed): validation loss {loss:.3f}, {abs(gate - loss):.3f} nats "
            f"{'below' if loss < gate else 'above'} the {GATE_ORDER}-gram table of its tokens ({gate:.3f}; gate: "
            f"{'met' if loss < gate else 'missed'}); bigram table {m['bigram_ce']:.3f}, unigram {m['unigram_ce']:.3f}.")


def report(records: list[dict]) -> Report:
    """Analysis.ipynb's section for notebook 00 (and the notebook's last cell), from records only."""
    rep = Report(TITLE, records)
    groups = by_experiment(rep.records)
    recs = {e: rs[0] for e, rs in groups.items()}
    if "corpora" in recs:
        rep.table("corpora per split", corpus_table(recs["corpora"]))
        rep.table("fertility on the test split (tokens per word)", fertility_table(recs["corpora"]))
    if "reference" in recs:
        rep.table("pretrained reference on held-out text", reference_table(recs["reference"]))
    if "regime" in groups:
        rep.table(f"regime search (seed {recs['regime']['seed']}; chosen: the fewest tokens at least "
                  f"{REGIME_MARGIN} nats below the {GATE_ORDER}-gram)", regime_table(groups["regime"]))
    if "pretrain" in recs:
        rep.table("from-scratch GPT-NeoX", pretrain_table(recs["pretrain"]))
        rep.figure("from-scratch GPT-NeoX: curves", pretrain_figure(recs["pretrain"]))
    rep.text = conclusion(recs.get("reference"), recs.get("pretrain"))
    if "regime" in groups:
        rep.text += ("\n" if rep.text else "") + regime_line(groups["regime"])
    return rep


def regime_line(regime) -> str:
    """The regime search in one sentence: the rule, and the point it chose or that none met it."""
    chosen = regime_choice(regime)
    rule = (f"regime search ({len(regime)} points, seed {regime[0]['seed']}; the rule, fixed before it ran: the "
            f"fewest training tokens at least {REGIME_MARGIN} nats below the {GATE_ORDER}-gram table of its tokens)")
    if chosen is None:
        return rule + ": no point met it."
    m = next(r["metrics"] for r in regime if r["variant"] == chosen)
    return (rule + f": chose '{chosen.removeprefix('regime ')}' ({m['tokens']:,} tokens, {m['eval_loss']:.3f}, "
            f"{below_gate(m):.3f} nats below its {GATE_ORDER}-gram).")
