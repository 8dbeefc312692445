"""Notebook 06: LoRA, SFT and DPO of a chat model, seed 004's lessons turned into comparisons over training seeds.

local = SmolLM2-135M-Instruct (offline asset) with LoRA adapters on sense-pinned WordNet definition chats (split by
headword: held-out words are never trained on). DPO's main task is on-policy (the UltraFeedback-style recipe): the SFT
model answers prompts it was not tuned on; where its answer is wrong (token F1 against the gloss below max_f1) the
pair is chosen = the gloss, rejected = its own answer; held-out pairs come from held-out headwords. The WordNet
hard-negative pairs (another sense's or a sibling's gloss: fluent, correct-looking definitions) are kept beside it as
the labelled hard case. full = the base model HuggingFaceTB/SmolLM2-360M with a ChatML template, SFT on
HuggingFaceH4/ultrachat_200k, DPO on HuggingFaceH4/ultrafeedback_binarized, bf16 on CUDA.

Records (experiment / variant), each run over training seeds:
  a_data       the data and the untuned model on the held-out sets
  sft/*        baseline (prompt-masked loss, long examples dropped, cosine with warmup) x cfg.seeds and each lesson
               arm x cfg.lesson_seeds: whole-sequence loss, truncate, plateau (ReduceLROnPlateau, set to cut), accum-1
               / accum-4 (equal examples) / accum-4-steps (equal optimizer steps)
  c_lessons    evaluation-only: length-filtered vs unfiltered validation, evaluation cost, worst answers, attention
  d_pairs      the preference pairs: on-policy train / validation / held-out, and the SFT model's log-probs of them
  dpo_search/* short DPO runs over (beta, lr), scored on validation pairs (never the held-out ones)
  dpo/*        DPO from the merged SFT model (a fresh LoRA; the SFT model is the reference, its log-probs computed
               once), each loss x cfg.dpo_seeds, at the searched (beta, lr)
  e_compare    generations side by side and, where the adapters are on this machine, the reload check
Every number the report compares (per-row losses, per-pair log-probs, answers) is in the run records, so a fresh
clone loads them; adapters (checkpoints/06_sft_dpo/, git-ignored) are needed only to train what is not recorded.
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from peft import PeftModel

from ..memory import counts, training_plan
from ..models import smollm2_config
from ..paths import checkpoints_dir
from ..planning import NotebookPlan, lora_params, train_seconds
from ..results import config_hash, keyed, recorded, save_result
from ..sweep import Point, run_points
from . import trainers as sft
from .chats import data_key, encode_pairs, prepare  # noqa: F401 (prepare: the notebook's S.prepare(run))
from .report import SFT_VARIANTS, chosen_search_point
from .trainers import DPOSettings, LoraSettings, SFTSettings, load_chat_model

DATA = ("wordnet", "ultra")
PAIR_SETS = ("train", "val", "heldout")


@dataclass
class SFTDPOConfig:
    model: str = "smollm2"
    chat_template: str | None = None       # None: the tokenizer's own; "chatml" for a base model without one
    data: str = "wordnet"                  # wordnet (local) | ultra (UltraChat SFT + UltraFeedback DPO)
    max_length: int = 64                   # tokens of prompt + answer; longer SFT examples / pairs are dropped
    system_prompt: str | None = None       # a system message for every chat (None: the template's own default)
    train_rows: int = 2000                 # SFT examples drawn (before the length filter)
    policy_rows: int = 1000                # training prompts (not SFT's) the SFT model answers: DPO's training pairs
    val_rows: int = 256                    # validation chats (the length-bias lesson; the DPO search's pairs)
    test_rows: int = 256                   # held-out chats: answer loss
    heldout_rows: int = 512                # held-out prompts the SFT model answers: the held-out pairs
    hard_pairs: int = 256                  # WordNet hard-negative pairs of held-out words (the labelled hard case)
    gen_rows: int = 48                     # held-out prompts answered greedily (definition F1, length, repeats)
    gen_tokens: int = 40
    max_f1: float = 0.3                    # an answer with token F1 below this against the gloss is wrong
    show_words: int = 8
    worst_k: int = 5
    seeds: tuple = (0, 1, 2)               # the SFT baseline's training seeds
    lesson_seeds: tuple = (0, 1)           # each lesson arm's
    accum_examples: int = 400              # the accumulation comparison: examples of accum-1 and accum-4
    accum_micro: int = 2                   # its micro-batch
    dpo_losses: tuple = ("sigmoid", "ipo")
    dpo_seeds: tuple = (0, 1)
    dpo_search: tuple = ((0.1, 5e-4), (0.5, 5e-4), (0.5, 2e-3))   # (beta, lr) tried on validation pairs
    search_steps: int = 20
    probe_pairs: int = 64                  # held-out pairs scored every dpo.eval_every steps (all of them at the end)
    speed_batch: int = 8                   # the attention-implementation timing: batch x speed_length tokens
    speed_length: int | None = None        # None: max_length
    workers: int = 1                       # CPU: runs side by side, one process and one thread each
    lora: LoraSettings = field(default_factory=LoraSettings)
    sft: SFTSettings = field(default_factory=SFTSettings)
    dpo: DPOSettings = field(default_factory=DPOSettings)

    def __post_init__(self):
        for name, cls in (("lora", LoraSettings), ("sft", SFTSettings), ("dpo", DPOSettings)):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, cls(**getattr(self, name)))
        if self.data not in DATA:
            raise ValueError(f"unknown data '{self.data}'; allowed: {', '.join(DATA)}")
        for name in ("max_length", "train_rows", "policy_rows", "val_rows", "test_rows", "heldout_rows",
                     "accum_micro", "search_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.accum_examples < 4 * self.accum_micro:
            raise ValueError(f"accum_examples ({self.accum_examples}) must hold at least 4 micro-batches of "
                             f"{self.accum_micro}")
        if not 0 < self.max_f1 <= 1:
            raise ValueError(f"max_f1 must lie in (0, 1], got {self.max_f1}")
        for name in ("seeds", "lesson_seeds", "dpo_seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name} must name at least one seed")
        for beta, lr in self.dpo_search:
            DPOSettings(beta=beta, lr=lr)          # beta and lr > 0, refused now rather than mid-notebook


PROFILES = {
    "tiny": SFTDPOConfig(model="smollm2-tiny", speed_batch=1, speed_length=16, train_rows=24, policy_rows=16,
                         val_rows=8, test_rows=8, heldout_rows=12, hard_pairs=8, gen_rows=2, gen_tokens=8,
                         max_f1=1.0, show_words=2, worst_k=2, seeds=(0, 1), lesson_seeds=(0, 1), accum_examples=8,
                         accum_micro=1, dpo_seeds=(0,), dpo_search=((0.1, 5e-4), (0.5, 5e-4)), search_steps=1,
                         lora=LoraSettings(r=4, alpha=8),
                         sft=SFTSettings(steps=2, batch_size=2, eval_every=1, eval_rows=4, warmup_steps=1, log_every=1),
                         dpo=DPOSettings(steps=2, batch_size=2, eval_every=1, log_every=1)),
    # local: 2 CPU cores, two runs side by side (see the notebook's header for what each section costs)
    "local": SFTDPOConfig(system_prompt="Define words briefly.", train_rows=400, policy_rows=320, val_rows=96,
                          test_rows=96, heldout_rows=448, hard_pairs=96, gen_rows=32, gen_tokens=32,
                          accum_examples=64, speed_batch=4, workers=2, search_steps=12,
                          dpo_search=((0.1, 1e-3), (0.5, 1e-3), (0.5, 3e-3)), dpo_seeds=(0, 1),
                          sft=SFTSettings(steps=30, batch_size=4, warmup_steps=3, eval_every=10, eval_rows=32),
                          dpo=DPOSettings(steps=40, batch_size=4, eval_every=20)),
    # gpu-small: the full profile's model and data on one 16 GB GPU without bf16 (fp32 frozen weights, fp16 mixed
    # precision), sequences of up to 384 tokens, a tenth of its rows, 50 SFT and 60 DPO steps (1,000 and 400 in
    # full), two seeds for every arm (DPO's too)
    "gpu-small": SFTDPOConfig(model="HuggingFaceTB/SmolLM2-360M", chat_template="chatml", data="ultra",
                              max_length=384, train_rows=2_000, policy_rows=800, val_rows=128, test_rows=128,
                              heldout_rows=128, hard_pairs=0, gen_rows=48, gen_tokens=96, accum_examples=480,
                              accum_micro=4, seeds=(0, 1), lesson_seeds=(0, 1), dpo_seeds=(0, 1), search_steps=20,
                              dpo_search=((0.1, 5e-5), (0.5, 5e-5), (0.1, 2e-4)),
                              sft=SFTSettings(steps=50, batch_size=8, lr=2e-4, warmup_steps=5, eval_every=25,
                                              eval_rows=64, log_every=10),
                              dpo=DPOSettings(steps=60, batch_size=4, lr=5e-5, eval_every=20, log_every=10)),
    # full: a base model taught to chat, sized for about two hours on one 80 GB GPU (python -m helpers plan)
    "full": SFTDPOConfig(model="HuggingFaceTB/SmolLM2-360M", chat_template="chatml", data="ultra", max_length=1024,
                         train_rows=20_000, policy_rows=8_000, val_rows=1_000, test_rows=1_000, heldout_rows=1_000,
                         hard_pairs=0, gen_rows=128, gen_tokens=128, accum_examples=4_000, accum_micro=4,
                         seeds=(0, 1), lesson_seeds=(0, 1), dpo_seeds=(0,), search_steps=100,
                         dpo_search=((0.1, 5e-5), (0.5, 5e-5), (0.1, 2e-4)),
                         sft=SFTSettings(steps=1_000, batch_size=16, lr=2e-4, warmup_steps=50, eval_every=100,
                                         eval_rows=500, log_every=10),
                         dpo=DPOSettings(steps=400, batch_size=16, lr=5e-5, eval_every=100, log_every=10)),
}


# ------------------------------------------------------------------------------------------------ models
def base_model(cfg: SFTDPOConfig, device: str = "cpu"):
    return load_chat_model(cfg.model, device)


def evaluate(model, data, cfg: SFTDPOConfig, pair_sets: dict | None = None, quality: bool = True) -> dict:
    """A record's evaluation of one model: held-out answer loss (per-row sums, for paired comparisons), the summed
    log-probs of every pair's chosen and rejected answer in each of pair_sets {name: encoded pairs} (the hard case
    always), and (quality) greedy answers to the generation prompts with their token F1, length and repeat rate."""
    loss = sft.answer_loss(model, data["enc"]["test"])
    metrics = {"test_loss": loss["loss"], "test_loss_lo": loss["lo"], "test_loss_hi": loss["hi"],
               "test_rows": loss["n"]}
    tables = {"test_rows": [{"loss_sum": s, "tokens": n} for s, n in zip(loss["seq_loss_sum"], loss["seq_tokens"])]}
    sets = {"hard": data["hard"], **(pair_sets or {})}
    for name, enc in sets.items():
        if not enc["chosen"]:
            continue
        lp = sft.pair_logps(model, enc)
        tables[f"logps.{name}"] = [{"chosen": float(c), "rejected": float(r)} for c, r in zip(lp["chosen"],
                                                                                            lp["rejected"])]
        metrics[f"{name}.likelihood_acc"] = float(np.mean(lp["chosen"] > lp["rejected"]))
    if quality:
        gen = data["parts"]["gen"]
        answers = sft.generate(model, data["tok"], [r["prompt"] for r in gen], cfg.gen_tokens)
        rows = [{"answer": a, "f1": sft.token_f1(a, r["completion"][0]["content"]), "words": len(a.split()),
                 "repeat_rate": sft.repeat_rate(a)} for a, r in zip(answers, gen)]
        tables["answers"] = rows
        metrics.update({k: float(np.mean([r[k] for r in rows])) for k in ("f1", "words", "repeat_rate")})
    return {"metrics": metrics, "tables": tables}


# ------------------------------------------------------------------------------------------------ a. data
def data_section(run, data, force: bool = False) -> dict:
    """Record a_data: how the chats and pairs were made, and the untuned model on the held-out sets."""
    cfg = run.cfg
    config = data_key(cfg)
    rec = None if force else recorded(run, "untuned", config)
    if rec:
        return keyed(rec)
    ev = evaluate(base_model(cfg, run.device), data, cfg)
    lengths = data["lengths"]["sft_train"]
    counts = [{"split": s, "what": k, "rows": v} for s, c in data["counts"].items() for k, v in c.items()]
    metrics = {**ev["metrics"], "hard.length_only_acc": sft.length_only_accuracy(data["tok"], data["parts"]["hard"]),
               "sft_rows": len(lengths), "over_max_length": sum(n > cfg.max_length for n in lengths),
               "prepare_s": round(data["prepare_s"], 1)}
    examples = [{"prompt": r["prompt"][-1]["content"], "chosen": r["chosen"][0]["content"],
                 "rejected": r["rejected"][0]["content"], "negative": r["kind"]} for r in data["parts"]["hard"][:6]]
    return keyed(save_result(run, "a_data", "untuned", {"metrics": metrics, "tables": {
        "counts": counts, "examples": examples, "length_hist": _hist(lengths), **ev["tables"]}}, config=config))


def _hist(lengths: list[int], width: int = 8) -> list[dict]:
    c = Counter(n // width * width for n in lengths)
    return [{"from": k, "to": k + width - 1, "rows": c[k]} for k in sorted(c)]


# ------------------------------------------------------------------------------------------------ b. SFT runs
def variant_settings(cfg: SFTDPOConfig, variant: str) -> SFTSettings:
    """The SFT settings of one named variant; everything else as the baseline."""
    s = cfg.sft
    if variant == "baseline":
        return s
    if variant == "whole-sequence":
        return dataclasses.replace(s, completion_only=False)
    if variant == "truncate":
        return dataclasses.replace(s, long="truncate")
    if variant == "plateau":
        # the author's ReduceLROnPlateau, set so that it acts within the run: evaluated every other step, cut by half
        # as soon as the validation loss does not improve (patience 0); the record counts the cuts
        return dataclasses.replace(s, scheduler="plateau", warmup_steps=0, eval_every=2, plateau_patience=0)
    if variant in ("accum-1", "accum-4", "accum-4-steps"):
        accum = 1 if variant == "accum-1" else 4
        steps = max(1, cfg.accum_examples // cfg.accum_micro)           # accum-1's steps over accum_examples
        steps = steps if variant in ("accum-1", "accum-4-steps") else max(1, steps // 4)
        return dataclasses.replace(s, batch_size=cfg.accum_micro, grad_accum=accum, steps=steps, log_every=1,
                                   warmup_steps=max(1, s.warmup_steps * steps // s.steps), eval_every=steps)
    raise ValueError(f"unknown SFT variant '{variant}'; allowed: {', '.join(SFT_VARIANTS)}")


def sft_key(cfg: SFTDPOConfig, variant: str) -> dict:
    return {**data_key(cfg), "lora": dataclasses.asdict(cfg.lora), "sft": dataclasses.asdict(variant_settings(cfg,
                                                                                                          variant))}


def adapter_dir(run, variant: str, key: dict, seed: int) -> Path:
    """Where a run's adapter is kept: checkpoints/06_sft_dpo/<variant>-<config hash>-s<seed> (git-ignored)."""
    return checkpoints_dir() / run.notebook / f"{variant}-{config_hash({'profile': run.profile, **key})}-s{seed}"


