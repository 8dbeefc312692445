"""Notebook 06's measurements of a checkpoint (one set of functions for base, SFT and DPO models alike), and the
evaluation a record stores.

  answer_loss      token-weighted NLL of the answers given their prompts (nats per answer token), per-row sums
  pair_logps / preference   summed log-probs of each pair's answers; likelihood accuracy (log p(chosen) >
                   log p(rejected)) and, against a reference's log-probs, DPO's implicit-reward accuracy and margin
  generate / token_f1 / repeat_rate   greedy answers, their token-level F1 against the reference gloss, repeats
  length_only_accuracy   the accuracy of 'the shorter answer is chosen' (is a preference score a length detector?)
  attention_speeds       training tokens/s under each attention implementation
  evaluate         a record's evaluation of one model: all of the above that a record keeps
"""
from __future__ import annotations

import math
import re
import time
from collections import Counter

import numpy as np
import torch
from transformers.utils import is_flash_attn_2_available

from ..evaluate import lm_loss
from ..stats import paired_bootstrap
from ..precision import inference_autocast
from .models import load_chat_model


def answer_loss(model, encoded: list[dict], batch_size: int = 16) -> dict:
    """helpers.evaluate.lm_loss on encoded chats (labels -100 on the prompt): the token-weighted answer loss plus
    each row's summed loss and answer tokens, and a bootstrap 95% interval over rows (lo, hi)."""

    device = next(model.parameters()).device
    res = lm_loss(model, encoded, batch_size, device, per_sequence=True, labelled_only=True)
    zero = {"seq_loss_sum": [0.0] * len(encoded), "seq_tokens": res["seq_tokens"]}  # the difference from 0 = the loss
    b = paired_bootstrap(zero, res)
    return {**res, "lo": b["lo"], "hi": b["hi"], "n": len(encoded)}


def pair_logps(model, tok_pairs: dict, batch_size: int = 16) -> dict:
    """{"chosen": summed log p of each chosen answer, "rejected": ...} for encoded pairs {"chosen": [...], ...}."""

    device = next(model.parameters()).device      # no bootstrap interval here: only the per-row sums are used
    return {k: -np.asarray(lm_loss(model, tok_pairs[k], batch_size, device, per_sequence=True,
                                   labelled_only=True)["seq_loss_sum"]) for k in ("chosen", "rejected")}


def preference(logps: dict, ref: dict | None = None, beta: float = 0.1) -> dict:
    """Likelihood accuracy (the model gives the chosen answer the higher log-probability) with its binomial s.e.;
    with a reference's log-probs also DPO's implicit-reward accuracy and mean margin
    beta * [(log pi(c) - log ref(c)) - (log pi(r) - log ref(r))]."""

    d = logps["chosen"] - logps["rejected"]
    n = len(d)
    acc = float(np.mean(d > 0)) if n else float("nan")
    out = {"likelihood_acc": acc, "likelihood_acc_se": math.sqrt(acc * (1 - acc) / n) if n else float("nan"), "n": n}
    if ref is not None:
        margin = beta * ((logps["chosen"] - ref["chosen"]) - (logps["rejected"] - ref["rejected"]))
        out.update(reward_acc=float(np.mean(margin > 0)), reward_margin=float(np.mean(margin)))
    return out


