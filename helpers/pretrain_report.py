"""Notebook 07 from its records (torch-free): runs, the batch x accumulation grid and its verdict, schedules, the
learning-rate range, generations, the conclusion and `report()` for Analysis.ipynb."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from . import plots
from .analysis import Report, by_experiment, frame
from .stats import welch_samples

NOTEBOOK = "07_pretraining"
TITLE = "Pretraining a small Russian LM under a time budget (seed 003)"


SEED_NOTES = {  # seed 003's own numbers (REFERENCE.md section 4 and the seed file)
    "best_cell": (6, 6), "eval_loss_range": (4.2, 4.7), "run_minutes": 30, "runs": 15,
    "summaries": "the file pastes 5 run summaries, of which the last two are the same run twice (identical numbers "
                 "and generation): 4 distinct runs, eval loss 4.20 / 4.69 / 4.71 / 4.73"}


def cell_stats(records) -> dict:
    """{cell: {"mean", "sd", "n", "losses", "tokens", "steps"}} over the seeds of each cell."""

    out = {}
    for r in (records.values() if isinstance(records, dict) else records):
        out.setdefault(r["variant"], []).append(r["metrics"])
    return {c: {"mean": float(np.mean([m["eval_loss"] for m in ms])),
                "sd": float(np.std([m["eval_loss"] for m in ms], ddof=1)) if len(ms) > 1 else None,
                "n": len(ms), "losses": [m["eval_loss"] for m in ms],
                "tokens": float(np.mean([m["tokens"] for m in ms])), "steps": float(np.mean([m["steps"] for m in ms]))}
            for c, ms in out.items()}


def grid_verdict(records: dict) -> dict:
    """Best vs worst cell (by mean eval loss over its seeds): the gap, each cell's sd, Welch's t-test (n and degrees
    of freedom); "n = 1: no test" when a cell has one seed."""

    cs = cell_stats(records)
    multi = {c: s for c, s in cs.items() if s["n"] > 1} or cs
    best, worst = min(multi, key=lambda c: multi[c]["mean"]), max(multi, key=lambda c: multi[c]["mean"])
    b, w = cs[best], cs[worst]
    out = {"best": best, "worst": worst, "best_mean": b["mean"], "worst_mean": w["mean"],
           "gap": w["mean"] - b["mean"], "best_sd": b["sd"], "worst_sd": w["sd"], "n_best": b["n"],
           "n_worst": w["n"]}
    c = welch_samples(w["losses"], b["losses"])                   # the shared comparison helper (helpers/stats.py)
    if c.p is None:
        out.update(test=c.test, p=None, df=None)
        return out
    out.update(test=c.test, t=c.t, p=c.p, df=c.df, beyond_noise=bool(c.p < 0.05))
    return out


def run_table(records, extra: tuple = ()):
    """One row per record: the numbers every run keeps."""

    cols = ("steps", "tokens", "tokens_per_s", "eval_loss", "eval_ppl", "bits_per_char", *extra)
    rows = [{"run": r["variant"], "seed": r["seed"], **{c: r["metrics"].get(c) for c in cols}}
            for r in (records.values() if isinstance(records, dict) else records)]
    return frame(rows, ["run", "seed"])


def _cell(name: str) -> tuple[int, int]:
    parts = dict(p.split("=") for p in name.split(","))
    return int(parts["lm.train.batch_size"]), int(parts["lm.train.grad_accum"])


def grid_figure(records):
    """Heatmap of eval loss (mean over seeds) per batch x accumulation cell, tokens seen in each cell."""

    cs = cell_stats(records)
    batches = sorted({_cell(c)[0] for c in cs})
    accums = sorted({_cell(c)[1] for c in cs})
    data = np.full((len(batches), len(accums)), np.nan)
    fig, ax = plt.subplots(figsize=(1.6 * len(accums) + 2, 1.1 * len(batches) + 1.5))
    for c, s in cs.items():
        i, j = batches.index(_cell(c)[0]), accums.index(_cell(c)[1])
        data[i, j] = s["mean"]
        ax.text(j, i, f"{s['mean']:.3f}" + (f"\n±{s['sd']:.3f} (n={s['n']})" if s["sd"] is not None else "")
                + f"\n{s['tokens'] / 1e3:.0f}k tok", ha="center", va="center", fontsize=7, color="white")
    im = ax.imshow(data, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(accums)), [str(a) for a in accums])
    ax.set_yticks(range(len(batches)), [str(b) for b in batches])
    ax.set_xlabel("gradient accumulation")
    ax.set_ylabel("per-device batch")
    ax.set_title("eval loss at equal wall-clock budget")
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig


def schedules_figure(records: dict):
    """Learning rate and training loss against step for every schedule (one figure, two panels)."""

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    recs = list(records.values())
    plots.curves(a1, {r["variant"]: r["curves"]["lr"] for r in recs}, title="learning rate", ylabel="lr")
    plots.curves(a2, {r["variant"]: r["curves"]["train_loss"] for r in recs}, title="training loss",
                 hlines={"unigram": recs[0]["metrics"]["unigram_ce"], "bigram": recs[0]["metrics"]["bigram_ce"]})
    fig.tight_layout()
    return fig


def lr_rows(records: dict) -> list[dict]:
    return sorted(({"lr": r["config"]["lm"]["train"]["lr"], "eval_loss": r["metrics"]["eval_loss"],
                    "steps": r["metrics"]["steps"]} for r in records.values()), key=lambda x: x["lr"])


def divergence_lr(rows: list[dict], tol: float = 0.25) -> float | None:
    """The smallest lr above the best one whose eval loss is worse than the best by more than `tol` nats (or not
    finite): where training stops converging."""

    ok = [r for r in rows if r["eval_loss"] is not None and math.isfinite(r["eval_loss"])]
    if not ok:
        return None
    best = min(ok, key=lambda r: r["eval_loss"])
    for r in rows:
        if r["lr"] > best["lr"] and (r["eval_loss"] is None or not math.isfinite(r["eval_loss"])
                                     or r["eval_loss"] > best["eval_loss"] + tol):
            return r["lr"]
    return None


def lr_figure(records: dict):
    rows = lr_rows(records)
    any_rec = next(iter(records.values()))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    plots.curves(ax, {"eval loss": {r["lr"]: r["eval_loss"] for r in rows}}, title="peak learning rate",
                 ylabel="eval loss", xlabel="learning rate",
                 hlines={"unigram": any_rec["metrics"]["unigram_ce"], "bigram": any_rec["metrics"]["bigram_ce"]})
    div = divergence_lr(rows)
    if div is not None:
        ax.axvline(div, color="tab:red", ls=":", label=f"stops converging ({div:g})")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    return fig


def generations_table(*groups):
    """Greedy and sampled continuations of the prompt for every run, beside its eval loss."""

    rows = []
    for records in groups:
        for r in records.values():
            g = {x["mode"]: x["text"] for x in r["tables"]["generations"]}
            rows.append({"sweep": r["experiment"], "run": r["variant"], "seed": r["seed"],
                         "eval_loss": round(r["metrics"]["eval_loss"], 3), "greedy": g.get("greedy"),
                         "sampled": g.get("sampled")})
    return frame(rows)


def conclusion(grid_records: dict, schedule_records: dict, lr_records: dict, replayed: dict | None = None) -> str:
    v = grid_verdict(grid_records)
    b, w = _cell(v["best"]), _cell(v["worst"])
    any_rec = next(iter(grid_records.values()))
    m = any_rec["metrics"]
    budget = any_rec["config"]["lm"]["train"]["time_budget_s"]
    lines = [f"every run trained {budget:g} s (equal wall-clock budget); references: unigram {m['unigram_ce']:.3f}, "
             f"bigram {m['bigram_ce']:.3f} nats/token on the validation split."]
    noise_txt = (f"{v['test']}: t = {v['t']:.2f}, df = {v['df']:.1f}, p = {v['p']:.3f} -> "
                 f"{'beyond' if v['beyond_noise'] else 'within'} seed noise" if v["p"] is not None else v["test"])
    lines.append(f"batch x accumulation: best cell {b[0]} x {b[1]} ({v['best_mean']:.3f}, n = {v['n_best']}), worst "
                 f"{w[0]} x {w[1]} ({v['worst_mean']:.3f}, n = {v['n_worst']}), gap {v['gap']:.3f} nats; {noise_txt}. "
                 f"The seed's best was {SEED_NOTES['best_cell'][0]} x {SEED_NOTES['best_cell'][1]} at its scale.")
    sched = sorted(schedule_records.values(), key=lambda r: r["metrics"]["eval_loss"])
    lines.append("schedules (one seed each): " + ", ".join(f"{r['variant']} {r['metrics']['eval_loss']:.3f}"
                                                           for r in sched)
                 + f"; best: {sched[0]['variant']}, "
                   f"{sched[-1]['metrics']['eval_loss'] - sched[0]['metrics']['eval_loss']:.3f}"
                   " nats ahead of the worst (compare with the seed sd above)")
    rows = lr_rows(lr_records)
    div = divergence_lr(rows)
    lines.append("peak lr: " + ", ".join(f"{r['lr']:g} -> {r['eval_loss']:.3f}" for r in rows)
                 + (f"; training stops converging from lr {div:g}" if div else "; no lr in the range diverged"))
    runs = [r for g in (grid_records, schedule_records) for r in g.values()]
    uni = sum(r["metrics"]["eval_loss"] < r["metrics"]["unigram_ce"] for r in runs)
    bi = sum(r["metrics"]["eval_loss"] < r["metrics"]["bigram_ce"] for r in runs)
    lines.append(f"of {len(runs)} grid and schedule runs, {uni} beat the unigram reference (context-free) and {bi} the "
                 "bigram table of the whole train split (previous token only).")
    if replayed:
        for orig, rep in replayed.items():
            lines.append(f"replay of {orig} at its {rep['metrics']['steps']} recorded steps (no budget): eval loss "
                         f"{rep['metrics']['eval_loss']:.4f} vs "
                         f"{replayed_original(grid_records, orig, rep['seed']):.4f} "
                         "in the "
                         f"time-budget run")
    return "\n".join(lines)


def replayed_original(grid_records: dict, variant: str, seed: int) -> float:
    return next(r["metrics"]["eval_loss"] for r in grid_records.values()
                if r["variant"] == variant and r["seed"] == seed)




def report(records: list[dict]):
    """Analysis.ipynb's section for notebook 07, from records only (no torch)."""

    rep = Report(TITLE, records)
    recs = by_experiment(rep.records)
    as_dict = {e: {(r["variant"], r["seed"]): r for r in rs} for e, rs in recs.items()}
    if as_dict.get("grid"):
        rep.figure("batch x accumulation", grid_figure(as_dict["grid"]))
        rep.table("batch x accumulation runs", run_table(as_dict["grid"]))
    if as_dict.get("schedules"):
        rep.figure("schedules", schedules_figure(as_dict["schedules"]))
        rep.table("schedules", run_table(as_dict["schedules"]))
    if as_dict.get("lr_range"):
        rep.figure("learning-rate range", lr_figure(as_dict["lr_range"]))
    if as_dict.get("runner"):
        rec = next(iter(as_dict["runner"].values()))
        rep.table("the sweep runner's own cost per run", frame(rec["metrics"]))
    groups = [as_dict[e] for e in ("grid", "schedules", "lr_range") if as_dict.get(e)]
    if groups:
        rep.table("generations from the seed's prompt", generations_table(*groups))
    if all(as_dict.get(e) for e in ("grid", "schedules", "lr_range")):
        replayed = {r["variant"].removeprefix("replay "): r for r in recs.get("replay", [])}
        rep.text = conclusion(as_dict["grid"], as_dict["schedules"], as_dict["lr_range"], replayed)
    return rep
