"""Notebook 06 from its records (torch-free): the SFT variants against the baseline, the lessons, DPO's curves,
untuned vs SFT vs DPO, the conclusion and `report()` for Analysis.ipynb."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .analysis import Report, by_experiment, frame
from .stats import paired_bootstrap

NOTEBOOK = "06_sft_dpo"
TITLE = "LoRA, SFT and DPO of a chat model (seed 004)"
SFT_VARIANTS = ("baseline", "whole-sequence", "truncate", "plateau", "accum-1", "accum-4")
SECTIONS = ("a_data", "c_lessons", "e_compare")


def paired(a: dict, b: dict) -> dict:
    """Held-out answer-loss difference b - a on the same rows, with a paired bootstrap 95% interval."""

    def rows(r):
        t = r["tables"]["test_rows"]
        return {"seq_loss_sum": [x["loss_sum"] for x in t], "seq_tokens": [x["tokens"] for x in t]}

    return paired_bootstrap(rows(a), rows(b))


def comparison_table(recs: dict, reference: str = "baseline"):
    """One row per SFT variant: held-out answer loss, its difference from the reference run with a paired
    interval, definition F1, training figures."""

    base = recs[reference]
    out = []
    for v in (v for v in SFT_VARIANTS if v in recs):
        r = recs[v]
        m = r["metrics"]
        d = paired(base, r) if v != reference else None
        out.append({"variant": v, "test answer loss": m["test_loss"],
                    f"minus {reference} [95% CI]": f"{d['delta']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]" if d else "",
                    "F1": m.get("f1"), "steps": m["steps"], "examples seen": m["examples_seen"],
                    "dropped": m["data.dropped"], "truncated": m["data.truncated"], "lr cuts": m.get("lr_cuts"),
                    "grad-norm CV": m.get("grad_norm_cv"), "wall s": m["wall_s"]})
    return frame(out, "variant")


def record_table(record: dict, name: str):
    """One of a record's tables as a DataFrame."""

    return frame(record["tables"][name])


def compare_table(e: dict):
    df = frame(e["tables"]["models"], "model")
    d = {r["model"]: f"{r['minus_sft']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]" for r in e["tables"]["loss_vs_sft"]}
    df["loss minus SFT [95% CI]"] = [d.get(m, "") for m in df.index]
    return df


def answers_table(e: dict):
    return frame(e["tables"]["answers"])


def lessons_tables(c: dict) -> dict:
    return {k: frame(c["tables"][k]) for k in ("validation_bias", "eval_frequency", "worst", "attention",
                                                        "resources")}


def curves_figure(sft_recs: dict, dpo_recs: dict):
    """SFT eval loss per variant, and DPO's train vs held-out reward accuracy over steps."""

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for v, r in sft_recs.items():
        if v in SFT_VARIANTS and r["curves"].get("train_loss"):
            c = r["curves"]["train_loss"]
            axes[0].plot([int(k) * r["metrics"]["examples_seen"] / max(r["metrics"]["steps"], 1) for k in c],
                         list(c.values()), label=v)
    axes[0].set(xlabel="training examples", ylabel="train loss (per token)", title="SFT variants")
    axes[0].legend(fontsize=8)
    for lt, r in dpo_recs.items():
        for split, style in (("train", "-"), ("heldout", "--")):
            c = r["curves"].get(f"{split}_reward_acc", {})
            axes[1].plot([int(k) for k in c], list(c.values()), style, label=f"{lt} {split}")
        c = r["curves"].get("train_loss", {})
        axes[2].plot([int(k) for k in c], list(c.values()), label=lt)
    axes[1].set(xlabel="DPO step", ylabel="implicit-reward accuracy", title="DPO: train vs held-out pairs")
    axes[1].legend(fontsize=8)
    axes[2].set(xlabel="DPO step", ylabel="loss", title="DPO training loss")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _fmt(m: dict, key: str) -> str:
    return f"{m[key]:.3f} (95% CI {m[key + '_lo']:.3f}-{m[key + '_hi']:.3f})"


