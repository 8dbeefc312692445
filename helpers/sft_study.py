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
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import load_dataset
from peft import PeftModel

from . import hub, sft
from .data import ensure_chat_template, load_corpus, load_tokenizer
from .memory import counts, training_plan
from .models import smollm2_config
from .paths import checkpoints_dir
from .planning import NotebookPlan, lora_params, train_seconds
from .results import recorded, run_config, run_id, save_result
from .sft import DPOSettings, LoraSettings, SFTSettings, load_chat_model
from .sft_report import SFT_VARIANTS, paired
from .sweep import Point, run_points

DATA = ("wordnet", "ultra")


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
    "tiny": SFTDPOConfig(model="smollm2-tiny", speed_batch=1, speed_length=16, train_rows=24, pair_rows=8, val_rows=8,
                         test_rows=8, test_pairs=8, gen_rows=2, gen_tokens=8,
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

    if cfg.data == "wordnet":
        split, counts = sft.wordnet_chats(load_corpus("wordnet"))
        train, val, test = split["train"], split["validation"], split["test"]
        for i, rows in enumerate((train, val, test)):      # the files are in WordNet order (nouns first)
            random.Random(i).shuffle(rows)
        pairs_train = [r for r in train[cfg.train_rows:] if r["rejected"]]
        test_pairs = [r for r in test if r["rejected"]]
    else:
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

    cfg = run.cfg
    key = str(data_key(cfg))
    if key in _MEMO:
        return _MEMO[key]
    t0 = time.perf_counter()
    tok = ensure_chat_template(load_tokenizer(sft.tokenizer_name(cfg.model)), cfg.chat_template)
    parts, counts = load_rows(cfg)
    enc = {p: sft.encode_rows(tok, parts[p]) for p in ("sft_train", "val", "test")}
    enc_pairs = {k: sft.encode_rows(tok, parts["test_pairs"], k) for k in ("chosen", "rejected")}
    data = {"tok": tok, "parts": parts, "enc": enc, "enc_pairs": enc_pairs, "counts": counts,
            "lengths": {p: [len(r["input_ids"]) for r in e] for p, e in enc.items()},
            "prepare_s": time.perf_counter() - t0}
    _MEMO[key] = data
    return data


def base_model(cfg: SFTDPOConfig, device: str = "cpu"):
    return load_chat_model(cfg.model, device)


def evaluate(model, data, cfg: SFTDPOConfig, quality: bool = True, pairs: bool = True, ref: dict | None = None) -> dict:
    """Held-out answer loss (with the per-row sums, for paired comparisons), (pairs) preference accuracy on held-out
    pairs, and (quality) greedy answers with their token F1 against the reference gloss."""

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

    cfg = run.cfg
    config = data_key(cfg)
    rec = None if force else recorded(run, "untuned", config)
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
    return checkpoints_dir() / run.notebook / run_id(variant, run_config(run, key), run.seed)


def sft_job(cfg: SFTDPOConfig, variant: str, data: dict, out_dir: str, quality: bool, seed: int, device: str) -> dict:
    """Train one SFT variant, save its adapter to out_dir, and score it on the held-out sets."""

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

    def again(p, seed):
        return force or not (Path(p.args[at]) / "adapter_config.json").exists()

    recs = run_points(run, points, fn, force=again, desc=desc)
    return {p.variant: recs[p.variant, run.seed] for p in points}


# ------------------------------------------------------------------------------------------------ b. masking
def masking(run, data, force: bool = False) -> dict:
    """The author's whole-sequence loss vs the prompt-masked loss."""
    return sft_runs(run, data, ("baseline", "whole-sequence"), force)


# ------------------------------------------------------------------------------------------------ c. lessons
def lessons(run, data, force: bool = False) -> dict:
    """The author's other lessons: the SFT variants, plus the evaluation-only record c_lessons."""
    recs = sft_runs(run, data, SFT_VARIANTS, force)
    recs["lessons"] = lessons_record(run, data, recs, force)
    return recs


def lessons_record(run, data, recs: dict, force: bool = False) -> dict:
    cfg = run.cfg
    config = {**sft_key(cfg, "baseline"), "worst_k": cfg.worst_k, "speed": [cfg.speed_batch, cfg.speed_length],
              "variants": [sft_key(cfg, v)["sft"] for v in SFT_VARIANTS]}
    rec = None if force else recorded(run, "baseline-model", config)
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

    if not (Path(sft_dir) / "adapter_config.json").exists():
        raise FileNotFoundError(f"DPO needs the SFT baseline's adapter at {sft_dir}, which is not there: run the SFT "
                                "section (S.masking) first, or set FORCE=1 to retrain it")
    s = dataclasses.replace(cfg.dpo, loss_type=loss_type)
    model = sft.merged(PeftModel.from_pretrained(base_model(cfg, device), sft_dir))
    probe_sets = {"train": data["parts"]["dpo_train"][:s.eval_rows],
                  "heldout": data["parts"]["test_pairs"][:s.eval_rows]}
    enc = {n: {k: sft.encode_rows(data["tok"], rows, k) for k in ("chosen", "rejected")}
           for n, rows in probe_sets.items()}
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
    cfg = run.cfg
    config = {**dpo_key(cfg, "+".join(cfg.dpo_losses)), "show_words": cfg.show_words}
    rec = None if force else recorded(run, "base-sft-dpo", config)
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
        kept = [x["answer"] for x in r["tables"]["answers"][:len(gen)]]
        same[name] = sum(a == b for a, b in zip(reloaded, kept))
        for row, text in zip(answers, reloaded):
            row[name] = text
    metrics = {f"{row['model']}.{k}": v for row in rows for k, v in row.items() if k != "model"}
    metrics.update({f"{name}.reloaded_answers_same": n for name, n in same.items()}, show_words=len(gen))
    return save_result(run, "e_compare", "base-sft-dpo",
                       {"metrics": metrics, "tables": {"models": rows, "loss_vs_sft": deltas, "answers": answers}},
                       config=config)


# ------------------------------------------------------------------------------------------------ tables, figures


# ------------------------------------------------------------------------------------------------ full-profile plan
def full_plan(notebook: str, b: dict, cfg=None) -> NotebookPlan:
    """The full profile's plan: SFT and DPO steps of LoRA on SmolLM2-360M, held-out scoring (helpers.planning)."""
    cfg = cfg or PROFILES["full"]
    conf = smollm2_config()
    n, lora = counts(conf)["total"], lora_params(conf, cfg.lora)
    s, d, T = cfg.sft, cfg.dpo, cfg.max_length
    plans = [training_plan("06 SFT (LoRA)", conf, s.batch_size, T, "bf16-frozen", trainable=lora),
             # DPO: chosen and rejected of each pair go through the model together
             training_plan("06 DPO (LoRA)", conf, 2 * d.batch_size, T, "bf16-frozen", trainable=lora)]
    sft_tokens = sum(v.steps * v.batch_size * v.grad_accum * T for v in (variant_settings(cfg, x)[0]
                                                                          for x in SFT_VARIANTS))
    dpo_tokens = len(cfg.dpo_losses) * d.steps * 2 * d.batch_size * T
    models_scored = len(SFT_VARIANTS) + 2 * len(cfg.dpo_losses) + 3          # each run, then the comparison
    eval_tokens = models_scored * (cfg.test_rows + 2 * cfg.test_pairs) * T
    case = "06 SmolLM2-360M LoRA SFT step, batch 8"
    return NotebookPlan(notebook, plans, [
        (f"{len(SFT_VARIANTS)} SFT runs (LoRA r={cfg.lora.r}): {sft_tokens / 1e6:.0f}M tokens at <= {T}",
         train_seconds(b, case, n, sft_tokens, flops_per_param=4)),
        # a DPO step: policy forward + backward through the adapters (4 N) and the reference's forward (2 N)
        (f"{len(cfg.dpo_losses)} DPO runs: {dpo_tokens / 1e6:.0f}M tokens", train_seconds(b, case, n, dpo_tokens, 6)),
        (f"held-out scoring of {models_scored} models: {eval_tokens / 1e6:.1f}M tokens",
         train_seconds(b, case, n, eval_tokens, 2)),
    ], b.get("gpu"), "tokens counted at max_length (sequences are padded to the longest of their batch); greedy "
       "generation and the DPO accuracy probes are not counted")
