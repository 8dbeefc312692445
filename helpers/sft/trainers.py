"""Notebook 06's trainers: the SFT and DPO set-up with TRL and PEFT (their settings, the LoRA config, the TRL
configs), one training run of each, and the merge of a trained adapter into the weights.

  train_sft   LoRA SFT with TRL's SFTTrainer on prompt-completion chats
  train_dpo   a fresh LoRA on the merged SFT model with TRL's DPOTrainer; the reference is the merged SFT model
              (ref_model=None with a PEFT policy: TRL scores the reference with the DPO adapter disabled)
  merged      a PEFT model with its adapter folded into the weights
"""
from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass

from datasets import Dataset
from peft import LoraConfig
from transformers.trainer_callback import PrinterCallback
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

from ..provenance import Tracker
from ..precision import trainer_precision
from ..train import Meter
from .chats import LONG_MODES, check_pairs

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SFT_SCHEDULERS = ("cosine", "plateau")


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
        # DPO's reference: `model` itself, the merged SFT model. TRL 1.16 with peft_config wraps `model` in the fresh
        # LoRA, and ref_model=None then scores the reference with that adapter disabled (the merged SFT weights); a
        # separate copy of the model as ref_model would be the same weights held twice
        ref_model = None    # DPO's reference = the merged SFT model (`model` with the DPO adapter disabled)
        trainer = DPOTrainer(model=model, ref_model=ref_model, args=args,
                             train_dataset=_rows(train_pairs, ("prompt", "chosen", "rejected")),
                             processing_class=tok, peft_config=lora.config(), callbacks=[meter])
        res = _fit(trainer, meter, device)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    res["model"] = trainer.model
    return res


def merged(peft_model):
    """The PEFT model with its adapter folded into the weights (a plain transformers model)."""
    return peft_model.merge_and_unload()

