"""LoRA, SFT and DPO with TRL and PEFT (notebook 06): the chat data, the two trainers, and the measurements.

Data (local): WordNet synsets as one-turn chats. The question pins the sense, so the gloss is the one right answer:
a synset whose usage example contains the word is asked about in that context ('What does "bank" mean in "they
pulled the canoe up on the bank"?'); a word with a single sense in WordNet is asked plainly ('What does the noun
"cell" mean?'); a word with several senses and no example of this one is skipped (it has several right answers).
Preference pairs: the same prompt; chosen = the synset's gloss; rejected = a hard negative, the gloss of another
sense of the same word (wrong in this context), else the gloss of a sibling synset (same hypernym). The corpus is
split by headword, so held-out words never appear in training. Full profile: UltraChat (SFT) and UltraFeedback
(DPO) in the same row format.

Rows: {"prompt": [user message], "completion": [assistant message], "chosen"/"rejected": [assistant message] or
None, "word", "kind"}: TRL's conversational prompt-completion and preference formats.

Measurements (one function for base, SFT and DPO models alike):
  answer_loss      token-weighted NLL of the answers given their prompts (nats per answer token), per-row sums
  preference       likelihood accuracy (log p(chosen) > log p(rejected)) and, against a reference's log-probs,
                   DPO's implicit-reward accuracy and margin
  generate / token_f1   greedy answers and their token-level F1 against the reference gloss
"""
from __future__ import annotations

import math
import random
import re
import shutil
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import LlamaConfig
from transformers.trainer_callback import PrinterCallback
from transformers.utils import is_flash_attn_2_available
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from ..assets import FETCH_CMD
from ..data import encode_chat, load_pretrained
from ..evaluate import lm_loss
from ..models import from_config
from ..provenance import Tracker
from ..stats import paired_bootstrap
from ..train import Meter, inference_autocast, model_dtype, trainer_precision

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LONG_MODES = ("drop", "truncate")
SFT_SCHEDULERS = ("cosine", "plateau")


class DataError(ValueError):
    pass


# ------------------------------------------------------------------------------------------------ WordNet chats
def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def sense_index(docs: list[dict]) -> dict[str, list[int]]:
    """lemma (lower case) -> indices of every synset that has it as headword or synonym, all splits together."""
    index: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        for lemma in {d["word"].lower(), *(s.lower() for s in d["synonyms"])}:
            index.setdefault(lemma, []).append(i)
    return index


def pinned_question(doc: dict, n_senses: int) -> tuple[str, str] | None:
    """(question, how) whose one right answer is this synset's gloss, or None when the word is ambiguous here."""
    word = doc["word"]
    pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)
    for ex in doc["examples"]:
        if pattern.search(ex):
            return f'What does "{word}" mean in "{ex}"?', "usage example"
    if n_senses == 1:
        return f'What does the {doc["pos"]} "{word}" mean?', "single sense"
    return None


def hard_negative(i: int, docs: list[dict], senses: dict, children: dict, rng: random.Random) -> tuple[int, str] | None:
    """(index, kind) of a gloss that is wrong for synset i's pinned question but close to it: another sense of the
    same word (same part of speech first), else a sibling under the same hypernym; None when there is neither."""
    d = docs[i]
    gloss = d["definition"].strip().lower()
    ok = [j for j in senses.get(d["word"].lower(), []) if j != i and docs[j]["definition"].strip().lower() != gloss]
    same_pos = [j for j in ok if docs[j]["pos"] == d["pos"]]
    if same_pos or ok:
        return rng.choice(same_pos or ok), "other sense"
    sibs = sorted({j for h in d["hypernyms"] for j in children.get(h, ()) if j != i
                   and docs[j]["definition"].strip().lower() != gloss})
    return (rng.choice(sibs), "sibling") if sibs else None