def has_adapter(rec: dict) -> bool:
    return (Path(rec["provenance"].get("adapter_dir", "/nonexistent")) / "adapter_config.json").exists()


def _fit_rows(data, cfg, s: SFTSettings):
    rows, lengths = data["parts"]["sft_train"], data["lengths"]["sft_train"]
    train, kept = sft.fit_length(rows, lengths, cfg.max_length, s.long)
    val = [r for r, n in zip(data["parts"]["val"], data["lengths"]["val"]) if n <= cfg.max_length][:s.eval_rows]
    return train, val, kept


def sft_job(cfg: SFTDPOConfig, variant: str, data: dict, root: str, seed: int, device: str) -> dict:
    """Train one SFT variant with one seed, keep its adapter under root-s<seed>, score it on the held-out sets."""
    s = variant_settings(cfg, variant)
    train, val, kept = _fit_rows(data, cfg, s)
    res = sft.train_sft(base_model(cfg, device), data["tok"], train, val, s, cfg.lora, cfg.max_length, device, seed)
    out_dir = f"{root}-s{seed}"
    res["model"].save_pretrained(out_dir)
    ev = evaluate(res["model"], data, cfg)
    g = np.array(list(res["curves"]["grad_norm"].values()))
    tail = g[len(g) // 2:] if len(g) > 1 else g
    metrics = {**res["metrics"], **ev["metrics"], **{f"data.{k}": v for k, v in kept.items()},
               "examples_seen": res["metrics"]["steps"] * s.batch_size * s.grad_accum,
               "grad_norm_mean": float(tail.mean()) if len(tail) else None,
               "grad_norm_cv": float(tail.std(ddof=1) / tail.mean()) if len(tail) > 1 else None}
    return {"metrics": metrics, "curves": res["curves"], "tables": ev["tables"],
            "provenance": {**res["provenance"], "adapter_dir": out_dir}}


def sft_points(run, data) -> list[Point]:
    """The baseline with every seed of cfg.seeds, each lesson arm with cfg.lesson_seeds."""
    cfg = run.cfg
    points = []
    for v in SFT_VARIANTS:
        key = sft_key(cfg, v)
        root = str(adapter_dir(run, v, key, 0))[:-3]
        points.append(Point("sft", v, (cfg, v, data, root), key,
                            seeds=tuple(cfg.seeds if v == "baseline" else cfg.lesson_seeds)))
    return points


def sft_runs(run, data, force: bool = False) -> dict:
    """Section b: every SFT run, {(variant, seed): record}; recorded runs are loaded (their adapters are needed
    only by a later section that still has to run)."""
    return run_points(run, sft_points(run, data), sft_job, None, run.cfg.workers, force, "SFT runs")


def sft_model(run, data, sft_recs: dict, force: bool = False):
    """The SFT baseline (seed 0) as a PEFT model, its adapter trained again first if it is not on this machine."""
    rec = sft_recs["baseline", 0]
    if not has_adapter(rec):
        base = next(p for p in sft_points(run, data) if p.variant == "baseline")
        base = dataclasses.replace(base, seeds=(0,))
        rec = run_points(run, [base], sft_job, None, 1, True, "SFT baseline (adapter not on this machine)")[
            "baseline", 0]
        sft_recs["baseline", 0] = rec
    return PeftModel.from_pretrained(base_model(run.cfg, run.device), rec["provenance"]["adapter_dir"])


# ------------------------------------------------------------------------------------------------ c. lessons
def lessons_record(run, data, sft_recs: dict, force: bool = False) -> dict:
    """Record c_lessons: validation filtered by length (as the author built it) vs all of it, evaluation cost,
    the SFT model's worst held-out answers, attention implementations, resources per run."""
    cfg = run.cfg
    config = {**sft_key(cfg, "baseline"), "worst_k": cfg.worst_k, "speed": [cfg.speed_batch, cfg.speed_length]}
    rec = None if force else recorded(run, "baseline-model", config)
    if rec:
        return keyed(rec)
    model = sft_model(run, data, sft_recs)
    val, short = data["enc"]["val"], [n <= cfg.max_length for n in data["lengths"]["val"]]
    bias = []
    for name, m in (("untuned", base_model(cfg, run.device)), ("SFT baseline", model)):
        u = sft.answer_loss(m, val)
        f_sum = sum(x for x, k in zip(u["seq_loss_sum"], short) if k)
        f_tok = sum(x for x, k in zip(u["seq_tokens"], short) if k)
        bias.append({"model": name, "filtered loss": f_sum / f_tok, "filtered rows": sum(short),
                     "unfiltered loss": u["loss"], "unfiltered rows": u["n"], "bias": f_sum / f_tok - u["loss"]})
    base = sft_recs["baseline", 0]
    per_row = [x["loss_sum"] / max(x["tokens"], 1) for x in base["tables"]["test_rows"]]
    worst = sorted(range(len(per_row)), key=lambda i: -per_row[i])[:cfg.worst_k]
    test = data["parts"]["test"]
    answers = sft.generate(model, data["tok"], [test[i]["prompt"] for i in worst], cfg.gen_tokens)
    worst_rows = [{"loss": per_row[i], "prompt": test[i]["prompt"][-1]["content"],
                   "reference": test[i]["completion"][0]["content"], "generation": a} for i, a in zip(worst, answers)]
    speeds = sft.attention_speeds(cfg.model, run.device, cfg.speed_length or cfg.max_length, cfg.speed_batch)
    resources = [{"run": f"{v} s{s}", "wall s": r["metrics"]["wall_s"], "eval share": r["metrics"]["eval_share"],
                  "peak MB": r["provenance"].get("peak_mem_mb"), "memory": r["provenance"].get("peak_mem_kind")}
                 for (v, s), r in sft_recs.items()]
    m = base["metrics"]
    return keyed(save_result(run, "c_lessons", "baseline-model", {
        "metrics": {"bias_untuned": bias[0]["bias"], "bias_sft": bias[1]["bias"], "eval_share": m["eval_share"]},
        "tables": {"validation_bias": bias, "worst": worst_rows, "attention": speeds, "resources": resources,
                   "eval_frequency": eval_frequency(m, cfg.sft.eval_every)}}, config=config))


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


# ------------------------------------------------------------------------------------------------ d. pairs
def _pair_row(p: dict) -> dict:
    return {"prompt": p["prompt"], "chosen": p["chosen"][0]["content"], "rejected": p["rejected"][0]["content"],
            "f1": p.get("f1"), "word": p.get("word")}


def pairs_from_record(rec: dict, name: str) -> list[dict]:
    """A d_pairs record's pair set as TRL preference rows (conversational prompt / chosen / rejected)."""
    return [{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}], "word": r["word"]}
            for r in rec["tables"][f"pairs.{name}"]]


