"""Notebook 00 from its records (torch-free): corpus and fertility tables, the pretrained reference on held-out
text, the from-scratch GPT-NeoX against its unigram and bigram references, and `report()` for Analysis.ipynb."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .. import plots
from ..analysis import Report, by_experiment, frame, one

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


def _references(metrics: dict) -> dict:
    """{label: cross-entropy} of the trivial references a record holds (older records: the unigram only)."""
    return {label: metrics[key] for key, label in (("unigram_ce", "unigram cross-entropy"),
                                                    ("bigram_ce", "bigram table")) if metrics.get(key) is not None}


def pretrain_table(pretrain) -> pd.DataFrame:
    rec = one(pretrain)
    keys = ("steps", "tokens", "eval_loss", "test_loss", "unigram_ce", "bigram_ce", "tokens_per_s", "train_time_s",
            "stopped_by_budget")
    row = {"status": rec["status"], **{k: rec["metrics"].get(k) for k in keys}}
    if "bigram_ce" not in rec["metrics"]:          # records made before the bigram reference
        row.pop("bigram_ce")
    return pd.Series(row).to_frame(rec["variant"])


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
                         + (", so it uses more context than the previous token." if gap > 0 else
                            ": it has not learned more than a bigram table at this budget."))
    if reference is not None:
        ref = one(reference)
        model = ref["config"]["ref_model"]
        for r in ref["tables"]["heldout"]:
            lines.append(f"{model} on held-out {r['corpus']}: {r['bits_per_char']:.3f} bits/char, loss "
                         f"{r['loss']:.3f} (ppl {r['ppl']:.1f}) over {r['tokens']} tokens")
    return "\n".join(lines)


def report(records: list[dict]) -> Report:
    """Analysis.ipynb's section for notebook 00 (and the notebook's last cell), from records only."""
    rep = Report(TITLE, records)
    recs = {e: rs[0] for e, rs in by_experiment(rep.records).items()}
    if "corpora" in recs:
        rep.table("corpora per split", corpus_table(recs["corpora"]))
        rep.table("fertility on the test split (tokens per word)", fertility_table(recs["corpora"]))
    if "reference" in recs:
        rep.table("pretrained reference on held-out text", reference_table(recs["reference"]))
    if "pretrain" in recs:
        rep.table("from-scratch GPT-NeoX", pretrain_table(recs["pretrain"]))
        rep.figure("from-scratch GPT-NeoX: curves", pretrain_figure(recs["pretrain"]))
    rep.text = conclusion(recs.get("reference"), recs.get("pretrain"))
    return rep