def wordnet_chats(corpus, seed: int = 0) -> tuple[dict[str, list[dict]], dict]:
    """{split: rows} of sense-pinned chats with hard negatives, and counts of how each prompt and pair was made."""
    splits = {s: corpus[s].to_list() for s in ("train", "validation", "test")}
    docs = [d for s in ("train", "validation", "test") for d in splits[s]]
    if docs and "hypernyms" not in docs[0]:
        raise DataError(f"the prepared WordNet corpus predates hypernym pointers; rebuild it with: {FETCH_CMD}")
    senses = sense_index(docs)
    children: dict[str, list[int]] = {}
    for j, d in enumerate(docs):
        for h in d["hypernyms"]:
            children.setdefault(h, []).append(j)
    out, stats, offset = {}, {}, 0
    for split in ("train", "validation", "test"):
        rows, count = [], Counter()
        for k, d in enumerate(splits[split]):
            i = offset + k
            q = pinned_question(d, len(senses.get(d["word"].lower(), [])))
            if q is None:
                count["skipped: several senses, no usage example"] += 1
                continue
            neg = hard_negative(i, docs, senses, children, random.Random(f"{seed}:{d['doc']}"))
            count[f"prompt by {q[1]}"] += 1
            count[f"negative: {neg[1] if neg else 'none'}"] += 1
            rows.append({"prompt": _user(q[0]), "completion": _assistant(d["definition"]),
                         "chosen": _assistant(d["definition"]),
                         "rejected": _assistant(docs[neg[0]]["definition"]) if neg else None,
                         "word": d["word"], "kind": neg[1] if neg else None})
        offset += len(splits[split])
        out[split] = rows
        stats[split] = dict(sorted(count.items()))
    return out, stats


# ------------------------------------------------------------------------------------------------ hub chats (full)
def check_columns(ds, needed: tuple, what: str) -> None:
    have = list(getattr(ds, "column_names", None) or (ds[0].keys() if len(ds) else []))
    missing = [c for c in needed if c not in have]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing}; it has {have}. Give a dataset with {list(needed)}")


def chats_from_messages(ds, n: int | None = None) -> list[dict]:
    """UltraChat-style rows (messages = alternating turns) -> prompt = every turn before the last assistant answer,
    completion = that answer."""
    check_columns(ds, ("messages",), "the SFT dataset")
    rows = []
    for ex in ds.select(range(min(n or len(ds), len(ds)))):
        msgs = ex["messages"]
        if len(msgs) >= 2 and msgs[-1]["role"] == "assistant":
            rows.append({"prompt": msgs[:-1], "completion": msgs[-1:], "chosen": None, "rejected": None,
                         "word": msgs[-2]["content"][:40], "kind": None})
    return rows


def pairs_from_preferences(ds, n: int | None = None) -> list[dict]:
    """UltraFeedback-binarized rows (chosen / rejected = whole conversations) -> prompt + last answers."""
    check_columns(ds, ("prompt", "chosen", "rejected"), "the preference dataset")
    rows = []
    for ex in ds.select(range(min(n or len(ds), len(ds)))):
        c, r = ex["chosen"], ex["rejected"]
        if isinstance(c, str):           # plain-text preference rows: the prompt is its own column
            prompt, c, r = _user(ex["prompt"]), _assistant(c), _assistant(r)
        else:
            prompt, c, r = c[:-1], c[-1:], r[-1:]
        rows.append({"prompt": prompt, "completion": c, "chosen": c, "rejected": r,
                     "word": ex["prompt"][:40], "kind": "preference"})
    return rows


# ------------------------------------------------------------------------------------------------ models
TINY_MODEL = "smollm2-tiny"    # tests: SmolLM2's tokenizer on a 2-layer, width-64 Llama with fixed random weights
# (untied: with tied embeddings its greedy answer repeats the prompt's last token, "\n", and decodes to nothing)


def tokenizer_name(model: str) -> str:
    return "smollm2" if model in ("smollm2", TINY_MODEL) else model


def load_chat_model(name: str, device: str = "cpu"):
    """The model to tune: 'smollm2' (offline asset), TINY_MODEL (random, the same weights every call, so a saved
    adapter reloads onto the model it was trained on) or a hub id; bf16 on a CUDA GPU with bf16, else fp32."""

    if name == TINY_MODEL:
        state = torch.random.get_rng_state()
        torch.manual_seed(0)
        model = from_config(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=49152,
                                        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2))
        torch.random.set_rng_state(state)
        return model.to(device=device, dtype=model_dtype(device))
    return load_pretrained(name, dtype=model_dtype(device)).to(device)


# ------------------------------------------------------------------------------------------------ tokens
def encode_rows(tok, rows: list[dict], key: str = "completion") -> list[dict]:
    """Each row's prompt + rows[key] as token ids with labels -100 on the prompt (helpers.data.encode_chat)."""

    return [encode_chat(tok, r["prompt"], r[key]) for r in rows]


