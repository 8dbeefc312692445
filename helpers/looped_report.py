"""Notebook 05 from its records (torch-free): the lr search, error against k with its bands and ratios, training,
error against inference loops, the options and tasks, the regime search, the conclusion and `report()` for
Analysis.ipynb."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import plots
from .analysis import Report, by_experiment, frame, one
from .stats import describe, verdicts, welch

NOTEBOOK = "05_looped_transformer"
TITLE = "Looped transformer, in-context learning (seed 002)"
K_LABELS = ("k=d", "k=2d")


def rows_from_records(records: list[dict], extra_cols: tuple = ("steps", "steps_per_s")) -> list[dict]:
    """Per-seed records of one experiment -> one row per variant: mean and sd over seeds of err.k=d / err.k=2d."""

    by = {}
    for r in records:
        by.setdefault(r["variant"], []).append(r)
    rows = []
    for variant, recs in by.items():
        row = {"model": variant, "seeds": len(recs)}
        for label in K_LABELS:
            vals = [r["metrics"].get(f"err.{label}") for r in recs if r["metrics"].get(f"err.{label}") is not None]
            if vals:
                row[label] = float(np.mean(vals))
                row[f"{label} sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        for c in extra_cols:
            row[c] = float(np.mean([r["metrics"][c] for r in recs]))
        row["params"] = recs[0]["params"].get("total")
        rows.append(row)
    return rows




def at_k_table(base: dict):
    """The baselines record's table: error at k = d and 2d per model (mean and sd over seeds)."""
    base = one(base)
    return frame(base["tables"]["at_k"], "model")


def ratios_table(base: dict):
    base = one(base)
    return frame(base["tables"].get("ratios_k2d", []), "comparison")


def training_table(records: dict):
    """Section 2's runs: parameters, steps, wall time, steps/s per (model, seed)."""
    return frame([{"run": f"{r['experiment']} s{r['seed']}", "params": r["params"]["total"],
                   **{k: r["metrics"][k] for k in ("steps", "wall_s", "steps_per_s")}} for r in records.values()],
                 "run")


def training_figure(records: dict):
    fig, ax = plt.subplots(figsize=(7, 4))
    plots.curves(ax, {f"{r['experiment']} s{r['seed']}": r["curves"]["train_loss"] for r in records.values()},
                 title="training loss (normalized MSE)", ylabel="loss")
    return fig


def bands_from_curves(curves: dict) -> dict:
    """A baselines record's curves {name, name.lo, name.hi: {k: value}} -> plots.bands series, ordered by k."""
    def ordered(c):
        return [v for _, v in sorted(c.items(), key=lambda kv: int(kv[0]))]

    return {n: {"mean": ordered(c), "lo": ordered(curves.get(f"{n}.lo", c)), "hi": ordered(curves.get(f"{n}.hi", c))}
            for n, c in curves.items() if "." not in n}


def bands_figure(base: dict):
    base = one(base)
    seeds = next((r["seeds"] for r in base["tables"]["at_k"] if r["model"] == "looped"), "?")
    fig, ax = plt.subplots(figsize=(7, 4))
    plots.bands(ax, bands_from_curves(base["curves"]),
                title=f"error vs k, d = {base['metrics']['d']} ({base['profile']}, {seeds} seeds)")
    ax.set_ylim(0, 1.6)  # averaging and 3-nn run far above 1 at small k
    return fig


def loops_figure(loops: dict):
    loops = one(loops)
    rows = loops["tables"]["loops"]
    series = {c: {r["loops"]: r[c] for r in rows} for c in rows[0] if c != "loops"}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    plots.curves(ax, series, title=f"error at k = {loops['metrics']['k']}, trained with b = "
                 f"{loops['metrics']['trained_loops']} loops", ylabel="error", xlabel="inference loops")
    ax.set_xscale("log")
    return fig


def options_table(records: dict):
    return frame(rows_from_records(list(records.values())), "model")


def tasks_table(records: dict):
    rows = [{"task": t, **row} for t, r in records.items() for row in r["tables"]["at_k"]]
    return frame(rows, ["task", "model"])


