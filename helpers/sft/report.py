"""Notebook 06 from its records (torch-free): the SFT runs and the author's lessons over training seeds (Dunnett against
each lesson's reference), the preference pairs and the SFT model's headroom on them, the DPO search, DPO against the SFT
model (McNemar over held-out pairs, for every training seed), the hard case beside it, definition quality with paired
intervals, the conclusion (every target met or missed) and `report()` for Analysis.ipynb."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ..analysis import Report, by_experiment, frame, one, records_of
from ..stats import describe, many_to_one
from .verdicts import _last, _met, correct, dpo_rows, f1_paired, success_line

NOTEBOOK = "06_sft_dpo"
TITLE = "LoRA, SFT and DPO of a chat model (seed 004)"
SFT_VARIANTS = ("baseline", "whole-sequence", "truncate", "plateau", "accum-1", "accum-4", "accum-4-steps")
# (arm, its reference, the lesson in words)
LESSONS = (("whole-sequence", "baseline", "loss on the whole sequence (the author's) instead of the answer only"),
           ("truncate", "baseline", "truncating long examples instead of dropping them"),
           ("plateau", "baseline", "ReduceLROnPlateau (the author's) instead of cosine with warmup"),
           ("accum-4", "accum-1", "accumulating 4 micro-batches instead of 1, equal examples (4x fewer steps)"),
           ("accum-4-steps", "accum-1", "accumulating 4 micro-batches instead of 1, equal optimizer steps (4x the "
                                        "examples)"))
# SFT's target; DPO's are helpers.sft.verdicts.SUCCESS (the old training-loss target compared IPO's loss, on another
# scale, with a sigmoid threshold)
TARGETS = {"sft_loss_change": -0.5}


# ------------------------------------------------------------------------------------------------ over seeds
def by_variant(records) -> dict:
    """{variant: [records sorted by seed]}."""
    out = {}
    for r in sorted(records_of(records), key=lambda r: (r["variant"], r["seed"])):
        out.setdefault(r["variant"], []).append(r)
    return out


def _vals(recs: list[dict], key: str) -> list[float]:
    return [r["metrics"][key] for r in recs if r["metrics"].get(key) is not None]


def _ms(x: list[float], fmt: str = ".3f") -> str:
    return (f"{np.mean(x):{fmt}}" + (f" +- {np.std(x, ddof=1):{fmt}}" if len(x) > 1 else "") + f" (n={len(x)})"
            if x else "-")


def sft_table(sft_records):
    """One row per SFT variant: held-out answer loss and definition F1 over its training seeds, and what it ran."""
    rows = []
    for v, recs in by_variant(sft_records).items():
        m = recs[0]["metrics"]
        rows.append({"variant": v, "seeds": len(recs), "answer loss": _ms(_vals(recs, "test_loss")),
                     "F1": _ms(_vals(recs, "f1")), "steps": m["steps"], "examples seen": m["examples_seen"],
                     "dropped": m.get("data.dropped"), "truncated": m.get("data.truncated"),
                     "lr cuts": _ms(_vals(recs, "lr_cuts"), ".1f") if m.get("lr_cuts") is not None else "",
                     "wall s": float(np.mean(_vals(recs, "wall_s")))})
    return frame(rows, "variant")


def lesson_rows(sft_records) -> list[dict]:
    """Every lesson's arm against its reference over training seeds, the held-out answer loss: the arms that share a
    reference are one many-to-one family (the baseline's three, accum-1's two), each tested by Dunnett's test on the
    variance pooled over the family (n and df in every row; "n = 1: no test" where an arm has one seed; "indicative"
    where the arms have 2 seeds), not by Welch per arm with Holm across unrelated references."""
    arms = by_variant(sft_records)
    todo = [(a, ref, label) for a, ref, label in LESSONS if a in arms and ref in arms]
    out = {}
    for ref in dict.fromkeys(r for _, r, _ in todo):
        family = [(a, label) for a, r, label in todo if r == ref]
        rows = many_to_one({a: _vals(arms[a], "test_loss") for a, _ in family}, _vals(arms[ref], "test_loss"))
        for (a, label), row in zip(family, rows):
            out[a] = {"lesson": label, "arm": a, "reference": ref, **row,
                      "indicative": max(row["n_a"], row["n_b"]) <= 2 and row["test"] == "Dunnett"}
    return [out[a] for a, _, _ in todo]


def lesson_text(r: dict) -> str:
    """A lesson row in words: the Dunnett comparison, and "n = 2: indicative" where that is all there is."""
    return describe(r) + (" (n = 2 an arm: indicative)" if r["indicative"] else "")


def lessons_table(sft_records):
    return frame([{"lesson": r["lesson"], "arm - reference (answer loss)": lesson_text(r)}
                  for r in lesson_rows(sft_records)], "lesson")


# ------------------------------------------------------------------------------------------------ pairs, DPO
def chosen_search_point(search_records) -> tuple[float, float] | None:
    """(beta, lr) of the search run with the best validation likelihood accuracy (the first on a tie)."""
    recs = records_of(search_records)
    if not recs:
        return None
    best = max(recs, key=lambda r: (r["metrics"].get("val.likelihood_acc", -1), -recs.index(r)))
    d = best["config"]["dpo"]
    return d["beta"], d["lr"]


def search_table(search_records, pairs_record):
    sft_acc = one(pairs_record)["metrics"]["val.sft_likelihood_acc"]
    rows = [{"beta": r["config"]["dpo"]["beta"], "lr": r["config"]["dpo"]["lr"], "steps": r["metrics"]["steps"],
             "final train loss": _last(r["curves"].get("train_loss", {})),
             "validation likelihood acc": r["metrics"]["val.likelihood_acc"], "SFT on the same pairs": sft_acc}
            for r in records_of(search_records)]
    best = chosen_search_point(search_records)
    for row in rows:
        row["chosen"] = (row["beta"], row["lr"]) == best
    return frame(rows)


def models_table(untuned, sft_records, dpo_records, pairs_record):
    """Untuned, SFT (every seed) and DPO (every loss and seed) side by side on the held-out sets: answer loss,
    held-out on-policy pair accuracy, the hard case with its length-only bar, F1 with a paired interval against the
    SFT model of seed 0, answer length and repeat rate."""
    pr, u = one(pairs_record), one(untuned)
    base = by_variant(sft_records)["baseline"]
    sft0 = base[0]
    models = [("untuned", u)] + [(f"SFT s{r['seed']}", r) for r in base] + \
        [(f"DPO {r['variant']} s{r['seed']}", r) for r in sorted(records_of(dpo_records),
                                                                 key=lambda r: (r["variant"], r["seed"]))]
    rows = []
    for name, r in models:
        f1 = f1_paired(sft0, r) if r is not sft0 else None
        m = r["metrics"]
        rows.append({"model": name, "answer loss": m["test_loss"],
                     "held-out pair acc": float(correct(r, "heldout").mean()) if "logps.heldout" in r["tables"] else
                     (float(correct(pr, "heldout").mean()) if r is sft0 else None),
                     "hard pair acc": m.get("hard.likelihood_acc"), "F1": m.get("f1"),
                     "F1 - SFT s0 [95% CI]": "" if f1 is None else f"{f1['delta']:+.3f} [{f1['lo']:+.3f}, "
                                                                    f"{f1['hi']:+.3f}]",
                     "words": m.get("words"), "repeat rate": m.get("repeat_rate")})
    out = frame(rows, "model")
    return out


def pairs_table(pairs_record):
    return frame(one(pairs_record)["tables"]["counts"])


def record_table(record: dict, name: str):
    """One of a record's tables as a DataFrame."""
    return frame(one(record)["tables"][name])