def preference_pairs(run, data, sft_recs: dict, force: bool = False) -> dict:
    """Section d: the preference pairs and the SFT model's log-probs of them (DPO's reference, and its headroom).
    WordNet: on-policy, from the SFT baseline's greedy answers to training prompts it was not tuned on (train), to
    validation prompts (val, the search) and to held-out prompts (heldout); UltraFeedback: its own pairs. Pairs
    longer than max_length are dropped and counted."""
    cfg = run.cfg
    config = {**sft_key(cfg, "baseline"), "policy_rows": cfg.policy_rows, "heldout_rows": cfg.heldout_rows,
              "max_f1": cfg.max_f1, "gen_tokens": cfg.gen_tokens}
    rec = None if force else recorded(run, "on-policy" if cfg.data == "wordnet" else "ultrafeedback", config)
    if rec:
        return keyed(rec)
    tok, model = data["tok"], sft_model(run, data, sft_recs)
    t0 = time.perf_counter()
    sets, counts = {}, []
    for name, part in (("train", "policy"), ("val", "val"), ("heldout", "heldout")):
        if cfg.data == "wordnet":
            rows = data["parts"][part]
            answers = sft.generate(model, tok, [r["prompt"] for r in rows], cfg.gen_tokens)
            pairs, c = sft.on_policy_pairs(rows, answers, cfg.max_f1)
        else:
            pairs, c = data["parts"][f"pairs.{name}"], {"pairs": len(data["parts"][f"pairs.{name}"])}
        pairs, dropped = sft.drop_long_pairs(tok, pairs, cfg.max_length)
        sft.check_pairs(pairs)
        counts += [{"set": name, "what": k, "rows": v} for k, v in {**c, f"over {cfg.max_length} tokens: dropped":
                                                                    dropped}.items()]
        sets[name] = pairs
    metrics = {"generate_s": round(time.perf_counter() - t0, 1), **{f"{n}.pairs": len(p) for n, p in sets.items()}}
    tables = {"counts": counts, **{f"pairs.{n}": [_pair_row(p) for p in ps] for n, ps in sets.items()}}
    for name in ("val", "heldout"):               # the reference's log-probs (the train set's: TRL precomputes them)
        lp = sft.pair_logps(model, encode_pairs(tok, sets[name]))
        tables[f"ref.{name}"] = [{"chosen": float(c), "rejected": float(r)} for c, r in zip(lp["chosen"],
                                                                                          lp["rejected"])]
        metrics[f"{name}.sft_likelihood_acc"] = float(np.mean(lp["chosen"] > lp["rejected"]))
        metrics[f"{name}.length_only_acc"] = sft.length_only_accuracy(tok, sets[name])
    return keyed(save_result(run, "d_pairs", "on-policy" if cfg.data == "wordnet" else "ultrafeedback",
                             {"metrics": metrics, "tables": tables}, config=config))