def regime_table(records: list[dict]):
    cols = ["d", "steps", "steps_per_s", "looped.k=d", "looped.k=2d", "averaging.k=2d", "ratio_to_averaging.k=2d"]
    rows = [{"point": r["variant"].removeprefix("regime "), **{c: r["metrics"].get(c) for c in cols},
             "params": r["params"].get("total"), "seed": r["seed"]} for r in records]   # one training seed each
    return frame(rows, "point").sort_values(["d", "ratio_to_averaging.k=2d"]) if rows else frame(rows)


def tuning_table(tune_records: dict):
    """Section 1's search: per (arm, lr), the validation error at k = d and 2d over the tuning seeds (mean, sd, n,
    each seed's value), the chosen lr (lowest mean at k = 2d) marked. Runs cut by the safety budget are counted
    apart and never chosen."""

    groups = {}
    for r in tune_records.values():
        groups.setdefault((r["variant"].split()[1], r["metrics"]["lr"]), []).append(r)
    rows = []
    for (arm, lr), recs in sorted(groups.items()):
        ok = sorted((r for r in recs if r["status"] == "ok" and r["metrics"].get("err.k=2d") is not None),
                    key=lambda r: r["seed"])
        e2 = [r["metrics"]["err.k=2d"] for r in ok]
        rows.append({"arm": arm, "lr": lr, "seeds": len(ok), "cut": len(recs) - len(ok),
                     "val k=d": float(np.mean([r["metrics"]["err.k=d"] for r in ok])) if ok else None,
                     "val k=2d": float(np.mean(e2)) if ok else None,
                     "val k=2d sd": float(np.std(e2, ddof=1)) if len(e2) > 1 else None,
                     "per seed k=2d": ", ".join(f"s{r['seed']} {e:.3f}" for r, e in zip(ok, e2))})
    best = {}
    for row in rows:
        if row["val k=2d"] is not None and row["val k=2d"] < best.get(row["arm"], 1e300):
            best[row["arm"]] = row["val k=2d"]
    for row in rows:
        row["chosen"] = row["val k=2d"] is not None and row["val k=2d"] == best.get(row["arm"])
    return frame(rows, "arm")


def ratio_line(r: dict) -> str:
    return (f"{r['ratio']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] ({r['level']:.0%} bootstrap over {r['seeds']} seeds "
            f"and {r['prompts']} prompts)")