def generate(model, tok, prompts: list[list[dict]], max_new_tokens: int = 32, batch_size: int = 16) -> list[str]:
    """Greedy answers to chat prompts (left-padded batches), decoded without special tokens."""

    device = next(model.parameters()).device
    side, tok.padding_side = tok.padding_side, "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    out = []
    try:
        model.eval()
        for b in range(0, len(prompts), batch_size):
            texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                     for p in prompts[b:b + batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad(), inference_autocast(str(device)):
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
            out += [t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
    finally:
        tok.padding_side = side
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 over lower-cased word tokens (bag of words overlap)."""
    p, r = _words(prediction), _words(reference)
    common = sum((Counter(p) & Counter(r)).values())
    if not p or not r or not common:
        return float(p == r)
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def repeat_rate(text: str, n: int = 3) -> float:
    """Share of a text's word n-grams that repeat an earlier one ('a ray of a ray of ...' scores high); 0 for texts
    shorter than n words."""
    words = _words(text)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def length_only_accuracy(tok, pairs: list[dict]) -> float:
    """How often 'the shorter answer is the chosen one' is right: a preference accuracy near this value may be a
    length detector. Ties count half."""
    if not pairs:
        return float("nan")
    score = 0.0
    for p in pairs:
        c = len(tok(p["chosen"][0]["content"], add_special_tokens=False)["input_ids"])
        r = len(tok(p["rejected"][0]["content"], add_special_tokens=False)["input_ids"])
        score += 1.0 if c < r else 0.5 if c == r else 0.0
    return score / len(pairs)


def attention_speeds(model_name: str, device: str, length: int, batch: int = 8, reps: int = 3) -> list[dict]:
    """Training tokens/s (forward + backward) of the model under each attention implementation this machine has:
    eager and sdpa always, flash_attention_2 on CUDA with the flash-attn package (else a row saying so)."""

    cuda = str(device).startswith("cuda")
    model = load_chat_model(model_name, device)
    ids = torch.randint(0, model.config.vocab_size, (batch, length), device=device,
                        generator=torch.Generator(device=device).manual_seed(0))
    rows = []
    for impl in ("eager", "sdpa", "flash_attention_2"):
        if impl == "flash_attention_2" and not (cuda and is_flash_attn_2_available()):
            rows.append({"attention": impl, "tokens/s": None, "note": "not available here (needs CUDA and the "
                         "flash-attn package)"})
            continue
        model.set_attn_implementation(impl)
        model(input_ids=ids, labels=ids).loss.backward()                # warm-up (kernels, allocator)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            model(input_ids=ids, labels=ids).loss.backward()
        if cuda:
            torch.cuda.synchronize()
        rows.append({"attention": impl, "tokens/s": round(reps * batch * length / (time.perf_counter() - t0), 1),
                     "note": f"batch {batch} x {length} tokens, {reps} steps"})
    model.zero_grad(set_to_none=True)
    return rows


def evaluate(model, data, cfg, pair_sets: dict | None = None, quality: bool = True) -> dict:
    """A record's evaluation of one model: held-out answer loss (per-row sums, for paired comparisons), the summed
    log-probs of every pair's chosen and rejected answer in each of pair_sets {name: encoded pairs} (the hard case
    always), and (quality) greedy answers to the generation prompts with their token F1, length and repeat rate."""
    loss = answer_loss(model, data["enc"]["test"])
    metrics = {"test_loss": loss["loss"], "test_loss_lo": loss["lo"], "test_loss_hi": loss["hi"],
               "test_rows": loss["n"]}
    tables = {"test_rows": [{"loss_sum": s, "tokens": n} for s, n in zip(loss["seq_loss_sum"], loss["seq_tokens"])]}
    sets = {"hard": data["hard"], **(pair_sets or {})}
    for name, enc in sets.items():
        if not enc["chosen"]:
            continue
        lp = pair_logps(model, enc)
        tables[f"logps.{name}"] = [{"chosen": float(c), "rejected": float(r)} for c, r in zip(lp["chosen"],
                                                                                            lp["rejected"])]
        metrics[f"{name}.likelihood_acc"] = float(np.mean(lp["chosen"] > lp["rejected"]))
    if quality:
        gen = data["parts"]["gen"]
        answers = generate(model, data["tok"], [r["prompt"] for r in gen], cfg.gen_tokens)
        rows = [{"answer": a, "f1": token_f1(a, r["completion"][0]["content"]), "words": len(a.split()),
                 "repeat_rate": repeat_rate(a)} for a, r in zip(answers, gen)]
        tables["answers"] = rows
        metrics.update({k: float(np.mean([r[k] for r in rows])) for k in ("f1", "words", "repeat_rate")})
    return {"metrics": metrics, "tables": tables}