# ------------------------------------------------------------------------------------------------ e, f. DPO
def dpo_key(cfg: SFTDPOConfig, s: DPOSettings, pairs_rec: dict) -> dict:
    return {**sft_key(cfg, "baseline"), "pairs": pairs_rec["run_id"], "dpo": dataclasses.asdict(s)}


def dpo_job(cfg: SFTDPOConfig, s: DPOSettings, data: dict, sft_dir: str, pairs: dict, ref: dict, root: str | None,
            seed: int, device: str) -> dict:
    """Merge the SFT adapter, train a fresh LoRA with DPO on pairs["train"], probe the held-out (or, in the search,
    validation) pairs over steps, keep the adapter (root-s<seed>, unless None), and score the model."""
    tok = data["tok"]
    model = sft.merged(PeftModel.from_pretrained(base_model(cfg, device), sft_dir))
    scored = {n: encode_pairs(tok, p) for n, p in pairs.items() if n != "train"}
    k = cfg.probe_pairs                      # the curves over steps score the first k pairs; the final score all
    probed = {n: {c: enc[c][:k] for c in enc} for n, enc in scored.items()}

    def probe(m):
        out = {}
        for n, enc in probed.items():
            lp = sft.pair_logps(m, enc)
            p = sft.preference(lp, {c: np.asarray(v[:k]) for c, v in ref[n].items()}, s.beta)
            out[f"{n}_likelihood_acc"], out[f"{n}_reward_acc"] = p["likelihood_acc"], p["reward_acc"]
        return out

    res = sft.train_dpo(model, tok, pairs["train"], s, cfg.lora, cfg.max_length, probe, device, seed)
    out = {"metrics": res["metrics"], "curves": res["curves"], "tables": {}, "provenance": res["provenance"]}
    if root is not None:
        res["model"].save_pretrained(f"{root}-s{seed}")
        out["provenance"]["adapter_dir"] = f"{root}-s{seed}"
    ev = evaluate(res["model"], data, cfg, scored, quality=root is not None)
    out["metrics"].update(ev["metrics"])
    out["tables"].update(ev["tables"])
    return out


