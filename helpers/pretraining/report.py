"""Notebook 07 from its records (torch-free): the gate (every run below the bigram table of its tokens), the noise of
the budget (reruns), the batch x accumulation grid at equal time and at equal tokens with its verdicts (identical
computations merged; Dunnett against the base cell; every pair of cells by Tukey's HSD on the pooled variance),
schedules and the learning-rate range over seeds, generations beside the bigram table's (Fisher's exact test on the
word counts), the regime search, the conclusion and `report()` for Analysis.ipynb.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from .. import plots
from ..analysis import Report, by_experiment, frame, records_of
from ..stats import all_pairs, describe, many_to_one
from .tables import generations_line, generations_table, regime_table

NOTEBOOK = "07_pretraining"
TITLE = "Pretraining a small Russian LM under a fixed budget (seed 003)"
SEED_BEST_CELL = (6, 6)          # the seed's best batch x accumulation at its scale (REFERENCE.md section 4)
# two cells with the same sequences per optimizer step whose every seed ends within this of the other's are one
# computation counted twice (at equal tokens 4 x 4 and 8 x 2 sum the same gradients: equal to ~1e-6), merged before
# any test; cells that merely score alike differ by far more than this
SAME_COMPUTATION_NATS = 1e-4
RUN_SECTIONS = ("grid", "rerun", "grid_tokens", "schedules", "lr_range")


# ------------------------------------------------------------------------------------------------ runs
def _cell(name: str) -> tuple[int, int]:
    b, a = name.split(" x ")
    return int(b), int(a)


def run_table(records, extra: tuple = ()):
    """One row per run: what it trained (CPU and wall seconds, steps, tokens, what stopped it) and what it scored."""
    cols = ("steps", "tokens", "train_cpu_s", "train_time_s", "stopped_by", "eval_loss", "below_bigram",
            "bits_per_char", *extra)
    rows = [{"run": r["variant"], "seed": r["seed"], **{c: r["metrics"].get(c) for c in cols}}
            for r in records_of(records)]
    return frame(rows, ["run", "seed"])


def arm_stats(records) -> dict:
    """{variant: {"mean", "sd", "n", "losses", "tokens", "steps"}} over the seeds of each arm."""
    by = {}
    for r in records_of(records):
        by.setdefault(r["variant"], []).append({**r["metrics"], "_seed": r["seed"]})
    return {v: {"mean": float(np.mean([m["eval_loss"] for m in ms])),
                "by_seed": {m["_seed"]: m["eval_loss"] for m in ms},
                "sd": float(np.std([m["eval_loss"] for m in ms], ddof=1)) if len(ms) > 1 else None,
                "n": len(ms), "losses": [m["eval_loss"] for m in ms],
                "tokens": float(np.mean([m["tokens"] for m in ms])), "steps": float(np.mean([m["steps"] for m in ms]))}
            for v, ms in by.items()}


def references(records) -> dict:
    m = records_of(records)[0]["metrics"]
    return {"unigram": m["unigram_ce"], "bigram": m["bigram_ce"]}


# ------------------------------------------------------------------------------------------------ the gate
def diverged(rec: dict) -> bool:
    """A run whose eval loss is not finite or is above the unigram cross-entropy of its tokens has learned less than
    ignoring context: it diverged."""
    loss = rec["metrics"].get("eval_loss")
    return loss is None or not math.isfinite(loss) or loss > rec["metrics"]["unigram_ce"]


def gate_table(records: list[dict], gate: float):
    """Every run against the gate: its margin below the bigram table of its tokens, pass / FAIL. The rule for the lr
    range (stated in code): the lrs from the first one above the best that diverged on a seed (`diverged`: its loss
    not finite or above the unigram) upwards are there to show divergence, and are exempt; an lr that is only worse
    is judged like every other run."""
    lr_recs = [r for r in records if r["experiment"] == "lr_range"]
    stop = first_diverged(lr_rows(lr_recs, [r for r in records if r["experiment"] == "schedules"])) \
        if lr_recs else None
    rows = []
    for r in sorted(records, key=lambda r: (RUN_SECTIONS.index(r["experiment"]), r["variant"], r["seed"])):
        m = r["metrics"]
        exempt = stop is not None and r["experiment"] == "lr_range" and r["config"]["lm"]["train"]["lr"] >= stop
        rows.append({"section": r["experiment"], "run": r["variant"], "seed": r["seed"], "eval_loss": m["eval_loss"],
                     "bigram": m["bigram_ce"], "below_bigram": m["below_bigram"],
                     "gate": "exempt (lr diverged)" if exempt else "pass" if m["below_bigram"] >= gate
                     else "FAIL"})
    return frame(rows)


# ------------------------------------------------------------------------------------------------ verdicts
def merge_same(cs: dict, keep: str | None = None) -> tuple[dict, dict]:
    """({cell: stats} with every group of identical computations kept once, {merged cell: the cell kept}): cells with
    the same sequences per step (batch x accumulation) whose losses agree within SAME_COMPUTATION_NATS on every seed
    they share (and that share all their seeds). `keep` (the control) is kept where it is one of a group; otherwise
    the cell with the larger per-device batch."""
    kept, same = {}, {}
    for c in sorted(cs, key=lambda c: (c != keep, -_cell(c)[0])):
        b, a = _cell(c)
        twin = next((k for k in kept if _cell(k)[0] * _cell(k)[1] == b * a
                     and kept[k]["by_seed"].keys() == cs[c]["by_seed"].keys()
                     and all(abs(kept[k]["by_seed"][s] - x) <= SAME_COMPUTATION_NATS
                             for s, x in cs[c]["by_seed"].items())), None)
        if twin is None:
            kept[c] = cs[c]
        else:
            same[c] = twin
    return kept, same


def grid_verdict(records, control: str) -> dict:
    """The grid's verdicts over training seeds, identical computations merged first (merge_same): every cell against
    the control (the profile's base cell, declared before the data) by Dunnett's many-to-one test, and every pair of
    cells at once by Tukey's HSD on the pooled variance (the best and the worst are picked after the fact: any pair
    could have been); "best_worst" is that pair's row."""
    cs, same = merge_same(arm_stats(records), control)
    rows = many_to_one({c: s["losses"] for c, s in cs.items() if c != control}, cs[control]["losses"]) \
        if control in cs else []
    best, worst = min(cs, key=lambda c: cs[c]["mean"]), max(cs, key=lambda c: cs[c]["mean"])
    pairs = all_pairs({c: cs[c]["losses"] for c in sorted(cs, key=_cell)})
    bw = next((r for r in pairs if {r["a"], r["b"]} == {best, worst}), None)
    return {"control": control, "vs_control": rows, "best": best, "worst": worst,
            "gap": cs[worst]["mean"] - cs[best]["mean"], "best_worst": bw, "pairs": pairs, "same": same,
            "stats": cs, "n_max": max(s["n"] for s in cs.values())}