def conclusion(a: dict, sft_recs: dict, c: dict, dpo_recs: dict, e: dict) -> str:
    """Sentences from the records; every number below is read from them."""
    lines = []
    ma = a["metrics"]
    lines.append(f"a. {ma['sft_rows']:,} SFT chats ({ma['over_max_length']:,} over {a['config']['max_length']} "
                 f"tokens), {ma['pairs_train']:,} training pairs; on {ma['pref.n']} held-out pairs 'the shorter answer "
                 f"is chosen' scores {ma['length_only_acc']:.3f}, so the better rule of length alone scores "
                 f"{max(ma['length_only_acc'], 1 - ma['length_only_acc']):.3f}: the bar a preference accuracy "
                 "must clear "
                 "before it says more than length.")
    base = sft_recs["baseline"]
    for v, label in (("whole-sequence", "loss on the whole sequence (the author's)"),
                     ("truncate", "truncating long examples instead of dropping them"),
                     ("plateau", "ReduceLROnPlateau instead of cosine"),
                     ("accum-4", "accumulating 4 micro-batches (vs 1) over the same examples")):
        ref = sft_recs["accum-1"] if v == "accum-4" else base
        if v in sft_recs and ref is not sft_recs[v]:
            d = paired(ref, sft_recs[v])
            word = "worse" if d["lo"] > 0 else "better" if d["hi"] < 0 else "no measurable difference"
            lines.append(f"b/c. {label}: held-out answer loss {d['delta']:+.3f} nats (95% paired CI {d['lo']:+.3f} "
                         f"to {d['hi']:+.3f}, {d['sequences']} answers, one training seed): {word}.")
    if "plateau" in sft_recs:
        lines.append(f"c. ReduceLROnPlateau cut the lr {sft_recs['plateau']['metrics']['lr_cuts']} time(s) in "
                     f"{sft_recs['plateau']['metrics']['steps']} steps.")
    g1, g4 = (sft_recs.get(v, {}).get("metrics", {}) for v in ("accum-1", "accum-4"))
    if g1.get("grad_norm_cv") is not None and g4.get("grad_norm_cv") is not None:
        lines.append(f"c. gradient-norm coefficient of variation (second half): {g1['grad_norm_cv']:.3f} with "
                     f"accumulation 1 vs {g4['grad_norm_cv']:.3f} with 4.")
    for b in c["tables"]["validation_bias"]:
        lines.append(f"c. validation filtered by length like the training set scores the {b['model']} model "
                     f"{b['filtered loss']:.3f} vs {b['unfiltered loss']:.3f} unfiltered (bias {b['bias']:+.3f}).")
    lines.append(f"c. evaluating every {base['config']['sft']['eval_every']} steps took "
                 f"{c['metrics']['eval_share']:.0%} of the baseline run's wall time.")
    rows = {r["model"]: r for r in e["tables"]["models"]}
    u, s = rows["untuned"], rows["SFT"]
    lines.append(f"e. SFT lowers the held-out answer loss from {u['test_loss']:.3f} to {s['test_loss']:.3f} "
                 f"({s['test_loss'] - u['test_loss']:+.3f} nats; target <= -0.5) and definition F1 from "
                 f"{u['f1']:.3f} to {s['f1']:.3f}.")
    for name, r in rows.items():
        if name.startswith("DPO"):
            lines.append(f"e. {name}: held-out preference accuracy {s['pref_acc']:.3f} -> {r['pref_acc']:.3f} "
                         f"({(r['pref_acc'] - s['pref_acc']) * 100:+.1f} points, s.e. {r['pref_acc_se'] * 100:.1f}; "
                         f"target >= +10), answer loss {r['test_loss'] - s['test_loss']:+.3f} nats vs SFT "
                         f"(target <= +0.3), implicit-reward accuracy {r['reward_acc']:.3f}.")
    for lt, r in dpo_recs.items():
        tr, ho = r["curves"].get("train_reward_acc", {}), r["curves"].get("heldout_reward_acc", {})
        if ho:
            best = max(ho, key=lambda k: ho[k])
            last = max(ho, key=int)
            lines.append(f"d. DPO ({lt}): held-out reward accuracy peaks at step {best} ({ho[best]:.3f}) and ends at "
                         f"{ho[last]:.3f}; train pairs end at {tr.get(last, float('nan')):.3f}.")
    return "\n".join(lines)


def report(records: list[dict]):
    """Analysis.ipynb's section for notebook 06, from records only (no torch)."""

    rep = Report(TITLE, records)
    ex = by_experiment(rep.records)
    one = {k: v[0] for k, v in ex.items() if k in SECTIONS}
    sft_recs = {r["variant"]: r for r in ex.get("sft", [])}
    dpo_recs = {r["variant"]: r for r in ex.get("dpo", [])}
    if sft_recs:
        rep.figure("SFT variants and DPO curves", curves_figure(sft_recs, dpo_recs))
        if "baseline" in sft_recs:
            rep.table("SFT variants against the baseline (held-out answer loss, paired bootstrap)",
                      comparison_table(sft_recs))
    if "e_compare" in one:
        rep.table("untuned vs SFT vs DPO (held-out)", compare_table(one["e_compare"]))
        rep.table("answers to held-out words", answers_table(one["e_compare"]))
    if "c_lessons" in one:
        for k, df in lessons_tables(one["c_lessons"]).items():
            rep.table(k.replace("_", " "), df)
    if all(s in one for s in SECTIONS) and "baseline" in sft_recs:
        rep.text = conclusion(one["a_data"], sft_recs, one["c_lessons"], dpo_recs, one["e_compare"])
    return rep