def _dpo_inputs(run, data, sft_recs: dict, pairs_rec: dict):
    rec = pairs_rec if "run_id" in pairs_rec else next(iter(pairs_rec.values()))
    pairs = {n: pairs_from_record(rec, n) for n in PAIR_SETS}
    ref = {n: {k: [row[k] for row in rec["tables"][f"ref.{n}"]] for k in ("chosen", "rejected")}
           for n in ("val", "heldout")}
    return rec, pairs, ref


def _sft_dir(run, data, sft_recs) -> str:
    if not has_adapter(sft_recs["baseline", 0]):
        sft_model(run, data, sft_recs)                # trains it again (its adapter is needed to start DPO)
    return sft_recs["baseline", 0]["provenance"]["adapter_dir"]


def dpo_search(run, data, sft_recs: dict, pairs_rec: dict, force: bool = False) -> dict:
    """Section e: short sigmoid-DPO runs (cfg.search_steps) at each (beta, lr) of cfg.dpo_search, seed 0, scored on
    the validation pairs only: {(variant, 0): record}."""
    cfg = run.cfg
    rec, pairs, ref = _dpo_inputs(run, data, sft_recs, pairs_rec)
    search_pairs = {"train": pairs["train"], "val": pairs["val"]}
    points = []
    for beta, lr in cfg.dpo_search:
        s = dataclasses.replace(cfg.dpo, beta=beta, lr=lr, steps=cfg.search_steps, loss_type="sigmoid",
                                eval_every=cfg.search_steps)
        points.append(Point("dpo_search", f"beta={beta:g} lr={lr:g}", [cfg, s, data, None, search_pairs,
                                                                      {"val": ref["val"]}, None],
                            dpo_key(cfg, s, rec), seeds=(0,)))
    todo = [p for p in points if force or recorded(run, p.variant, p.config) is None]
    if todo:
        sft_dir = _sft_dir(run, data, sft_recs)
        for p in points:
            p.args[3] = sft_dir
    for p in points:
        p.args = tuple(p.args)
    return run_points(run, points, dpo_job, None, cfg.workers, force, "DPO search (validation pairs)")