def rerun_noise(grid_records, rerun_records, base: str) -> dict:
    """The base cell's seed-0 runs (its grid run and the reruns): identical configuration and seed, so their spread
    is the noise of the budget alone."""
    same = [r for r in records_of(grid_records) if r["variant"] == base and r["seed"] == 0] + records_of(rerun_records)
    losses = [r["metrics"]["eval_loss"] for r in same]
    steps = [r["metrics"]["steps"] for r in same]
    return {"n": len(losses), "losses": losses, "steps": steps,
            "sd": float(np.std(losses, ddof=1)) if len(losses) > 1 else None,
            "range": max(losses) - min(losses) if losses else None}


def indicative(v: dict) -> str:
    """' (n = 2 an arm: indicative)' where no arm has more than two seeds, else ''."""
    return f" (n = {v['n_max']} an arm: indicative)" if v["n_max"] <= 2 else ""


def _pairs_line(v: dict) -> str:
    """Best vs worst cell and how many pairs differ, all by one Tukey HSD; the merged identical computations."""
    bw, pairs = v["best_worst"], v["pairs"]
    merged = "".join(f"; {c} is the same computation as {k} (every seed within {SAME_COMPUTATION_NATS:g}), merged"
                     for c, k in sorted(v["same"].items()))
    if bw is None or bw["p"] is None:
        return f"best vs worst: {bw['verdict'] if bw else 'one cell'}" + merged
    differ = sum(r["p"] is not None and r["p"] < 0.05 for r in pairs)
    return (f"best {v['best']} vs worst {v['worst']}: {v['gap']:.3f} nats (Tukey HSD over all {bw['m']} pairs of "
            f"cells on the pooled variance, df = {bw['df']}: p = {bw['p']:.3g}, "
            f"{'a difference' if bw['p'] < 0.05 else 'no measurable difference'}); {differ} of {bw['m']} pairs "
            f"differ at p < 0.05{indicative(v)}" + merged)