def fit_length(rows: list[dict], lengths: list[int], max_length: int, mode: str = "drop") -> tuple[list[dict], dict]:
    """The author's lesson as a switch: rows over `max_length` tokens are dropped, or kept for the trainer to cut
    (TRL's max_length keeps the start, so the end of the answer and its end-of-turn token are lost)."""
    if mode not in LONG_MODES:
        raise ValueError(f"unknown long-example mode '{mode}'; allowed: {', '.join(LONG_MODES)}")
    long = sum(n > max_length for n in lengths)
    kept = [r for r, n in zip(rows, lengths) if n <= max_length] if mode == "drop" else list(rows)
    if not kept:
        raise DataError(f"every one of the {len(rows)} examples is longer than max_length={max_length} tokens; "
                        f"nothing is left to train on. Raise max_length (longest: {max(lengths, default=0)})")
    return kept, {"examples": len(rows), "over_max_length": long, "dropped": long if mode == "drop" else 0,
                  "truncated": long if mode == "truncate" else 0, "max_length": max_length}


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


# ------------------------------------------------------------------------------------------------ on-policy pairs
def on_policy_pairs(rows: list[dict], answers: list[str], max_f1: float = 0.3) -> tuple[list[dict], dict]:
    """Preference pairs from a model's own answers (the UltraFeedback-style on-policy recipe): for each prompt whose
    answer is wrong (token F1 against the reference below max_f1) and not empty, chosen = the reference, rejected =
    the model's answer. Counts say how many prompts were answered right (no pair), empty, or wrong (a pair). Refuses
    answers that are mostly empty (a generation or template fault, not a preference)."""
    if len(rows) != len(answers):
        raise DataError(f"{len(rows)} prompts but {len(answers)} answers: the answers must be to these prompts")
    empty = sum(not a.strip() for a in answers)
    if answers and empty > len(answers) / 2:
        raise DataError(f"the model answered {empty} of {len(answers)} prompts with nothing: check the chat template "
                        "and raise gen_tokens before building pairs from its answers")
    pairs, count = [], Counter()
    for row, answer in zip(rows, answers):
        ref = row["completion"][0]["content"]
        f1 = token_f1(answer, ref)
        if not answer.strip():
            count["empty answer"] += 1
        elif f1 >= max_f1:
            count[f"right (F1 >= {max_f1:g}): no pair"] += 1
        else:
            count["wrong: a pair"] += 1
            pairs.append({**row, "chosen": _assistant(ref), "rejected": _assistant(answer), "kind": "own answer",
                          "f1": f1})
    return pairs, dict(count)


def check_pairs(pairs: list[dict]) -> None:
    """Refuse a preference set in which a pair's chosen and rejected answers are the same text: DPO has nothing to
    learn from it, and an accuracy over it is a coin flip."""
    same = [i for i, p in enumerate(pairs) if p["chosen"][0]["content"].strip() == p["rejected"][0]["content"].strip()]
    if same:
        raise DataError(f"{len(same)} of {len(pairs)} preference pairs have identical chosen and rejected answers "
                        f"(first at index {same[0]}); drop them before training or scoring")


def drop_long_pairs(tok, pairs: list[dict], max_length: int) -> tuple[list[dict], int]:
    """Pairs whose prompt + chosen or prompt + rejected is longer than max_length tokens are dropped, not truncated
    (TRL would cut the end of the answer: the notebook's first lesson, applied to DPO). Returns (kept, dropped)."""
    kept = [p for p in pairs if all(len(encode_chat(tok, p["prompt"], p[k])["input_ids"]) <= max_length
                                    for k in ("chosen", "rejected"))]
    return kept, len(pairs) - len(kept)


def repeat_rate(text: str, n: int = 3) -> float:
    """Share of a text's word n-grams that repeat an earlier one ('a ray of a ray of ...' scores high); 0 for texts
    shorter than n words."""
    words = _words(text)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


# ------------------------------------------------------------------------------------------------ measurements
def answer_loss(model, encoded: list[dict], batch_size: int = 16) -> dict:
    """helpers.evaluate.lm_loss on encoded chats (labels -100 on the prompt): the token-weighted answer loss plus
    each row's summed loss and answer tokens, and a bootstrap 95% interval over rows (lo, hi)."""

    device = next(model.parameters()).device
    res = lm_loss(model, encoded, batch_size, device, per_sequence=True)
    zero = {"seq_loss_sum": [0.0] * len(encoded), "seq_tokens": res["seq_tokens"]}  # the difference from 0 = the loss
    b = paired_bootstrap(zero, res)
    return {**res, "lo": b["lo"], "hi": b["hi"], "n": len(encoded)}


