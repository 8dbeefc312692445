"""Notebook 06: LoRA, SFT and DPO of a chat model, seed 004's lessons turned into comparisons over training seeds.
This module holds the sections notebook 06 calls, in its order, each writing or loading its records.

local = SmolLM2-135M-Instruct (offline asset) with LoRA adapters on sense-pinned WordNet definition chats (split by
headword: held-out words are never trained on). DPO's main task is on-policy (the UltraFeedback-style recipe): the SFT
model answers prompts it was not tuned on; where its answer is wrong (token F1 against the gloss below max_f1) the
pair is chosen = the gloss, rejected = its own answer; held-out pairs come from held-out headwords. The WordNet
hard-negative pairs (another sense's or a sibling's gloss: fluent, correct-looking definitions) are kept beside it as
the labelled hard case. full = the base model HuggingFaceTB/SmolLM2-360M with a ChatML template, SFT on
HuggingFaceH4/ultrachat_200k, DPO on HuggingFaceH4/ultrafeedback_binarized, bf16 on CUDA.

Sections (notebook 06's cells, in order) and their records (experiment / variant), each run over training seeds:
  prepare           the tokenizer, rows and encodings every section shares (helpers.sft.chats)
  data_section      a_data: the data and the untuned model on the held-out sets
  sft_runs          sft/*: baseline (prompt-masked loss, long examples dropped, cosine with warmup) x cfg.seeds and
                    each lesson arm x cfg.lesson_seeds: whole-sequence loss, truncate, plateau (ReduceLROnPlateau, set
                    to cut), accum-1 / accum-4 (equal examples) / accum-4-steps (equal optimizer steps)
  lessons_record    c_lessons: evaluation-only: length-filtered vs unfiltered validation, evaluation cost, worst
                    answers, attention
  preference_pairs  d_pairs: the preference pairs: on-policy train / validation / held-out, and the SFT model's
                    log-probs of them
  dpo_search        dpo_search/*: short DPO runs over (beta, lr), scored on validation pairs (never the held-out ones)
  dpo_runs          dpo/*: DPO from the merged SFT model (a fresh LoRA; DPO's reference is the merged SFT model, its
                    log-probs computed once), each loss x cfg.dpo_seeds, at the searched (beta, lr)
  compare           e_compare: generations side by side and, where the adapters are on this machine, the reload check
Every number the report compares (per-row losses, per-pair log-probs, answers) is in the run records, so a fresh
clone loads them; adapters (checkpoints/06_sft_dpo/, git-ignored) are needed only to train what is not recorded.
The registry reads PROFILES (with SFTDPOConfig, helpers.sft.config) and full_plan (helpers.sft.plan) here.
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter

import numpy as np
from peft import PeftModel

from ..results import keyed, recorded, save_result
from ..sweep import Point, run_points
from .chats import check_pairs, data_key, drop_long_pairs, encode_pairs, on_policy_pairs, prepare
from .config import PROFILES, SFTDPOConfig, dpo_key, sft_key
from .jobs import DPOJob, adapter_dir, dpo_job, has_adapter, sft_job
from .measure import answer_loss, attention_speeds, evaluate, generate, length_only_accuracy, pair_logps
from .models import base_model
from .plan import full_plan
from .report import SFT_VARIANTS, chosen_search_point
from .trainers import merged

__all__ = ["SFTDPOConfig", "PROFILES", "full_plan", "prepare", "data_section", "sft_runs", "lessons_record",
           "preference_pairs", "dpo_search", "dpo_runs", "compare"]

PAIR_SETS = ("train", "val", "heldout")


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
    metrics = {**ev["metrics"], "hard.length_only_acc": length_only_accuracy(data["tok"], data["parts"]["hard"]),
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
def sft_points(run, data) -> list[Point]:
    """The baseline with every seed of cfg.seeds, each lesson arm with cfg.lesson_seeds (none where that is ())."""
    cfg = run.cfg
    points = []
    for v in SFT_VARIANTS if cfg.lesson_seeds else SFT_VARIANTS[:1]:
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
        u = answer_loss(m, val)
        f_sum = sum(x for x, k in zip(u["seq_loss_sum"], short) if k)
        f_tok = sum(x for x, k in zip(u["seq_tokens"], short) if k)
        bias.append({"model": name, "filtered loss": f_sum / f_tok, "filtered rows": sum(short),
                     "unfiltered loss": u["loss"], "unfiltered rows": u["n"], "bias": f_sum / f_tok - u["loss"]})
    base = sft_recs["baseline", 0]
    per_row = [x["loss_sum"] / max(x["tokens"], 1) for x in base["tables"]["test_rows"]]
    worst = sorted(range(len(per_row)), key=lambda i: -per_row[i])[:cfg.worst_k]
    test = data["parts"]["test"]
    answers = generate(model, data["tok"], [test[i]["prompt"] for i in worst], cfg.gen_tokens)
    worst_rows = [{"loss": per_row[i], "prompt": test[i]["prompt"][-1]["content"],
                   "reference": test[i]["completion"][0]["content"], "generation": a} for i, a in zip(worst, answers)]
    speeds = attention_speeds(cfg.model, run.device, cfg.speed_length or cfg.max_length, cfg.speed_batch)
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
            answers = generate(model, tok, [r["prompt"] for r in rows], cfg.gen_tokens)
            pairs, c = on_policy_pairs(rows, answers, cfg.max_f1)
        else:
            pairs, c = data["parts"][f"pairs.{name}"], {"pairs": len(data["parts"][f"pairs.{name}"])}
        pairs, dropped = drop_long_pairs(tok, pairs, cfg.max_length)
        check_pairs(pairs)
        counts += [{"set": name, "what": k, "rows": v} for k, v in {**c, f"over {cfg.max_length} tokens: dropped":
                                                                    dropped}.items()]
        sets[name] = pairs
    metrics = {"generate_s": round(time.perf_counter() - t0, 1), **{f"{n}.pairs": len(p) for n, p in sets.items()}}
    tables = {"counts": counts, **{f"pairs.{n}": [_pair_row(p) for p in ps] for n, ps in sets.items()}}
    for name in ("val", "heldout"):               # the reference's log-probs (the train set's: TRL precomputes them)
        lp = pair_logps(model, encode_pairs(tok, sets[name]))
        tables[f"ref.{name}"] = [{"chosen": float(c), "rejected": float(r)} for c, r in zip(lp["chosen"],
                                                                                          lp["rejected"])]
        metrics[f"{name}.sft_likelihood_acc"] = float(np.mean(lp["chosen"] > lp["rejected"]))
        metrics[f"{name}.length_only_acc"] = length_only_accuracy(tok, sets[name])
    return keyed(save_result(run, "d_pairs", "on-policy" if cfg.data == "wordnet" else "ultrafeedback",
                             {"metrics": metrics, "tables": tables}, config=config))


# ------------------------------------------------------------------------------------------------ e, f. DPO
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
    jobs = []                                      # (variant, job, key): the job without the SFT adapter yet
    for beta, lr in cfg.dpo_search:
        s = dataclasses.replace(cfg.dpo, beta=beta, lr=lr, steps=cfg.search_steps, loss_type="sigmoid",
                                eval_every=cfg.search_steps)
        jobs.append((f"beta={beta:g} lr={lr:g}", DPOJob(cfg=cfg, settings=s, data=data, pairs=search_pairs,
                                                        ref={"val": ref["val"]}, root=None), dpo_key(cfg, s, rec)))
    todo = [v for v, _, key in jobs if force or recorded(run, v, key) is None]
    sft_dir = _sft_dir(run, data, sft_recs) if todo else None
    points = [Point("dpo_search", v, (dataclasses.replace(job, sft_dir=sft_dir),), key, seeds=(0,))
              for v, job, key in jobs]
    return run_points(run, points, dpo_job, None, cfg.workers, force, "DPO search (validation pairs)")


def dpo_runs(run, data, sft_recs: dict, pairs_rec: dict, search: dict, force: bool = False) -> dict:
    """Section f: DPO with each loss of cfg.dpo_losses and each seed of cfg.dpo_seeds, at the (beta, lr) the search
    chose (the best validation likelihood accuracy), probing the held-out pairs every eval_every steps. DPO's
    reference is the merged SFT model (helpers.sft.trainers.train_dpo)."""
    cfg = run.cfg
    rec, pairs, ref = _dpo_inputs(run, data, sft_recs, pairs_rec)
    beta, lr = chosen_search_point(search) or (cfg.dpo.beta, cfg.dpo.lr)
    held = {"train": pairs["train"], "heldout": pairs["heldout"]}
    jobs = []                                      # (variant, job, key): the job without the SFT adapter yet
    for loss in cfg.dpo_losses:
        s = dataclasses.replace(cfg.dpo, beta=beta, lr=lr, loss_type=loss)
        key = dpo_key(cfg, s, rec)
        jobs.append((loss, DPOJob(cfg=cfg, settings=s, data=data, pairs=held, ref={"heldout": ref["heldout"]},
                                  root=str(adapter_dir(run, loss, key, 0))[:-3]), key))
    seeds = tuple(cfg.dpo_seeds)
    todo = [v for v, _, key in jobs for sd in seeds if force or recorded(run.with_seed(sd), v, key) is None]
    sft_dir = _sft_dir(run, data, sft_recs) if todo else None
    points = [Point("dpo", v, (dataclasses.replace(job, sft_dir=sft_dir),), key, seeds=seeds) for v, job, key in jobs]
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
                merged(PeftModel.from_pretrained(base_model(cfg, run.device), sft_dir)),
                m["provenance"]["adapter_dir"])
        again = generate(model, data["tok"], [g["prompt"] for g in gen], cfg.gen_tokens)
        same = sum(a == row[name] for a, row in zip(again, answers))
        reload.append({"model": name, "checked": True, "same answers": f"{same} of {len(gen)}"})
    return keyed(save_result(run, "e_compare", "base-sft-dpo", {"tables": {"answers": answers, "reload": reload},
                                                                "metrics": {"show_words": len(gen)}}, config=config))


def run_records(run, experiment: str) -> dict:
    """{(variant, seed): record} of one experiment among the records the run has collected."""
    return {(r["variant"], r["seed"]): r for r in run.records if r["experiment"] == experiment}


