"""Notebook 06's jobs: what one worker process runs for one record, one SFT run or one DPO run with one seed (train,
keep the adapter, score the model), and where a run's adapter is kept. The sections (helpers.sft.study) build them
as sweep points (helpers.sweep): sft_job(cfg, variant, data, root, seed, device); dpo_job(job, seed, device) with a
typed DPOJob, whose fields are named."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from peft import PeftModel

from ..paths import checkpoints_dir
from ..results import config_hash
from .chats import encode_pairs, fit_length
from .config import SFTDPOConfig, variant_settings
from .measure import evaluate, pair_logps, preference
from .models import base_model
from .trainers import DPOSettings, SFTSettings, merged, train_dpo, train_sft


def adapter_dir(run, variant: str, key: dict, seed: int) -> Path:
    """Where a run's adapter is kept: checkpoints/06_sft_dpo/<variant>-<config hash>-s<seed> (git-ignored)."""
    return checkpoints_dir() / run.notebook / f"{variant}-{config_hash({'profile': run.profile, **key})}-s{seed}"


def has_adapter(rec: dict) -> bool:
    return (Path(rec["provenance"].get("adapter_dir", "/nonexistent")) / "adapter_config.json").exists()


# ------------------------------------------------------------------------------------------------ SFT
def _fit_rows(data, cfg, s: SFTSettings):
    rows, lengths = data["parts"]["sft_train"], data["lengths"]["sft_train"]
    train, kept = fit_length(rows, lengths, cfg.max_length, s.long)
    val = [r for r, n in zip(data["parts"]["val"], data["lengths"]["val"]) if n <= cfg.max_length][:s.eval_rows]
    return train, val, kept


def sft_job(cfg: SFTDPOConfig, variant: str, data: dict, root: str, seed: int, device: str) -> dict:
    """Train one SFT variant with one seed, keep its adapter under root-s<seed>, score it on the held-out sets."""
    s = variant_settings(cfg, variant)
    train, val, kept = _fit_rows(data, cfg, s)
    res = train_sft(base_model(cfg, device), data["tok"], train, val, s, cfg.lora, cfg.max_length, device, seed)
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


# ------------------------------------------------------------------------------------------------ DPO
@dataclass(frozen=True)
class DPOJob:
    """One DPO run's inputs, by name (a sweep point's one argument: dpo_job(job, seed, device)). The record's key is
    the point's config (helpers.sft.config.dpo_key), not this: sft_dir and root are where things are on this
    machine, filled in with dataclasses.replace once the section knows them."""
    cfg: SFTDPOConfig
    settings: DPOSettings
    data: dict
    pairs: dict                    # {"train": pairs trained on, <name>: pairs scored (val in the search, else heldout)}
    ref: dict                      # {<name>: the SFT model's log-probs of the scored pairs {"chosen", "rejected"}}
    root: str | None = None        # the adapter is kept under root-s<seed>; None: not kept (the search)
    sft_dir: str | None = None     # the SFT adapter DPO starts from (merged); None only when no run is due


def dpo_job(job: DPOJob, seed: int, device: str) -> dict:
    """Merge the SFT adapter, train a fresh LoRA with DPO on pairs["train"], probe the held-out (or, in the search,
    validation) pairs over steps, keep the adapter (root-s<seed>, unless None), and score the model."""
    cfg, s, data, sft_dir, pairs, ref, root = job.cfg, job.settings, job.data, job.sft_dir, job.pairs, job.ref, job.root
    tok = data["tok"]
    model = merged(PeftModel.from_pretrained(base_model(cfg, device), sft_dir))
    scored = {n: encode_pairs(tok, p) for n, p in pairs.items() if n != "train"}
    k = cfg.probe_pairs                      # the curves over steps score the first k pairs; the final score all
    probed = {n: {c: enc[c][:k] for c in enc} for n, enc in scored.items()}

    def probe(m):
        out = {}
        for n, enc in probed.items():
            lp = pair_logps(m, enc)
            p = preference(lp, {c: np.asarray(v[:k]) for c, v in ref[n].items()}, s.beta)
            out[f"{n}_likelihood_acc"], out[f"{n}_reward_acc"] = p["likelihood_acc"], p["reward_acc"]
        return out

    res = train_dpo(model, tok, pairs["train"], s, cfg.lora, cfg.max_length, probe, device, seed)
    out = {"metrics": res["metrics"], "curves": res["curves"], "tables": {}, "provenance": res["provenance"]}
    if root is not None:
        res["model"].save_pretrained(f"{root}-s{seed}")
        out["provenance"]["adapter_dir"] = f"{root}-s{seed}"
    ev = evaluate(res["model"], data, cfg, scored, quality=root is not None)
    out["metrics"].update(ev["metrics"])
    out["tables"].update(ev["tables"])
    return out
