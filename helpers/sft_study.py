"""Notebook 06: LoRA, SFT and DPO of a chat model, seed 004's lessons turned into measured comparisons.

local = SmolLM2-135M-Instruct (offline asset) with LoRA adapters on sense-pinned WordNet definition chats (split by
headword: held-out words are never trained on) and hard-negative preference pairs (helpers/sft.py). full = the base
model HuggingFaceTB/SmolLM2-360M with a ChatML template, SFT on HuggingFaceH4/ultrachat_200k, DPO on
HuggingFaceH4/ultrafeedback_binarized, bf16 on CUDA.

Records (experiment / variant):
  a_data       the data: how prompts were pinned and negatives found, length-only accuracy, the untuned model
  sft/*        one SFT run each: baseline (prompt-masked loss, long examples dropped, cosine with warmup, batch 8),
               whole-sequence (the author's loss), truncate, plateau (the author's ReduceLROnPlateau), accum-1 /
               accum-4 (the same examples in micro-batches of 2, one update per 1 or 4 of them)
  c_lessons    evaluation-only: length-biased vs unfiltered validation, the share of time spent evaluating, the worst
               held-out examples, attention implementations, resources per run
  dpo/*        DPO from the merged SFT model (a fresh LoRA; the SFT model is the reference): sigmoid (DPO) and ipo
  e_compare    base vs SFT vs DPO from the saved adapters: answer loss, preference accuracy, definition F1, answers
Adapters are kept under checkpoints/06_sft_dpo/<run id>/ (git-ignored); a rerun reuses them (FORCE=1 retrains).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from .sft import DPOSettings, LoraSettings, SFTSettings
from .sweep import Point

NOTEBOOK = "06_sft_dpo"
TITLE = "LoRA, SFT and DPO of a chat model (seed 004)"
DATA = ("wordnet", "ultra")
SFT_VARIANTS = ("baseline", "whole-sequence", "truncate", "plateau", "accum-1", "accum-4")
SECTIONS = ("a_data", "c_lessons", "e_compare")


@dataclass
class SFTDPOConfig:
    model: str = "smollm2"
    chat_template: str | None = None       # None: the tokenizer's own; "chatml" for a base model without one
    data: str = "wordnet"                  # wordnet (local) | ultra (UltraChat SFT + UltraFeedback DPO)
    max_length: int = 64                   # tokens of prompt + answer; longer SFT examples are dropped or truncated
    train_rows: int = 2000                 # SFT examples drawn (before the length filter)
    pair_rows: int = 1000                  # DPO training pairs (prompts not used by SFT)
    val_rows: int = 256                    # validation chats (the biased-vs-unfiltered comparison)
    test_rows: int = 256                   # held-out chats: answer loss
    test_pairs: int = 256                  # held-out preference pairs
    gen_rows: int = 48                     # held-out prompts answered greedily (definition F1)
    gen_tokens: int = 40
    show_words: int = 8
    worst_k: int = 5
    accum_examples: int = 400              # the accumulation comparison: examples seen by both arms
    accum_micro: int = 2                   # its micro-batch
    dpo_losses: tuple = ("sigmoid", "ipo")
    speed_batch: int = 8                   # the attention-implementation timing: batch x speed_length tokens
    speed_length: int | None = None        # None: max_length
    lora: LoraSettings = field(default_factory=LoraSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    dpo: DPOSettings = field(default_factory=DPOSettings)

    def __post_init__(self):
        for name, cls in (("lora", LoraSettings), ("sft", SFTSettings), ("dpo", DPOSettings)):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, cls(**getattr(self, name)))
        if self.data not in DATA:
            raise ValueError(f"unknown data '{self.data}'; allowed: {', '.join(DATA)}")
        for name in ("max_length", "train_rows", "pair_rows", "val_rows", "test_rows", "test_pairs", "accum_micro"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.accum_examples < 4 * self.accum_micro:
            raise ValueError(f"accum_examples ({self.accum_examples}) must hold at least 4 micro-batches of "
                             f"{self.accum_micro}")


PROFILES = {
    "tiny": SFTDPOConfig(model="smollm2-tiny", speed_batch=1, speed_length=16, train_rows=24, pair_rows=8, val_rows=8, test_rows=8, test_pairs=8, gen_rows=2, gen_tokens=8,
                         show_words=2, worst_k=2, accum_examples=8, accum_micro=1, lora=LoraSettings(r=4, alpha=8),
                         sft=SFTSettings(steps=2, batch_size=2, eval_every=1, eval_rows=4, warmup_steps=1, log_every=1),
                         dpo=DPOSettings(steps=2, batch_size=2, eval_every=1, eval_rows=4, log_every=1)),
    # local: sized for 2 CPU cores, where a LoRA step of SmolLM2-135M on 8 x ~60 tokens takes ~3.5 s and scoring
    # one held-out answer ~0.17 s (measured): 30 steps of 4 chats already move the answer loss by > 0.5 nats
    "local": SFTDPOConfig(train_rows=400, pair_rows=200, val_rows=128, test_rows=96, test_pairs=96, gen_rows=32,
                          gen_tokens=32, accum_examples=64, speed_batch=4,
                          sft=SFTSettings(steps=30, batch_size=4, warmup_steps=3, eval_every=10, eval_rows=32),
                          dpo=DPOSettings(steps=20, batch_size=4, eval_every=10, eval_rows=16)),
    # full: a base model taught to chat, sized for about two hours on one 80 GB GPU (python -m helpers plan)
    "full": SFTDPOConfig(model="HuggingFaceTB/SmolLM2-360M", chat_template="chatml", data="ultra", max_length=1024,
                         train_rows=20_000, pair_rows=8_000, val_rows=1_000, test_rows=1_000, test_pairs=1_000,
                         gen_rows=128, gen_tokens=128, accum_examples=4_000, accum_micro=4,
                         sft=SFTSettings(steps=1_000, batch_size=16, lr=2e-4, warmup_steps=50, eval_every=100,
                                         eval_rows=500, log_every=10),
                         dpo=DPOSettings(steps=400, batch_size=16, lr=5e-5, eval_every=50, eval_rows=200,
                                         log_every=10)),
}


# ------------------------------------------------------------------------------------------------ data
_MEMO: dict = {}


def load_rows(cfg: SFTDPOConfig) -> tuple[dict, dict]:
    """{part: rows} for the parts every section uses, and the counts of how the data was made. Fixed data seed 0:
    the training seed changes the order and initialisation, never which examples exist."""
    import random

    from . import sft

    if cfg.data == "wordnet":
        from .data import load_corpus

        split, counts = sft.wordnet_chats(load_corpus("wordnet"))
        train, val, test = split["train"], split["validation"], split["test"]
        for i, rows in enumerate((train, val, test)):      # the files are in WordNet order (nouns first)
            random.Random(i).shuffle(rows)
        pairs_train = [r for r in train[cfg.train_rows:] if r["rejected"]]
        test_pairs = [r for r in test if r["rejected"]]
    else:
        from datasets import load_dataset

        from . import hub

        def split(repo, name):
            return hub.call(f"{repo} ({name})", load_dataset, repo, split=name)

        chat, prefs = "HuggingFaceH4/ultrachat_200k", "HuggingFaceH4/ultrafeedback_binarized"
        train = sft.chats_from_messages(split(chat, "train_sft").shuffle(seed=0), cfg.train_rows)
        test = sft.chats_from_messages(split(chat, "test_sft"), cfg.val_rows + cfg.test_rows)
        val, test = test[:cfg.val_rows], test[cfg.val_rows:]
        pairs_train = sft.pairs_from_preferences(split(prefs, "train_prefs").shuffle(seed=0), cfg.pair_rows)
        test_pairs = sft.pairs_from_preferences(split(prefs, "test_prefs"), cfg.test_pairs)
        counts = {"train": {"SFT chats": len(train), "preference pairs": len(pairs_train)}}
    parts = {"sft_train": train[:cfg.train_rows], "dpo_train": pairs_train[:cfg.pair_rows], "val": val[:cfg.val_rows],
             "test": test[:cfg.test_rows], "test_pairs": test_pairs[:cfg.test_pairs], "gen": test[:cfg.gen_rows]}
    return parts, counts


def data_key(cfg: SFTDPOConfig) -> dict:
    keys = ("model", "chat_template", "data", "max_length", "train_rows", "pair_rows", "val_rows", "test_rows",
            "test_pairs", "gen_rows", "gen_tokens")
    return {k: getattr(cfg, k) for k in keys}


def prepare(run) -> dict:
    """Tokenizer, rows and their encodings, shared by every section (kept for the kernel's lifetime)."""
    from . import sft
    from .data import load_tokenizer

    cfg = run.cfg
    key = str(data_key(cfg))
    if key in _MEMO:
        return _MEMO[key]
    t0 = time.perf_counter()
    tok = sft.ensure_chat_template(load_tokenizer(sft.tokenizer_name(cfg.model)), cfg.chat_template)
    parts, counts = load_rows(cfg)
    enc = {p: sft.encode_rows(tok, parts[p]) for p in ("sft_train", "val", "test")}
    enc_pairs = {k: sft.encode_rows(tok, parts["test_pairs"], k) for k in ("chosen", "rejected")}
    data = {"tok": tok, "parts": parts, "enc": enc, "enc_pairs": enc_pairs, "counts": counts,
            "lengths": {p: [len(r["input_ids"]) for r in e] for p, e in enc.items()},
            "prepare_s": time.perf_counter() - t0}
    _MEMO[key] = data
    return data


def base_model(cfg: SFTDPOConfig, device: str = "cpu"):
    from .sft import load_chat_model

    return load_chat_model(cfg.model, device)


def evaluate(model, data, cfg: SFTDPOConfig, quality: bool = True, pairs: bool = True, ref: dict | None = None) -> dict:
    """Held-out answer loss (with the per-row sums, for paired comparisons), (pairs) preference accuracy on held-out
    pairs, and (quality) greedy answers with their token F1 against the reference gloss."""
    import numpy as np

    from . import sft

    loss = sft.answer_loss(model, data["enc"]["test"])
    out = {"metrics": {"test_loss": loss["loss"], "test_loss_lo": loss["lo"], "test_loss_hi": loss["hi"],
                       "test_rows": loss["n"]},
           "rows": {"loss_sum": loss["seq_loss_sum"], "tokens": loss["seq_tokens"]}, "logps": {}}
    if pairs:
        logps = sft.pair_logps(model, data["enc_pairs"])
        out["metrics"].update({f"pref.{k}": v for k, v in sft.preference(logps, ref, cfg.dpo.beta).items()})
        out["logps"] = {k: v.tolist() for k, v in logps.items()}
    if quality:
        gen = data["parts"]["gen"]
        answers = sft.generate(model, data["tok"], [r["prompt"] for r in gen], cfg.gen_tokens)
        f1 = [sft.token_f1(a, r["completion"][0]["content"]) for a, r in zip(answers, gen)]
        out["metrics"].update(f1=float(np.mean(f1)), f1_se=float(np.std(f1, ddof=1) / np.sqrt(len(f1)))
                              if len(f1) > 1 else float("nan"), f1_rows=len(f1))
        out["answers"] = answers
    return out


def _as_tables(ev: dict) -> dict:
    n = len(ev["rows"]["loss_sum"])
    tables = {"test_rows": [{"loss_sum": ev["rows"]["loss_sum"][i], "tokens": ev["rows"]["tokens"][i]}
                            for i in range(n)],
              "pair_logps": [{"chosen": c, "rejected": r} for c, r in zip(ev["logps"].get("chosen", []),
                                                                          ev["logps"].get("rejected", []))]}
    if "answers" in ev:
        tables["answers"] = [{"answer": a} for a in ev["answers"]]
    return tables


# ------------------------------------------------------------------------------------------------ a. data
def data_section(run, data, force: bool = False) -> dict:
    """Record a_data: how the chats and pairs were made, and the untuned model on the held-out sets."""
    from . import sft
    from .results import find_record, run_config, save_result

    cfg = run.cfg
    config = data_key(cfg)
    rec = None if force else find_record(run.notebook, "untuned", run_config(run, config), run.seed)
    if rec:
        return rec
    model = base_model(cfg, run.device)
    ev = evaluate(model, data, cfg)
    lengths = data["lengths"]["sft_train"]
    counts = [{"split": s, "what": k, "rows": v} for s, c in data["counts"].items() for k, v in c.items()]
    metrics = {**ev["metrics"], "length_only_acc": sft.length_only_accuracy(data["tok"], data["parts"]["test_pairs"]),
               "sft_rows": len(lengths), "over_max_length": sum(n > cfg.max_length for n in lengths),
               "pairs_train": len(data["parts"]["dpo_train"]), "prepare_s": round(data["prepare_s"], 1)}
    examples = [{"prompt": r["prompt"][-1]["content"], "chosen": r["chosen"][0]["content"],
                 "rejected": r["rejected"][0]["content"], "negative": r["kind"]}
                for r in data["parts"]["test_pairs"][:6]]
    return save_result(run, "a_data", "untuned", {"metrics": metrics, "tables": {
        "counts": counts, "examples": examples, "length_hist": _hist(lengths), **_as_tables(ev)}}, config=config)


def _hist(lengths: list[int], width: int = 8) -> list[dict]:
    from collections import Counter

    c = Counter(n // width * width for n in lengths)
    return [{"from": k, "to": k + width - 1, "rows": c[k]} for k in sorted(c)]


# ------------------------------------------------------------------------------------------------ SFT runs
def variant_settings(cfg: SFTDPOConfig, variant: str) -> tuple[SFTSettings, int]:
    """(SFT settings, training rows used) of one named SFT variant; everything else as the baseline."""
    s = cfg.sft
    if variant == "baseline":
        return s, cfg.train_rows
    if variant == "whole-sequence":
        return dataclasses.replace(s, completion_only=False), cfg.train_rows
    if variant == "truncate":
        return dataclasses.replace(s, long="truncate"), cfg.train_rows
    if variant == "plateau":
        return dataclasses.replace(s, scheduler="plateau", warmup_steps=0), cfg.train_rows
    if variant in ("accum-1", "accum-4"):
        accum = int(variant.split("-")[1])
        steps = max(1, cfg.accum_examples // (cfg.accum_micro * accum))
        return dataclasses.replace(s, batch_size=cfg.accum_micro, grad_accum=accum, steps=steps, log_every=1,
                                   warmup_steps=max(1, s.warmup_steps * steps // s.steps),
                                   eval_every=steps), cfg.train_rows
    raise ValueError(f"unknown SFT variant '{variant}'; allowed: {', '.join(SFT_VARIANTS)}")


def sft_key(cfg: SFTDPOConfig, variant: str) -> dict:
    s, _ = variant_settings(cfg, variant)
    return {**data_key(cfg), "lora": dataclasses.asdict(cfg.lora), "sft": dataclasses.asdict(s)}


def adapter_dir(run, variant: str, key: dict) -> Path:
    from .paths import checkpoints_dir
    from .results import run_config, run_id

    return checkpoints_dir() / run.notebook / run_id(variant, run_config(run, key), run.seed)


def sft_job(cfg: SFTDPOConfig, variant: str, data: dict, out_dir: str, quality: bool, seed: int, device: str) -> dict:
    """Train one SFT variant, save its adapter to out_dir, and score it on the held-out sets."""
    import numpy as np

    from . import sft

    s, _ = variant_settings(cfg, variant)
    rows, lengths = data["parts"]["sft_train"], data["lengths"]["sft_train"]
    train, kept = sft.fit_length(rows, lengths, cfg.max_length, s.long)
    val = [r for r, n in zip(data["parts"]["val"], data["lengths"]["val"]) if n <= cfg.max_length][:s.eval_rows]
    model = base_model(cfg, device)
    res = sft.train_sft(model, data["tok"], train, val, s, cfg.lora, cfg.max_length, device, seed)
    res["model"].save_pretrained(out_dir)
    ev = evaluate(res["model"], data, cfg, quality=quality, pairs=variant == "baseline")
    g = np.array(list(res["curves"]["grad_norm"].values()))
    tail = g[len(g) // 2:] if len(g) > 1 else g
    metrics = {**res["metrics"], **ev["metrics"], **{f"data.{k}": v for k, v in kept.items()},
               "examples_seen": res["metrics"]["steps"] * s.batch_size * s.grad_accum,
               "grad_norm_mean": float(tail.mean()) if len(tail) else None,
               "grad_norm_cv": float(tail.std(ddof=1) / tail.mean()) if len(tail) > 1 else None}
    return {"metrics": metrics, "curves": res["curves"], "tables": _as_tables(ev),
            "provenance": {**res["provenance"], "adapter_dir": str(out_dir)}}


def sft_runs(run, data, variants: tuple, force: bool = False, quality: tuple = ("baseline", "whole-sequence")) -> dict:
    """{variant: record} of SFT runs, trained unless recorded with their adapter."""
    points = []
    for v in variants:
        key = sft_key(run.cfg, v)
        points.append(Point("sft", v, (run.cfg, v, data, str(adapter_dir(run, v, key)), v in quality), key))
    return _runs_with_adapters(run, points, sft_job, 3, force, "SFT runs")


def _runs_with_adapters(run, points: list, fn, at: int, force: bool, desc: str) -> dict:
    """run_points, except that a recorded run whose adapter folder (points' args[at]) is gone is trained again: the
    record alone cannot serve DPO or the comparison. Returns {variant: record}."""
    from .sweep import run_points

    def again(p, seed):
        return force or not (Path(p.args[at]) / "adapter_config.json").exists()

    recs = run_points(run, points, fn, force=again, desc=desc)
    return {p.variant: recs[p.variant, run.seed] for p in points}


# ------------------------------------------------------------------------------------------------ b. masking
def masking(run, data, force: bool = False) -> dict:
    """The author's whole-sequence loss vs the prompt-masked loss."""
    return sft_runs(run, data, ("baseline", "whole-sequence"), force)


def paired(a: dict, b: dict) -> dict:
    """Held-out answer-loss difference b - a on the same rows, with a paired bootstrap 95% interval."""
    from .evaluate import paired_bootstrap

    def rows(r):
        t = r["tables"]["test_rows"]
        return {"seq_loss_sum": [x["loss_sum"] for x in t], "seq_tokens": [x["tokens"] for x in t]}

    return paired_bootstrap(rows(a), rows(b))


def comparison_table(recs: dict, reference: str = "baseline"):
    """One row per SFT variant: held-out answer loss, its difference from the reference run with a paired
    interval, definition F1, training figures."""
    import pandas as pd

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
    return pd.DataFrame(out).set_index("variant")


# ------------------------------------------------------------------------------------------------ c. lessons
def lessons(run, data, force: bool = False) -> dict:
    """The author's other lessons: the SFT variants, plus the evaluation-only record c_lessons."""
    recs = sft_runs(run, data, SFT_VARIANTS, force)
    recs["lessons"] = lessons_record(run, data, recs, force)
    return recs


def lessons_record(run, data, recs: dict, force: bool = False) -> dict:
    from peft import PeftModel

    from . import sft
    from .results import find_record, run_config, save_result

    cfg = run.cfg
    config = {**sft_key(cfg, "baseline"), "worst_k": cfg.worst_k, "speed": [cfg.speed_batch, cfg.speed_length],
              "variants": [sft_key(cfg, v)["sft"] for v in SFT_VARIANTS]}
    rec = None if force else find_record(run.notebook, "baseline-model", run_config(run, config), run.seed)
    if rec:
        return rec
    model = PeftModel.from_pretrained(base_model(cfg, run.device), recs["baseline"]["provenance"]["adapter_dir"])
    # validation as the author built it (filtered by length like the training set) vs all of it: one pass over the
    # unfiltered rows, the filtered loss from the same per-row sums
    val, short = data["enc"]["val"], [n <= cfg.max_length for n in data["lengths"]["val"]]
    bias = []
    for name, m in (("untuned", base_model(cfg, run.device)), ("SFT baseline", model)):
        u = sft.answer_loss(m, val)
        f_sum = sum(x for x, k in zip(u["seq_loss_sum"], short) if k)
        f_tok = sum(x for x, k in zip(u["seq_tokens"], short) if k)
        bias.append({"model": name, "filtered loss": f_sum / f_tok, "filtered rows": sum(short),
                     "unfiltered loss": u["loss"], "unfiltered rows": u["n"], "bias": f_sum / f_tok - u["loss"]})
    # the worst held-out answers of the SFT model
    per_row = [x["loss_sum"] / max(x["tokens"], 1) for x in recs["baseline"]["tables"]["test_rows"]]
    worst = sorted(range(len(per_row)), key=lambda i: -per_row[i])[:cfg.worst_k]
    test = data["parts"]["test"]
    answers = sft.generate(model, data["tok"], [test[i]["prompt"] for i in worst], cfg.gen_tokens)
    worst_rows = [{"loss": per_row[i], "prompt": test[i]["prompt"][-1]["content"],
                   "reference": test[i]["completion"][0]["content"], "generation": a} for i, a in zip(worst, answers)]
    speeds = sft.attention_speeds(cfg.model, run.device, cfg.speed_length or cfg.max_length, cfg.speed_batch)
    resources = [{"run": v, "wall s": r["metrics"]["wall_s"], "eval share": r["metrics"]["eval_share"],
                  "peak MB": r["provenance"].get("peak_mem_mb"), "memory": r["provenance"].get("peak_mem_kind"),
                  "GPU util %": r["metrics"].get("gpu_util_mean")} for v, r in recs.items() if v in SFT_VARIANTS]
    m = recs["baseline"]["metrics"]
    return save_result(run, "c_lessons", "baseline-model", {
        "metrics": {"bias_untuned": bias[0]["bias"], "bias_sft": bias[1]["bias"], "eval_share": m["eval_share"]},
        "tables": {"validation_bias": bias, "worst": worst_rows, "attention": speeds, "resources": resources,
                   "eval_frequency": eval_frequency(m, cfg.sft.eval_every)}}, config=config)


def eval_frequency(m: dict, measured_every: int) -> list[dict]:
    """Share of wall time spent evaluating at several evaluation intervals, projected from the baseline run's
    measured time per training step and per evaluation (its own interval is the measured row)."""
    evals = max(1, round(m["steps"] / measured_every))
    per_eval, per_step = m["eval_s"] / evals, (m["wall_s"] - m["eval_s"]) / m["steps"]
    rows = []
    for every in sorted(e for e in {1, 5, measured_every, 100, m["steps"]} if e <= m["steps"]):
        e = per_eval * max(1, m["steps"] // every)
        rows.append({"eval every": every, "eval share": e / (e + per_step * m["steps"]),
                     "source": "measured" if every == measured_every else "projected"})
    return rows


# ------------------------------------------------------------------------------------------------ d. DPO
def dpo_key(cfg: SFTDPOConfig, loss_type: str) -> dict:
    return {**sft_key(cfg, "baseline"), "dpo": dataclasses.asdict(dataclasses.replace(cfg.dpo, loss_type=loss_type))}


def dpo_job(cfg: SFTDPOConfig, loss_type: str, data: dict, sft_dir: str, out_dir: str, ref_test: dict, seed: int,
            device: str) -> dict:
    """Merge the SFT adapter, train a fresh LoRA with DPO, save it, and score it against the SFT reference
    (ref_test: the SFT model's log-probs of the held-out pairs, {"chosen": [...], "rejected": [...]})."""
    import numpy as np

    from peft import PeftModel

    from . import sft

    if not (Path(sft_dir) / "adapter_config.json").exists():
        raise FileNotFoundError(f"DPO needs the SFT baseline's adapter at {sft_dir}, which is not there: run the SFT "
                                "section (S.masking) first, or set FORCE=1 to retrain it")
    s = dataclasses.replace(cfg.dpo, loss_type=loss_type)
    model = sft.merged(PeftModel.from_pretrained(base_model(cfg, device), sft_dir))
    probe_sets = {"train": data["parts"]["dpo_train"][:s.eval_rows], "heldout": data["parts"]["test_pairs"][:s.eval_rows]}
    enc = {n: {k: sft.encode_rows(data["tok"], rows, k) for k in ("chosen", "rejected")} for n, rows in probe_sets.items()}
    ref = {n: sft.pair_logps(model, e) for n, e in enc.items()}          # the SFT model = DPO's reference

    def probe(m):
        out = {}
        for n, e in enc.items():
            p = sft.preference(sft.pair_logps(m, e), ref[n], s.beta)
            out[f"{n}_reward_acc"], out[f"{n}_likelihood_acc"] = p["reward_acc"], p["likelihood_acc"]
        return out

    res = sft.train_dpo(model, data["tok"], data["parts"]["dpo_train"], s, cfg.lora, cfg.max_length, probe, device,
                        seed)
    res["model"].save_pretrained(out_dir)
    ev = evaluate(res["model"], data, cfg, quality=True, ref={k: np.asarray(v) for k, v in ref_test.items()})
    return {"metrics": {**res["metrics"], **ev["metrics"]}, "curves": res["curves"], "tables": _as_tables(ev),
            "provenance": {**res["provenance"], "adapter_dir": str(out_dir), "sft_adapter_dir": sft_dir}}


def dpo(run, data, sft_recs: dict, force: bool = False) -> dict:
    """{loss_type: record}: DPO runs from the SFT baseline, one per preference loss."""
    base = sft_recs["baseline"]
    sft_dir = base["provenance"]["adapter_dir"]
    ref = {k: [row[k] for row in base["tables"]["pair_logps"]] for k in ("chosen", "rejected")}   # recorded
    points = []
    for lt in run.cfg.dpo_losses:
        key = dpo_key(run.cfg, lt)
        points.append(Point("dpo", lt, (run.cfg, lt, data, sft_dir, str(adapter_dir(run, lt, key)), ref), key))
    return _runs_with_adapters(run, points, dpo_job, 4, force, "DPO runs")


# ------------------------------------------------------------------------------------------------ e. comparison
def compare(run, data, untuned: dict, sft_recs: dict, dpo_recs: dict, force: bool = False) -> dict:
    """Untuned vs SFT vs DPO on the held-out sets, from their records (answer loss paired against the SFT model,
    preference accuracy, definition F1), and the saved adapters reloaded: their greedy answers for a few held-out
    words must be the ones recorded when they were trained (a checkpoint that does not reload is caught here)."""
    from peft import PeftModel

    from . import sft
    from .results import find_record, run_config, save_result

    cfg = run.cfg
    config = {**dpo_key(cfg, "+".join(cfg.dpo_losses)), "show_words": cfg.show_words}
    rec = None if force else find_record(run.notebook, "base-sft-dpo", run_config(run, config), run.seed)
    if rec:
        return rec
    sft_dir = sft_recs["baseline"]["provenance"]["adapter_dir"]
    recs = {"untuned": untuned, "SFT": sft_recs["baseline"], **{f"DPO ({lt})": r for lt, r in dpo_recs.items()}}
    loaders = {"untuned": lambda: base_model(cfg, run.device),
               "SFT": lambda: PeftModel.from_pretrained(base_model(cfg, run.device), sft_dir)}
    for lt, r in dpo_recs.items():
        loaders[f"DPO ({lt})"] = lambda r=r: PeftModel.from_pretrained(sft.merged(loaders["SFT"]()),
                                                                       r["provenance"]["adapter_dir"])
    gen = data["parts"]["gen"][:cfg.show_words]
    rows, deltas, answers, same = [], [], [{"prompt": r["prompt"][-1]["content"],
                                            "reference": r["completion"][0]["content"]} for r in gen], {}
    for name, r in recs.items():
        m = r["metrics"]
        rows.append({"model": name, "test_loss": m["test_loss"], "test_loss_lo": m["test_loss_lo"],
                     "test_loss_hi": m["test_loss_hi"], "pref_acc": m["pref.likelihood_acc"],
                     "pref_acc_se": m["pref.likelihood_acc_se"], "reward_acc": m.get("pref.reward_acc"),
                     "reward_margin": m.get("pref.reward_margin"), "f1": m["f1"], "f1_se": m["f1_se"]})
        if name != "SFT":
            d = paired(recs["SFT"], r)
            deltas.append({"model": name, "minus_sft": d["delta"], "lo": d["lo"], "hi": d["hi"]})
        reloaded = sft.generate(loaders[name](), data["tok"], [g["prompt"] for g in gen], cfg.gen_tokens)
        recorded = [x["answer"] for x in r["tables"]["answers"][:len(gen)]]
        same[name] = sum(a == b for a, b in zip(reloaded, recorded))
        for row, text in zip(answers, reloaded):
            row[name] = text
    metrics = {f"{row['model']}.{k}": v for row in rows for k, v in row.items() if k != "model"}
    metrics.update({f"{name}.reloaded_answers_same": n for name, n in same.items()}, show_words=len(gen))
    return save_result(run, "e_compare", "base-sft-dpo",
                       {"metrics": metrics, "tables": {"models": rows, "loss_vs_sft": deltas, "answers": answers}},
                       config=config)


# ------------------------------------------------------------------------------------------------ tables, figures
def pd_table(record: dict, name: str):
    """One of a record's tables as a DataFrame."""
    import pandas as pd

    return pd.DataFrame(record["tables"][name])


def compare_table(e: dict):
    import pandas as pd

    df = pd.DataFrame(e["tables"]["models"]).set_index("model")
    d = {r["model"]: f"{r['minus_sft']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]" for r in e["tables"]["loss_vs_sft"]}
    df["loss minus SFT [95% CI]"] = [d.get(m, "") for m in df.index]
    return df


def answers_table(e: dict):
    import pandas as pd

    return pd.DataFrame(e["tables"]["answers"])


def lessons_tables(c: dict) -> dict:
    import pandas as pd

    return {k: pd.DataFrame(c["tables"][k]) for k in ("validation_bias", "eval_frequency", "worst", "attention",
                                                        "resources")}


def curves_figure(sft_recs: dict, dpo_recs: dict):
    """SFT eval loss per variant, and DPO's train vs held-out reward accuracy over steps."""
    import matplotlib.pyplot as plt

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
                 f"{max(ma['length_only_acc'], 1 - ma['length_only_acc']):.3f}: the bar a preference accuracy must clear "
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
    from .analysis import Report, by_experiment

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