def _control_line(v: dict) -> str:
    rows = v["vs_control"]
    better = [r["name"] for r in rows if r["verdict"] == "better"]
    worse = [r["name"] for r in rows if r["verdict"] == "worse"]
    tested = [r for r in rows if r.get("test") == "Dunnett"]
    if not tested:
        return f"against the control {v['control']}: " + (rows[0]["verdict"] if rows else "no other arm")
    r0 = tested[0]
    check = "" if r0["levene_p"] is None else (
        f", Brown-Forsythe p = {r0['levene_p']:.2g}"
        + ("; variances differ, so read each cell's Welch p beside it" if r0["levene_p"] < 0.05 else ""))
    return (f"against the control {v['control']} (Dunnett, pooled df = {r0['df']:.0f}, {len(tested)} comparisons"
            f"{check}): better {', '.join(better) or 'none'}; worse {', '.join(worse) or 'none'}; the rest no "
            f"measurable difference{indicative(v)}")


# ------------------------------------------------------------------------------------------------ figures
def grid_figure(records, title: str = "eval loss at equal budget"):
    """Heatmap of eval loss (mean +- sd over seeds, n) per batch x accumulation cell, with tokens and steps."""
    cs = arm_stats(records)
    batches = sorted({_cell(c)[0] for c in cs})
    accums = sorted({_cell(c)[1] for c in cs})
    data = np.full((len(batches), len(accums)), np.nan)
    fig, ax = plt.subplots(figsize=(1.8 * len(accums) + 2, 1.2 * len(batches) + 1.5))
    for c, s in cs.items():
        i, j = batches.index(_cell(c)[0]), accums.index(_cell(c)[1])
        data[i, j] = s["mean"]
        ax.text(j, i, f"{s['mean']:.3f}" + (f" ±{s['sd']:.3f}" if s["sd"] is not None else "") + f" (n={s['n']})"
                + f"\n{s['tokens'] / 1e3:.0f}k tok, {s['steps']:.0f} steps", ha="center", va="center", fontsize=7,
                color="white")
    im = ax.imshow(data, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(accums)), [str(a) for a in accums])
    ax.set_yticks(range(len(batches)), [str(b) for b in batches])
    ax.set(xlabel="gradient accumulation", ylabel="per-device batch", title=title)
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig


def schedules_figure(records):
    """Learning rate and training loss against step for every schedule (seed 0), the references dashed."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    recs = [r for r in records_of(records) if r["seed"] == min(x["seed"] for x in records_of(records))]
    refs = references(records)
    plots.curves(a1, {r["variant"]: r["curves"]["lr"] for r in recs}, title="learning rate", ylabel="lr")
    plots.curves(a2, {r["variant"]: r["curves"]["train_loss"] for r in recs}, title="training loss",
                 hlines={"unigram": refs["unigram"], "bigram": refs["bigram"]})
    fig.tight_layout()
    return fig


def lr_rows(lr_records, base_records) -> list[dict]:
    """The lr range over seeds: the range's own runs and the constant+warmup schedule at the profile's lr."""
    recs = records_of(lr_records) + [r for r in records_of(base_records) if r["variant"] == "constant+warmup"]
    by = {}
    for r in recs:
        by.setdefault(r["config"]["lm"]["train"]["lr"], []).append(r)
    return [{"lr": lr, "mean": float(np.mean([r["metrics"]["eval_loss"] for r in rs])),
             "sd": float(np.std([r["metrics"]["eval_loss"] for r in rs], ddof=1)) if len(rs) > 1 else None,
             "n": len(rs), "diverged": sum(diverged(r) for r in rs), "steps": rs[0]["metrics"]["steps"]}
            for lr, rs in sorted(by.items())]


def first_diverged(rows: list[dict]) -> float | None:
    """The smallest lr above the best one (by mean) whose loss diverged on a seed (`diverged`: not finite, or above
    the unigram cross-entropy); None when none did. An lr that only ends worse has not diverged."""
    ok = [r for r in rows if math.isfinite(r["mean"])]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["mean"])
    return next((r["lr"] for r in rows if r["lr"] > best["lr"] and (r["diverged"] or not math.isfinite(r["mean"]))),
                None)


def lr_table(lr_records, schedule_records):
    """The lr range over seeds (lr_rows) as a table."""
    return frame(lr_rows(lr_records, schedule_records))


def lr_figure(lr_records, schedule_records):
    """Eval loss (mean +- sd over seeds) against the peak lr, the references and the first lr that diverged."""
    rows = lr_rows(lr_records, schedule_records)
    refs = references(schedule_records or lr_records)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.errorbar([r["lr"] for r in rows], [r["mean"] for r in rows], yerr=[r["sd"] or 0 for r in rows], marker="o",
                capsize=3, label="eval loss (mean +- sd over seeds)")
    for label, y in (("unigram", refs["unigram"]), ("bigram", refs["bigram"])):
        ax.axhline(y, ls="--", lw=1, color="grey")
        ax.annotate(label, (rows[0]["lr"], y), textcoords="offset points", xytext=(4, 3), fontsize=8, color="grey")
    stop = first_diverged(rows)
    if stop is not None:
        ax.axvline(stop, color="tab:red", ls=":", label=f"diverged from {stop:g}")
    ax.set(xscale="log", xlabel="peak learning rate", ylabel="eval loss", title="peak learning rate")
    ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------------------------------------ conclusion
def _arm_line(stats: dict) -> str:
    return ", ".join(f"{v} {s['mean']:.3f}" + (f" ±{s['sd']:.3f}" if s["sd"] is not None else "") + f" (n={s['n']})"
                     for v, s in sorted(stats.items(), key=lambda kv: kv[1]["mean"]))


def conclusion(recs: dict) -> str:
    """Sentences from the records of one run of the notebook ({experiment: [records]}); every number is read from
    them, every target says met or missed."""
    data = recs["data"][0]
    gate, base = data["config"]["gate_nats"], data["config"]["base_cell"]
    runs = [r for e in RUN_SECTIONS for r in recs.get(e, [])]
    grid = recs.get("grid", [])
    t = grid[0]["config"]["lm"]["train"] if grid else {}
    lines = []
    if grid:
        cpu = [r["metrics"]["train_cpu_s"] for r in grid + recs.get("rerun", [])]
        by_budget = sum(r["metrics"]["stopped_by"] == "budget" for r in grid + recs.get("rerun", []))
        clock = "its own CPU time (one thread, budget_clock=cpu)" if t.get("budget_clock") == "cpu" else "wall time"
        lines.append(f"budget: every equal-time run trained {t['time_budget_s']:g} s of {clock}; measured "
                     f"{min(cpu):.1f}-{max(cpu):.1f} CPU s; {by_budget} of {len(cpu)} stopped by the budget, the rest "
                     "by max_steps. Schedules, lr range and the equal-token grid are defined by steps.")
    table = gate_table(runs, gate)
    judged = table[~table["gate"].str.startswith("exempt")]
    failed = judged[judged["gate"] == "FAIL"]
    worst = judged.sort_values("below_bigram").iloc[0]
    exempt = len(table) - len(judged)
    lines.append(f"gate (every run >= {gate:g} nats below the bigram table of its tokens, "
                 f"{data['metrics']['bigram_ce']:.3f}; unigram {data['metrics']['unigram_ce']:.3f}): "
                 f"{'met' if failed.empty else 'MISSED'}: {len(judged) - len(failed)} of {len(judged)} runs pass"
                 + (f" ({exempt} lr-range runs at or above the first lr that diverged exempt)" if exempt else "")
                 + f"; the closest is {worst['section']} {worst['run']} s{worst['seed']} at {worst['below_bigram']:.3f}"
                 + ("" if failed.empty else "; failing: " + ", ".join(f"{r.section} {r.run} s{r.seed}"
                                                                      for r in failed.itertuples())))
    if grid:
        v = grid_verdict(grid, base)
        noise = rerun_noise(grid, recs.get("rerun", []), base)
        if noise["sd"] is not None:
            ratio = noise["sd"] / v["gap"] if v["gap"] else math.inf
            lines.append(f"the budget's own noise: cell {base}, seed 0, run {noise['n']} times: "
                         f"{', '.join(f'{x:.3f}' for x in noise['losses'])} "
                         f"({', '.join(str(s) for s in noise['steps'])} steps), sd {noise['sd']:.3f} = {ratio:.2f} of "
                         f"the best-worst gap {v['gap']:.3f} (target <= 1/3: {'met' if ratio <= 1 / 3 else 'missed'})")
        lines.append("batch x accumulation at equal time: " + _arm_line(v["stats"]))
        lines.append("  " + _pairs_line(v) + "; " + _control_line(v))
        lines.append(f"  the seed's best was {SEED_BEST_CELL[0]} x {SEED_BEST_CELL[1]} at its scale; here the lowest "
                     f"mean is {v['best']}")
    if recs.get("grid_tokens"):
        v = grid_verdict(recs["grid_tokens"], base)
        lines.append(f"the same cells at equal tokens ({recs['grid_tokens'][0]['metrics']['tokens']:,.0f} each): "
                     + _arm_line(v["stats"]))
        lines.append("  " + _pairs_line(v) + "; " + _control_line(v))
    if recs.get("schedules"):
        s = arm_stats(recs["schedules"])
        rows = many_to_one({k: x["losses"] for k, x in s.items() if k != "constant+warmup"},
                           s["constant+warmup"]["losses"]) if "constant+warmup" in s else []
        lines.append(f"schedules ({recs['schedules'][0]['metrics']['steps']} steps each): " + _arm_line(s))
        lines += [f"  {r['name']} vs constant+warmup: {describe(r)}" for r in rows]
    if recs.get("lr_range") or recs.get("schedules"):
        rows = lr_rows(recs.get("lr_range", []), recs.get("schedules", []))
        stop = first_diverged(rows)
        best = min(rows, key=lambda r: r["mean"])
        lines.append("peak lr (constant + warmup, mean over seeds): " + ", ".join(
            f"{r['lr']:g} -> {r['mean']:.3f}" + (f" ({r['diverged']} of {r['n']} diverged)" if r["diverged"] else "")
            for r in rows) + (f"; the loss diverged (not finite, or above the unigram) from lr {stop:g}" if stop else
                              f"; no lr in the range diverged (the largest, {rows[-1]['lr']:g}, ends "
                              f"{rows[-1]['mean'] - best['mean']:+.3f} nats from the best, {best['lr']:g})"))
    line = generations_line(recs)
    if line:
        lines.append(line)
    return "\n".join(lines)


def report(records: list[dict]) -> Report:
    """Analysis.ipynb's section for notebook 07 (and the notebook's last cell), from records only."""
    rep = Report(TITLE, records)
    recs = by_experiment(rep.records)
    if recs.get("regime"):
        rep.table("regime search (benchmarks/pretrain_regime.py; one seed per point, the grid's extreme cells)",
                  regime_table(recs["regime"]))
    runs = [r for e in RUN_SECTIONS for r in recs.get(e, [])]
    if recs.get("data") and runs:
        rep.table("the gate: every run against the bigram table of its tokens",
                  gate_table(runs, recs["data"][0]["config"]["gate_nats"]))
    for exp, title in (("grid", "eval loss at equal budget"), ("grid_tokens", "eval loss at equal tokens")):
        if recs.get(exp):
            rep.figure(f"batch x accumulation: {title}", grid_figure(recs[exp], title))
            rep.table(f"batch x accumulation runs ({title})", run_table(recs[exp]))
    if recs.get("rerun"):
        rep.table("reruns of one configuration and seed", run_table(recs["rerun"]))
    if recs.get("schedules"):
        rep.figure("schedules", schedules_figure(recs["schedules"]))
        rep.table("schedules", run_table(recs["schedules"]))
    if recs.get("lr_range") and recs.get("schedules"):
        rep.figure("learning-rate range", lr_figure(recs["lr_range"], recs["schedules"]))
        rep.table("learning-rate range over seeds", lr_table(recs["lr_range"], recs["schedules"]))
    if recs.get("data"):
        rep.table("generations from the seed's prompt: each section's best run and the bigram table",
                  generations_table({e: recs.get(e, []) for e in ("grid", "schedules", "lr_range")}, recs["data"][0]))
    if recs.get("runner"):
        rep.table("the sweep runner's own cost per run", frame(recs["runner"][0]["metrics"]))
    if recs.get("data") and recs.get("grid"):
        rep.text = conclusion(recs)
    return rep
