"""Notebook 05 from its records (torch-free): the figures (error vs k with bootstrap bands, error vs inference loops,
training curves), the training table, the conclusion and `report()` for Analysis.ipynb and the notebook's last cell.
The numbers they show (the gate, escape rates, Welch and TOST, ratios, drift, options, tasks, the regime search) are
helpers.looped.verdicts', re-exported here for the notebook's `R.` calls."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .. import plots
from ..analysis import Report, by_experiment, frame, one, records_of
from .verdicts import (
    GATE,
    K_LABELS,
    baselines_table,
    by_arm,
    cost_table,
    drift,
    errors_of,
    escape_table,
    gate_table,
    loops_rows,
    options_rows,
    ratio_rows,
    regime_table,
    tasks_rows,
    verdict_line,
)

# read by the family registry (TITLE, report), helpers.looped.study (K_LABELS) and notebook 05's cells
__all__ = ["TITLE", "report", "K_LABELS", "frame", "baselines_table", "gate_table", "escape_table", "verdict_line",
           "cost_table", "ratio_rows", "loops_rows", "options_rows", "tasks_rows", "regime_table", "bands_figure",
           "loops_figure", "training_figure", "training_table"]

NOTEBOOK = "05_looped_transformer"
TITLE = "Looped transformer, in-context learning (seed 002)"


# ------------------------------------------------------------------------------------------------ figures, tables
def bands_figure(headline, base):
    """Error against k: both arms (90% bootstrap band over training seeds and prompts) and the baselines."""
    series = {}
    for arm, rs in by_arm(headline).items():
        mean, lo, hi = _band(np.stack([errors_of(r) for r in rs]))
        series[f"{arm} ({len(rs)} seeds)"] = {"mean": mean, "lo": lo, "hi": hi}
    b = one(base)
    for name in ("least_squares", "averaging", "3-nn"):
        if f"errors.{name}" in b["tables"]:
            mean, lo, hi = _band(errors_of(b, f"errors.{name}")[None])
            series[name] = {"mean": mean, "lo": lo, "hi": hi}
    fig, ax = plt.subplots(figsize=(7, 4))
    plots.bands(ax, series, title=f"error vs k, d = {b['metrics']['d']} ({b['profile']})")
    ax.set_ylim(0, 1.6)          # averaging and 3-nn run far above 1 at small k
    return fig


def _band(errors: np.ndarray, n_boot: int = 500, level: float = 0.90, seed: int = 0):
    rng = np.random.default_rng(seed)
    S, P, _ = errors.shape
    boots = np.empty((n_boot, errors.shape[2]))
    for i in range(n_boot):
        boots[i] = errors[rng.integers(0, S, S)][:, rng.integers(0, P, P)].mean((0, 1))
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    return errors.mean((0, 1)).tolist(), lo.tolist(), hi.tolist()


def drift_words(d: dict) -> str:
    """The drift verdict: the sign count ("rises in m of n seeds", per-seed ratios) and the log-ratio t-test; "the
    error drifts up" only where that test says so, "no drift is shown" where it does not, whatever the sign count."""
    n, up, p = len(d["far.per_seed"]), d["far.rises"], d["far.log_p"]
    seeds = ", ".join(f"{x:.2f}" for x in d["far.per_seed"])
    test = "log-ratio t-test: no spread" if p is None else f"log-ratio t-test p = {p:.2g}"
    if p is not None and p < 0.05:
        verdict = "the error drifts up past the trained loops" if up > n / 2 else \
            "the error keeps falling past the trained loops"
    else:
        verdict = f"no drift is shown at n = {n}, and none is excluded"
    return f"the error rises in {up} of {n} seeds (ratios {seeds}; {test}): {verdict}"