def lessons_tables(c) -> dict:
    c = one(c)
    return {k: frame(c["tables"][k]) for k in ("validation_bias", "eval_frequency", "worst", "attention",
                                               "resources")}


def answers_table(e):
    return frame(one(e)["tables"]["answers"])


def curves_figure(sft_records, dpo_records):
    """SFT training loss per variant (seed 0), DPO's training loss and held-out likelihood accuracy over steps."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for r in records_of(sft_records):
        if r["seed"] == 0 and r["curves"].get("train_loss"):
            c = r["curves"]["train_loss"]
            per = r["metrics"]["examples_seen"] / max(r["metrics"]["steps"], 1)
            axes[0].plot([int(k) * per for k in c], list(c.values()), label=r["variant"])
    axes[0].set(xlabel="training examples", ylabel="train loss (per token)", title="SFT variants (seed 0)")
    axes[0].legend(fontsize=7)
    for r in records_of(dpo_records):
        label = f"{r['variant']} s{r['seed']}"
        c = r["curves"].get("train_loss", {})
        axes[1].plot([int(k) for k in c], list(c.values()), label=label)
        c = r["curves"].get("heldout_likelihood_acc", {})
        axes[2].plot([int(k) for k in c], list(c.values()), marker="o", label=label)
    axes[1].axhline(math.log(2), ls="--", color="grey", lw=1)
    axes[1].set(xlabel="DPO step", ylabel="loss", title="DPO training loss (ln 2 dashed)")
    axes[2].set(xlabel="DPO step", ylabel="likelihood accuracy", title="held-out pairs over steps")
    for ax in axes[1:]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ conclusion
def _num(x, spec: str) -> str:
    """A number formatted, or "not logged" (e.g. a run shorter than its logging interval)."""
    return "not logged" if x is None else format(x, spec)




def conclusion(recs: dict) -> str:
    """Sentences from one run of the notebook's records ({experiment: [records]}); every target says met or
    missed, every verdict rests on training seeds (or says n = 1)."""
    lines = []
    a = recs["a_data"][0]
    sft = recs.get("sft", [])
    arms = by_variant(sft)
    base = arms.get("baseline", [])
    ma = a["metrics"]
    lines.append(f"a. {ma['sft_rows']:,} SFT chats ({ma['over_max_length']:,} over {a['config']['max_length']} "
                 f"tokens); untuned held-out answer loss {ma['test_loss']:.3f}, F1 {ma['f1']:.3f}.")
    if base:
        losses = _vals(base, "test_loss")
        change = float(np.mean(losses)) - ma["test_loss"]
        lines.append(f"b. SFT (baseline, {len(losses)} seeds) lowers the held-out answer loss from "
                     f"{ma['test_loss']:.3f} to {_ms(losses)} ({change:+.3f} nats; every seed between "
                     f"{min(losses) - ma['test_loss']:+.3f} and {max(losses) - ma['test_loss']:+.3f}; target <= "
                     f"{TARGETS['sft_loss_change']}: "
                     f"{_met(max(losses) - ma['test_loss'] <= TARGETS['sft_loss_change'])}); F1 {ma['f1']:.3f} -> "
                     f"{_ms(_vals(base, 'f1'))}.")
    for r in lesson_rows(sft):
        lines.append(f"c. {r['lesson']}: {lesson_text(r)}.")
    if base and set(arms) == {"baseline"}:
        lines.append("c. the lessons were not run (lesson_seeds = ()): the SFT baseline alone.")
    if "plateau" in arms:
        cuts = _vals(arms["plateau"], "lr_cuts")
        lines.append(f"c. ReduceLROnPlateau cut the lr {', '.join(str(int(c)) for c in cuts)} time(s) in "
                     f"{arms['plateau'][0]['metrics']['steps']} steps (one count per seed)"
                     + ("" if min(cuts, default=0) > 0 else ": where it never cut, the arm is a constant lr"))
    if recs.get("c_lessons"):
        c = recs["c_lessons"][0]
        for b in c["tables"]["validation_bias"]:
            lines.append(f"c. validation filtered by length like the training set scores the {b['model']} model "
                         f"{b['filtered loss']:.3f} vs {b['unfiltered loss']:.3f} unfiltered (bias {b['bias']:+.3f}).")
    if recs.get("d_pairs"):
        p = recs["d_pairs"][0]["metrics"]
        lines.append(f"d. preference pairs (chosen = the gloss, rejected = the SFT model's own wrong answer): "
                     f"{p['train.pairs']} training, {p['val.pairs']} validation, {p['heldout.pairs']} held-out; the "
                     f"SFT model prefers the gloss on {p['heldout.sft_likelihood_acc']:.1%} of the held-out pairs (the "
                     f"headroom); 'the shorter answer is chosen' scores {p['heldout.length_only_acc']:.1%}.")
    if recs.get("dpo_search"):
        beta, lr = chosen_search_point(recs["dpo_search"])
        lines.append(f"e. the search ({len(recs['dpo_search'])} (beta, lr) points, validation pairs) chose beta "
                     f"{beta:g}, lr {lr:g}.")
    if recs.get("dpo") and recs.get("d_pairs") and base:
        rows = dpo_rows(recs["dpo"], recs["d_pairs"][0], base[0])
        for loss in sorted({r["loss"] for r in rows}):
            rs = [r for r in rows if r["loss"] == loss]
            seeds = ", ".join(f"s{r['seed']}: {r['held-out acc SFT']:.1%} -> {r['held-out acc DPO']:.1%} "
                              f"({r['points']:+.1f} points, {r['gained']} gained / {r['lost']} lost, McNemar p = "
                              f"{r['McNemar p']:.2g}; train loss {_num(r['final train loss'], '.3f')}; answer loss "
                              f"{r['answer loss - SFT']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}])" for r in rs)
            lines.append(f"f. DPO ({loss}, {len(rs)} training seed{'s' if len(rs) > 1 else ''}) on "
                         f"{rs[0]['pairs']} held-out pairs: {seeds}."
                         + ("" if len(rs) > 1 else " n = 1: no test over training seeds."))
            lines.append(success_line(rs, loss))
            hard = [r["hard acc DPO"] for r in rs if r["hard acc DPO"] is not None]
            if hard and rs[0]["hard acc SFT"] is not None:
                lines.append(f"f. the hard case ({loss}): WordNet hard negatives of held-out words, "
                             f"{rs[0]['hard acc SFT']:.1%} for SFT -> {', '.join(f'{h:.1%}' for h in hard)} after DPO "
                             f"(length alone: {max(ma['hard.length_only_acc'], 1 - ma['hard.length_only_acc']):.1%}).")
            words, rep, b0 = [r["words"] for r in rs], [r["repeat rate"] for r in rs], base[0]["metrics"]
            f1s = [f1_paired(base[0], r) for r in recs["dpo"] if r["variant"] == loss]
            lines.append(f"g. DPO ({loss}) answers: {np.mean(words):.1f} words (SFT {b0['words']:.1f}), repeated "
                         f"3-gram rate {np.mean(rep):.3f} (SFT {b0['repeat_rate']:.3f}), F1 "
                         + ", ".join(f"{f['delta']:+.3f} [{f['lo']:+.3f}, {f['hi']:+.3f}]" for f in f1s)
                         + " against SFT s0 (paired over the generation prompts).")
    return "\n".join(lines)


def headline(records: list[dict]) -> str:
    """README's one line for the family: SFT's change of the held-out answer loss, and each DPO loss's held-out
    preference beside the answer loss it cost against SFT (a preference that rises while every answer's loss rises is
    not a better model), each target met or missed."""
    ex = by_experiment(records)
    base = by_variant(ex.get("sft", [])).get("baseline", [])
    if not ex.get("a_data") or not base:
        return "no SFT records yet"
    untuned, losses = ex["a_data"][0]["metrics"]["test_loss"], _vals(base, "test_loss")
    out = [f"SFT lowers the held-out answer loss {untuned:.3f} -> {np.mean(losses):.3f} (n = {len(losses)}; target "
           f"<= {TARGETS['sft_loss_change']}: {_met(max(losses) - untuned <= TARGETS['sft_loss_change'])})"]
    if ex.get("dpo") and ex.get("d_pairs"):
        rows = dpo_rows(ex["dpo"], ex["d_pairs"][0], base[0])
        won = [r for r in rows if r["label"] == "success"]
        if won:
            out.append("DPO met all four criteria (preference, no displacement, answer loss, F1) on "
                       + ", ".join(f"{r['loss']} s{r['seed']}" for r in won) + f" of {len(rows)} runs")
        else:
            worst = max(rows, key=lambda r: r["answer loss - SFT"])
            out.append(f"DPO degraded the model at this scale: no run of {len(rows)} meets all four criteria; "
                       + ", ".join(f"{r['loss']} s{r['seed']} {r['label']} (preference {r['points']:+.1f} points, "
                                   f"log p(chosen) fell on {r['chosen fell']} of {r['pairs']} pairs, answer loss "
                                   f"{r['answer loss - SFT']:+.2f}, F1 {r['F1 - SFT']:+.3f})"
                                   for r in rows if r is worst or r["loss"] == "sigmoid"))
    return "; ".join(out) + "."


def report(records: list[dict]) -> Report:
    """Analysis.ipynb's section for notebook 06 (and the notebook's last cell), from records only."""
    rep = Report(TITLE, records)
    ex = by_experiment(rep.records)
    if ex.get("sft"):
        rep.figure("SFT variants and DPO curves", curves_figure(ex["sft"], ex.get("dpo", [])))
        rep.table("SFT runs over training seeds", sft_table(ex["sft"]))
        rep.table("the author's lessons over training seeds (Dunnett against each lesson's reference)",
                  lessons_table(ex["sft"]))
    if ex.get("d_pairs"):
        rep.table("preference pairs", pairs_table(ex["d_pairs"][0]))
    if ex.get("dpo_search") and ex.get("d_pairs"):
        rep.table("DPO search (validation pairs)", search_table(ex["dpo_search"], ex["d_pairs"][0]))
    base = by_variant(ex.get("sft", [])).get("baseline")
    if ex.get("dpo") and ex.get("d_pairs") and base:
        rep.table("DPO against the SFT model on the held-out pairs (McNemar per training seed)",
                  frame(dpo_rows(ex["dpo"], ex["d_pairs"][0], base[0])))
    if ex.get("a_data") and base and ex.get("d_pairs"):
        rep.table("untuned vs SFT vs DPO (held-out)", models_table(ex["a_data"][0], ex["sft"], ex.get("dpo", []),
                                                                    ex["d_pairs"][0]))
    if ex.get("e_compare"):
        rep.table("answers to held-out words", answers_table(ex["e_compare"][0]))
        rep.table("adapters reloaded", record_table(ex["e_compare"][0], "reload"))
    if ex.get("c_lessons"):
        for k, df in lessons_tables(ex["c_lessons"][0]).items():
            rep.table(k.replace("_", " "), df)
    if ex.get("a_data"):
        rep.text = conclusion(ex)
    return rep