def dpo_runs(run, data, sft_recs: dict, pairs_rec: dict, search: dict, force: bool = False) -> dict:
    """Section f: DPO with each loss of cfg.dpo_losses and each seed of cfg.dpo_seeds, at the (beta, lr) the search
    chose (the best validation likelihood accuracy), probing the held-out pairs every eval_every steps."""
    cfg = run.cfg
    rec, pairs, ref = _dpo_inputs(run, data, sft_recs, pairs_rec)
    beta, lr = chosen_search_point(search) or (cfg.dpo.beta, cfg.dpo.lr)
    held = {"train": pairs["train"], "heldout": pairs["heldout"]}
    points = []
    for loss in cfg.dpo_losses:
        s = dataclasses.replace(cfg.dpo, beta=beta, lr=lr, loss_type=loss)
        key = dpo_key(cfg, s, rec)
        points.append(Point("dpo", loss, [cfg, s, data, None, held, {"heldout": ref["heldout"]},
                                          str(adapter_dir(run, loss, key, 0))[:-3]], key, seeds=tuple(cfg.dpo_seeds)))
    todo = [p for p in points for sd in p.seeds if force or recorded(run.with_seed(sd), p.variant, p.config) is None]
    sft_dir = _sft_dir(run, data, sft_recs) if todo else None
    for p in points:
        p.args[3] = sft_dir
        p.args = tuple(p.args)
    return run_points(run, points, dpo_job, None, cfg.workers, force, "DPO runs")