def conclusion(base: dict, loops: dict, option_records: dict, tune_records: dict | None = None) -> str:
    """Sentences from the records: the lr search, the targets at k = 2d, the fixed-point behaviour, the options."""
    base, loops = one(base), one(loops)
    rows = {r["model"]: r for r in base["tables"]["at_k"]}
    ratios = {r["comparison"]: r for r in base["tables"].get("ratios_k2d", [])}
    d = base["metrics"]["d"]

    def cell(row, col="k=2d"):
        sd = row.get(f"{col} sd")
        return f"{row[col]:.3f}" + (f" +- {sd:.3f}" if sd is not None else "")

    lines = []
    if tune_records:
        t = tuning_table(tune_records).reset_index().to_dict("records")
        chosen = {r["arm"]: r for r in t if r["chosen"]}
        seeds = sorted({r["metrics"]["val_seed"] for r in tune_records.values()})
        grid = ", ".join(f"{v:g}" for v in sorted({r["lr"] for r in t}))
        picks = ", ".join(f"{a} {c['lr']:g} (mean validation k = 2d error {c['val k=2d']:.3f} over {c['seeds']} "
                          f"seeds: {c['per seed k=2d']})" for a, c in chosen.items())
        lines.append(f"learning rate, the same search for both arms ({grid}; each run with every tuning seed, scored "
                     f"on validation prompts drawn with seed {', '.join(map(str, seeds))}, not the test set's): "
                     f"{picks}")
    if {"looped", "standard", "averaging"} <= set(rows):
        av = rows["averaging"]["k=2d"]
        expected = rows.get("averaging, expected (d+1)/k", {}).get("k=2d")
        lines.append(f"at k = 2d = {2 * d} on the same {base['metrics']['test_prompts']} test prompts (mean +- sd "
                     f"over {rows['looped']['seeds']} training seeds): looped {cell(rows['looped'])}, standard "
                     f"{cell(rows['standard'])}, averaging {av:.3f}"
                     + (f" (expected (d+1)/k = {expected:.3f})" if expected is not None else "")
                     + f", least squares {rows['least_squares']['k=2d']:.3g}")
        if "looped / averaging" in ratios:
            vs_expected = (f"; against averaging's expected value {rows['looped']['k=2d'] / expected:.3f}"
                           if expected else "")
            lines.append("looped / averaging at k = 2d: " + ratio_line(ratios["looped / averaging"])
                         + "; target <= 1/3" + vs_expected)
        lines.append("looped - standard at k = 2d: " + describe(verdicts([_welch_row(rows["looped"],
                                                                                   rows["standard"])])[0]))
    by_loops = {r["loops"]: r["mean"] for r in loops["tables"]["loops"]}
    last = by_loops[max(by_loops)]
    lines.append("error at k = 2d against inference loops: " + ", ".join(f"{b}: {v:.3f}" for b, v in by_loops.items())
                 + (" (stable past the trained loops)" if last <= 1.5 * min(by_loops.values()) + 1e-3
                    else " (drifts away: no stable fixed point)"))
    opts = {r["model"]: r for r in rows_from_records(list(option_records.values()))}
    names = [n for n in opts if n != "plain"] if "plain" in opts else []
    # each option against plain, Holm-corrected over the options; one training seed per option is no test
    for name, v in zip(names, verdicts([_welch_row(opts[n], opts["plain"]) for n in names])):
        lines.append(f"option {name}: k = 2d error {cell(opts[name])} vs plain {cell(opts['plain'])}: "
                     f"{describe(v)}")
    return "\n".join(lines)


def _welch_row(a: dict, b: dict, col: str = "k=2d"):
    """Welch comparison of two seed_rows rows at a column (sd None = one seed)."""
    return welch(a[col], a.get(f"{col} sd") or 0.0, a["seeds"], b[col], b.get(f"{col} sd") or 0.0, b["seeds"])


def report(records: list[dict]):
    """Analysis.ipynb's section for notebook 05, from records only (no torch)."""

    rep = Report(TITLE, records)
    recs = by_experiment(rep.records)
    base, loops = recs.get("baselines", [None])[0], recs.get("loops", [None])[0]
    tuned = {(r["variant"], r["seed"]): r for r in recs.get("tune", [])}
    pair = {(r["experiment"], r["seed"]): r for e in ("looped", "standard") for r in recs.get(e, [])}
    opts = {(r["variant"], r["seed"]): r for r in recs.get("options", [])}
    if tuned:
        rep.table("learning-rate search, both arms, validation prompts", tuning_table(tuned))
    if base is not None:
        rep.figure("error vs k", bands_figure(base))
        rep.table("error at k = d and 2d (mean and sd over seeds)", at_k_table(base))
        if base["tables"].get("ratios_k2d"):
            rep.table("ratios at k = 2d (95% bootstrap over seeds and prompts)", ratios_table(base))
    if pair:
        rep.table("looped vs standard: training", training_table(pair))
    if loops is not None:
        rep.figure("error vs inference loops", loops_figure(loops))
    if opts:
        rep.table("the seed's options, same steps", options_table(opts))
    if recs.get("tasks"):
        rep.table("other tasks against their baselines", tasks_table({r["variant"]: r for r in recs["tasks"]}))
    if recs.get("regime"):
        budgets = sorted({b for r in recs["regime"]
                          if (b := r.get("config", {}).get("train", {}).get("time_budget_s")) is not None})
        trained = f"trained {', '.join(f'{b:g} s' for b in budgets)} each, " if budgets else ""
        rep.table(f"regime search (benchmarks/looped_regime.py; n = 1 training seed per point, {trained}scored on "
                  "the test prompts' seed)", regime_table(recs["regime"]))
    if base is not None and loops is not None:
        rep.text = conclusion(base, loops, opts, tuned)
    return rep
