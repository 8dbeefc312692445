"""Seed 000 from its records (torch-free): the figures (validation curves, loss vs parameters) and `report()` for
Analysis.ipynb, from the tables of helpers.surgery.summary and the words of helpers.surgery.claims; re-exports what
notebooks 01-03 and the family registry read here (docs/results.md's seed-000 block among them).
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from .. import plots
from ..analysis import Report
from .claims import claims, conclusion, readme_block
from .experiments import NOTEBOOKS
from .summary import mean_curves, regime_table, rows, table_from_records

# NOTEBOOKS, TITLE, readme_block, report: the family registry and docs/results.md; the rest: notebooks 01-03's cells
__all__ = ["NOTEBOOKS", "TITLE", "readme_block", "report", "rows", "table_from_records", "curves_figure",
           "params_figure"]

TITLE = "Pythia low-rank surgery (seed 000, notebooks 01-03)"


# ------------------------------------------------------------------------------------------------ figures, report
def _hlines(frame) -> dict:
    """{label: ce} of the references a rows or summary frame carries: the bigram table, the unigram and, where the
    records hold the n-gram ladder, its 3- and 4-gram tables (the gate's rung and the one above)."""
    out = {}
    for col, label in (("bigram_ce", "bigram table"), ("unigram_ce", "unigram"), ("ngram3_ce", "3-gram table"),
                       ("ngram4_ce", "4-gram table")):
        if col in frame.columns and frame[col].notna().any():
            out[label] = float(frame[col].dropna().iloc[0])
    return out


def curves_figure(df, title: str):
    """Validation loss over steps, mean over seeds, one line per experiment; the references dashed (bigram, unigram
    and the ladder's 3- and 4-gram tables where recorded)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    plots.curves(ax, mean_curves(df), title=title, hlines=_hlines(df))
    return fig


def params_figure(summary, title: str):
    """Final validation loss (mean +- std over seeds) against parameters, with the Pareto frontier and the references
    (bigram, unigram, the ladder's 3- and 4-gram tables where recorded)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    measured = summary.dropna(subset=["loss_mean"])
    plots.loss_vs_params(ax, measured, title=title)
    for label, y in _hlines(measured).items():
        ax.axhline(y, ls="--", lw=1, color="grey")
        ax.annotate(label, (ax.get_xlim()[0], y), textcoords="offset points", xytext=(4, 3), fontsize=8,
                    color="grey")
    return fig


TABLE_COLUMNS = ["id", "name", "stand_in", "same_as", "params", "params_ratio", "loss_mean", "loss_std", "seeds",
                 "at_bigram_seeds", "at_gate_seeds", "gate_margin_min",
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