def loops_figure(headline):
    rows = loops_rows(headline)
    series = {c: {r["loops"]: r[c] for r in rows} for c in rows[0] if c != "loops"}
    trained = by_arm(headline)["looped"][0]["metrics"]["trained_loops"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    plots.curves(ax, series, title=f"looped model: error at k = 2d, trained with b = {trained} loops",
                 ylabel="error", xlabel="inference loops")
    ax.axvline(trained, color="grey", ls=":")
    ax.set_xscale("log")
    return fig


def training_figure(headline):
    fig, ax = plt.subplots(figsize=(7, 4))
    plots.curves(ax, {f"{r['experiment']} s{r['seed']}": r["curves"]["train_loss"] for r in records_of(headline)},
                 title="training loss (normalized MSE)", ylabel="loss")
    return fig


def training_table(headline):
    return frame([{"run": f"{r['experiment']} s{r['seed']}", "params": r["params"]["total"],
                   **{k: r["metrics"][k] for k in ("steps", "wall_s", "steps_per_s", "err.k=d", "err.k=2d")}}
                  for r in records_of(headline)], "run")



# ------------------------------------------------------------------------------------------------ conclusion
def _fisher(p) -> str:
    return " (Fisher p: one arm has no runs: no test)" if p is None or p != p else f" (Fisher p = {p:.3g})"


def conclusion(recs: dict, margin: float) -> str:
    """Sentences from the records; every target says met or missed."""
    base = recs["baselines"][0]
    headline = recs.get("looped", []) + recs.get("standard", [])
    lines = []
    if headline:
        gates = gate_table(headline, base)
        failed = gates[gates["gate (< 1/3)"] == "FAIL"]
        lines.append(f"gate (every seed of both arms below 1/3 of averaging's error at k = 2d, "
                     f"{base['metrics']['averaging.k=2d']:.3f} on the same {base['metrics']['test_prompts']} prompts): "
                     f"{'met' if failed.empty else 'MISSED'}: {len(gates) - len(failed)} of {len(gates)} runs pass"
                     + ("" if failed.empty else "; failing: " + ", ".join(f"{r.arm} s{r.seed}"
                                                                          for r in failed.itertuples())))
        esc = escape_table(headline, base, recs.get("regime", []))
        lines.append("left the predict-zero plateau: " + "; ".join(
            f"{arm} {r['reported escaped']} reported, {r['tuning escaped']} tuning seeds" for arm, r in esc.iterrows())
            + _fisher(esc.iloc[0]["Fisher p (looped vs standard)"]))
        lines.append(verdict_line(headline, margin) if recs.get("looped") and recs.get("standard") else
                     "looped vs standard: an arm has no runs: no test")
        cost = cost_table(headline)
        lines.append("cost per prediction: " + "; ".join(
            f"{arm} {int(r['params']):,} parameters, {r['forward FLOPs per prediction']:.3g} forward FLOPs"
            for arm, r in cost.iterrows()))
        for r in ratio_rows(headline, base):
            if r["comparison"] == "looped / averaging":
                met = ("met" if r["hi"] <= GATE else "met on the mean, not by the interval" if r["ratio"] <= GATE
                       else "missed")
                lines.append(f"looped / averaging at k = 2d: {r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] (95% "
                             f"bootstrap over {r['seeds']} seeds and {r['prompts']} prompts): target <= 1/3 {met}")
        d = drift(headline)
        if d:
            txt = (f"loop stability: error at {d['far']} inference loops / at the trained {d['trained']}: "
                   f"{d['far.ratio']:.2f} [{d['far.lo']:.2f}, {d['far.hi']:.2f}] (95% t interval over seeds)")
            if d.get("paper"):
                txt += (f"; at the paper's {d['paper']}: {d['paper.ratio']:.2f} [{d['paper.lo']:.2f}, "
                        f"{d['paper.hi']:.2f}]")
            lines.append(txt + "; " + drift_words(d))
    if recs.get("options"):
        for r in options_rows(recs["options"], base):
            lines.append(f"option {r['option']}: {r['error k=2d']:.3f}" + (f" +- {r['sd']:.3f}" if r["sd"] else "")
                         + f" (n={r['seeds']}; {r['seeds below it']} below the best trivial reference "
                         f"{r['best trivial reference']:.3f}); " + (r["vs plain"] or "the reference arm"))
    for r in tasks_rows(recs.get("tasks", []) + recs.get("task_baselines", [])):
        lines.append(f"task {r['task']}: looped {r['looped k=2d']:.3f} (n={r['seeds']}) against zero "
                     f"{r.get('zero', float('nan')):.3f}, 3-NN {r.get('3-nn', float('nan')):.3f}"
                     + (f", averaging {r['averaging']:.3f}" if "averaging" in r else "")
                     + f"; {'learned' if r['learned'] else 'not learned at this budget'} ("
                     f"{r['seeds below best trivial']} of {r['seeds']} seeds below the best of them); structural "
                     f"baseline {r['structural']} ("
                     + ("worse than predicting zero: no bar, not compared" if r["structural worse than zero"] else
                        "beaten" if r["beats structural"] else "not beaten") + ")")
    return "\n".join(lines)


def report(records: list[dict]) -> Report:
    """Analysis.ipynb's section for notebook 05 (and the notebook's last cell), from records only."""
    rep = Report(TITLE, records)
    recs = by_experiment(rep.records)
    base = recs.get("baselines", [None])[0]
    headline = recs.get("looped", []) + recs.get("standard", [])
    if recs.get("regime"):
        rep.table("regime search (benchmarks/looped_regime.py; tuning seeds, validation prompts)",
                  regime_table(recs["regime"], headline[0]["config"] if headline else None))
    if base is not None and headline:
        rep.figure("error vs k", bands_figure(headline, base))
        rep.table("the gate: every run at k = 2d", gate_table(headline, base))
        rep.table("escape from the predict-zero plateau", escape_table(headline, base, recs.get("regime", [])))
        rep.table("cost per prediction", cost_table(headline))
        rep.table("ratios at k = 2d (95% bootstrap over seeds and prompts)", frame(ratio_rows(headline, base),
                                                                                   "comparison"))
        rep.table("looped vs standard: training", training_table(headline))
        if loops_rows(headline):
            rep.figure("error vs inference loops", loops_figure(headline))
            rep.table("error at k = 2d against inference loops", frame(loops_rows(headline), "loops"))
        if recs.get("options"):
            rep.table("the seed's options (gated against the trivial references)",
                      frame(options_rows(recs["options"], base), "option"))
        rep.text = conclusion(recs, base["config"]["parity_margin"])
    if recs.get("tasks"):
        rep.table("other tasks against their references", frame(tasks_rows(recs["tasks"] +
                                                                            recs.get("task_baselines", [])), "task"))
    return rep