# ------------------------------------------------------------------------------------------------ g. comparison
def compare(run, data, dpo_recs: dict, force: bool = False) -> dict:
    """Section g: the untuned, SFT and DPO models' answers to a few held-out words side by side (from the records),
    and, where the adapters are on this machine, the reload check: a saved adapter reloaded must give the answers
    recorded when it was trained (a checkpoint that does not reload is caught here)."""
    cfg = run.cfg
    sft_recs = {k: r for k, r in run_records(run, "sft").items()}
    untuned = next(iter(run_records(run, "a_data").values()))
    models = {"untuned": untuned, "SFT": sft_recs["baseline", 0],
              **{f"DPO ({v}) s{s}": r for (v, s), r in dpo_recs.items()}}
    config = {"models": sorted(r["run_id"] for r in models.values()), "show_words": cfg.show_words}
    rec = None if force else recorded(run, "base-sft-dpo", config)
    if rec:
        return keyed(rec)
    gen = data["parts"]["gen"][:cfg.show_words]
    answers = [{"prompt": r["prompt"][-1]["content"], "reference": r["completion"][0]["content"],
                **{name: m["tables"]["answers"][i]["answer"] for name, m in models.items()}} for i, r in enumerate(gen)]
    reload, sft_dir = [], sft_recs["baseline", 0]["provenance"].get("adapter_dir")
    for name, m in models.items():
        if name == "untuned" or not has_adapter(m) or (name != "SFT" and not has_adapter(sft_recs["baseline", 0])):
            reload.append({"model": name, "checked": False, "same answers": None})
            continue
        model = PeftModel.from_pretrained(base_model(cfg, run.device), m["provenance"]["adapter_dir"]) \
            if name == "SFT" else PeftModel.from_pretrained(
                sft.merged(PeftModel.from_pretrained(base_model(cfg, run.device), sft_dir)),
                m["provenance"]["adapter_dir"])
        again = sft.generate(model, data["tok"], [g["prompt"] for g in gen], cfg.gen_tokens)
        same = sum(a == row[name] for a, row in zip(again, answers))
        reload.append({"model": name, "checked": True, "same answers": f"{same} of {len(gen)}"})
    return keyed(save_result(run, "e_compare", "base-sft-dpo", {"tables": {"answers": answers, "reload": reload},
                                                                "metrics": {"show_words": len(gen)}}, config=config))