def pair_logps(model, tok_pairs: dict, batch_size: int = 16) -> dict:
    """{"chosen": summed log p of each chosen answer, "rejected": ...} for encoded pairs {"chosen": [...], ...}."""

    device = next(model.parameters()).device      # no bootstrap interval here: only the per-row sums are used
    return {k: -np.asarray(lm_loss(model, tok_pairs[k], batch_size, device, per_sequence=True)["seq_loss_sum"])
            for k in ("chosen", "rejected")}


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


# ------------------------------------------------------------------------------------------------ training
@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    targets: tuple = LORA_TARGETS

    def config(self):
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.targets), task_type="CAUSAL_LM")


def check_targets(model, targets) -> None:
    """A LoRA target that names no module would silently train nothing there: refuse it."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    bad = [t for t in targets if t not in names]
    if bad:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ == "Linear"})
        raise ValueError(f"LoRA target module(s) {bad} match nothing in {type(model).__name__}; its Linear names: "
                         f"{linear}")


@dataclass
class SFTSettings:
    steps: int = 150
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    scheduler: str = "cosine"        # cosine with warmup | plateau (ReduceLROnPlateau on the eval loss, the author's)
    warmup_steps: int = 10
    completion_only: bool = True    # labels -100 on the prompt (False: the author's loss on the whole sequence)
    long: str = "drop"               # examples over max_length: drop | truncate
    eval_every: int = 25
    eval_rows: int = 64
    log_every: int = 5
    plateau_patience: int = 2        # plateau: evaluations without improvement before the lr is cut (torch: 10)
    plateau_factor: float = 0.5

    def __post_init__(self):
        if self.scheduler not in SFT_SCHEDULERS:
            raise ValueError(f"unknown SFT scheduler '{self.scheduler}'; allowed: {', '.join(SFT_SCHEDULERS)}")
        if self.long not in LONG_MODES:
            raise ValueError(f"unknown long-example mode '{self.long}'; allowed: {', '.join(LONG_MODES)}")
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"sft.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"sft.lr must be > 0, got {self.lr}")


@dataclass
class DPOSettings:
    steps: int = 100
    batch_size: int = 8
    lr: float = 5e-4
    beta: float = 0.1
    loss_type: str = "sigmoid"       # TRL's loss_type: sigmoid (DPO), ipo, hinge, ...
    eval_every: int = 20
    eval_rows: int = 64              # pairs scored for the train / held-out accuracy curves
    log_every: int = 5

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"dpo.{name} must be >= 1, got {getattr(self, name)}")
        if self.beta <= 0:
            raise ValueError(f"dpo.beta must be > 0, got {self.beta}")
        if self.lr <= 0:
            raise ValueError(f"dpo.lr must be > 0, got {self.lr}")


class ProbeMeter(Meter):
    """The training core's Meter, plus a probe: probe(model) -> {curve name: value} every `every` steps and at the
    last (DPO's train / held-out accuracy curves); its time counts as evaluation."""

    def __init__(self, probe=None, every: int = 0):
        super().__init__()
        self.probe, self.every = probe, every

    def on_step_end(self, args, state, control, model=None, **kw):
        if self.probe and (state.global_step % self.every == 0 or state.global_step == state.max_steps):
            t0 = time.perf_counter()
            for name, value in self.probe(model).items():
                self.curves.setdefault(name, {})[state.global_step] = value
            self.eval_s += time.perf_counter() - t0
            model.train()


def _fit(trainer, meter, device: str) -> dict:
    trainer.remove_callback(PrinterCallback)       # the progress bar shows the run; the curves keep the logs

    with Tracker(device) as tr:
        out = trainer.train()
    wall = float(out.metrics.get("train_runtime", tr.wall_s))
    return {"metrics": {"steps": trainer.state.global_step, "train_loss": float(out.training_loss),
                        "wall_s": round(wall, 2), "eval_s": round(meter.eval_s, 2),
                        "eval_share": round(meter.eval_s / max(wall, 1e-9), 4)},
            "curves": meter.curves, "provenance": tr.as_dict()}


def _rows(rows: list[dict], keys: tuple):
    return Dataset.from_list([{k: r[k] for k in keys} for r in rows])


def train_sft(model, tok, train_rows: list[dict], eval_rows: list[dict], s: SFTSettings, lora: LoraSettings,
              max_length: int, device: str = "cpu", seed: int = 0) -> dict:
    """LoRA SFT with TRL's SFTTrainer on prompt-completion chats. Returns {"metrics", "curves", "provenance",
    "model"} (model = the PEFT model, adapters not merged)."""

    check_targets(model, lora.targets)
    scratch = tempfile.mkdtemp(prefix="lab-sft-")
    try:
        args = SFTConfig(
            output_dir=scratch, max_steps=s.steps, per_device_train_batch_size=s.batch_size,
            per_device_eval_batch_size=16, gradient_accumulation_steps=s.grad_accum, learning_rate=s.lr,
            lr_scheduler_type="reduce_lr_on_plateau" if s.scheduler == "plateau" else "cosine",
            lr_scheduler_kwargs={"patience": s.plateau_patience, "factor": s.plateau_factor}
            if s.scheduler == "plateau" else {},
            warmup_steps=s.warmup_steps if s.scheduler == "cosine" else 0,
            metric_for_best_model="eval_loss", eval_strategy="steps", eval_steps=s.eval_every,
            logging_steps=s.log_every, save_strategy="no", report_to="none", seed=seed, max_length=max_length,
            completion_only_loss=s.completion_only, dataloader_num_workers=0, disable_tqdm=False,
            **trainer_precision(device))
        meter = Meter()
        trainer = SFTTrainer(model=model, args=args, train_dataset=_rows(train_rows, ("prompt", "completion")),
                             eval_dataset=_rows(eval_rows, ("prompt", "completion")), processing_class=tok,
                             peft_config=lora.config(), callbacks=[meter])
        res = _fit(trainer, meter, device)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lr = list(meter.curves["lr"].values())
    res["metrics"]["lr_cuts"] = sum(b < a * 0.999 for a, b in zip(lr, lr[1:])) if s.scheduler == "plateau" else None
    res["model"] = trainer.model
    return res


def train_dpo(model, tok, train_pairs: list[dict], s: DPOSettings, lora: LoraSettings, max_length: int,
              probe=None, device: str = "cpu", seed: int = 0) -> dict:
    """A fresh LoRA on `model` (the merged SFT model) trained with TRL's DPOTrainer. With a PEFT model and no
    ref_model, TRL's reference is the adapter-free model, i.e. the SFT model itself: the reference the seed meant.
    probe(model) -> {curve name: value} runs every s.eval_every steps (the accuracy curves)."""

    check_targets(model, lora.targets)
    check_pairs(train_pairs)
    epochs = s.steps * s.batch_size / len(train_pairs)
    if epochs > 1:
        warnings.warn(f"{s.steps} DPO steps of {s.batch_size} pairs see each of the {len(train_pairs)} training pairs "
                      f"{epochs:.1f} times; give more pairs or fewer steps for one pass", stacklevel=2)
    scratch = tempfile.mkdtemp(prefix="lab-dpo-")
    try:
        # the reference's log-probs are computed once before training (precompute_ref_log_probs), not every step
        args = DPOConfig(
            output_dir=scratch, max_steps=s.steps, per_device_train_batch_size=s.batch_size, learning_rate=s.lr,
            lr_scheduler_type="cosine", warmup_steps=max(1, s.steps // 10), beta=s.beta, loss_type=[s.loss_type],
            max_length=max_length, logging_steps=s.log_every, save_strategy="no", report_to="none", seed=seed,
            precompute_ref_log_probs=True, dataloader_num_workers=0, disable_tqdm=False,
            **trainer_precision(device))
        meter = ProbeMeter(probe, s.eval_every)
        trainer = DPOTrainer(model=model, args=args, train_dataset=_rows(train_pairs, ("prompt", "chosen", "rejected")),
                             processing_class=tok, peft_config=lora.config(), callbacks=[meter])
        res = _fit(trainer, meter, device)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    res["model"] = trainer.model
    return res


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


def merged(peft_model):
    """The PEFT model with its adapter folded into the weights (a plain transformers model)."""
    return peft_model.merge_and_unload()