def run_records(run, experiment: str) -> dict:
    """{(variant, seed): record} of one experiment among the records the run has collected."""
    return {(r["variant"], r["seed"]): r for r in run.records if r["experiment"] == experiment}


# ------------------------------------------------------------------------------------------------ full-profile plan
def full_plan(notebook: str, b: dict, cfg=None, bf16: bool = True) -> NotebookPlan:
    """The full profile's plan: SFT and DPO steps of LoRA on SmolLM2-360M, held-out scoring (helpers.planning)."""
    cfg = cfg or PROFILES["full"]
    conf = smollm2_config()
    n, lora = counts(conf)["total"], lora_params(conf, cfg.lora)
    d, T = cfg.dpo, cfg.max_length
    # on a card without bf16 the frozen weights stay fp32 and the adapters train in fp16 mixed precision
    # (helpers.train.trainer_precision)
    precision = "bf16-frozen" if bf16 else "fp16-amp"
    plans = [training_plan("06 SFT (LoRA)", conf, cfg.sft.batch_size, T, precision, trainable=lora),
             # DPO: chosen and rejected of each pair go through the model together
             training_plan("06 DPO (LoRA)", conf, 2 * d.batch_size, T, precision, trainable=lora)]
    runs = {v: len(cfg.seeds if v == "baseline" else cfg.lesson_seeds) for v in SFT_VARIANTS}
    sft_tokens = sum(k * (s := variant_settings(cfg, v)).steps * s.batch_size * s.grad_accum * T
                     for v, k in runs.items())
    dpo_runs_n = len(cfg.dpo_losses) * len(cfg.dpo_seeds)
    dpo_tokens = (dpo_runs_n * d.steps + len(cfg.dpo_search) * cfg.search_steps) * 2 * d.batch_size * T
    models_scored = sum(runs.values()) + dpo_runs_n + len(cfg.dpo_search) + 2
    eval_tokens = models_scored * (cfg.test_rows + 2 * cfg.heldout_rows) * T
    case = "06 SmolLM2-360M LoRA SFT step, batch 8"
    return NotebookPlan(notebook, plans, [
        (f"{sum(runs.values())} SFT runs (LoRA r={cfg.lora.r}): {sft_tokens / 1e6:.0f}M tokens at <= {T}",
         train_seconds(b, case, n, sft_tokens, flops_per_param=4)),
        # a DPO step: policy forward + backward through the adapters (4 N); the reference's log-probs once (2 N)
        (f"{dpo_runs_n} DPO runs and {len(cfg.dpo_search)} search runs: {dpo_tokens / 1e6:.0f}M tokens",
         train_seconds(b, case, n, dpo_tokens, 5)),
        (f"held-out scoring of {models_scored} models: {eval_tokens / 1e6:.1f}M tokens",
         train_seconds(b, case, n, eval_tokens, 2)),
    ], b.get("gpu"), "tokens counted at max_length (sequences are padded to the longest of their batch); greedy "
       "generation (the on-policy answers, the F1 prompts) is not counted")
