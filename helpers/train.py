"""The training core: one function trains a causal LM, from scratch or fine-tuning, for every LM family.

Built on transformers' Trainer (so `accelerate launch` / torchrun give multi-GPU DDP with no code change):
gradient accumulation, AdamW, schedulers (linear, cosine, constant, step-drop, triangular, reduce-on-plateau) with
warmup, a wall-clock budget, evaluation every N steps (loss and perplexity), bf16 autocast on GPU or the seed's
pure-bf16 weights, tqdm progress, optional wandb (off by default; WANDB_MODE=offline works with no network), and
tokens/s + peak memory for the run record.

    result = train_causal_lm(model, train_blocks, eval_blocks, TrainConfig(max_steps=200, lr=1e-3), device="cpu")
    result["metrics"]["eval_loss"], result["curves"]["eval_loss"]   # {step: value}
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import safetensors.torch
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

from .precision import PRECISIONS, effective_precision
from .provenance import Tracker

SCHEDULERS = ("linear", "cosine", "constant", "step", "triangular", "plateau", "time_drop")
CLOCKS = (None, "cpu")


@dataclass
class TrainConfig:
    max_steps: int = 100                 # optimizer steps (each = batch_size * grad_accum sequences per device)
    batch_size: int = 8                  # per device
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    scheduler: str = "linear"
    warmup_steps: int = 0
    step_every: int = 0                  # step: multiply the lr by step_gamma every step_every steps
    step_gamma: float = 0.1
    step_max_drops: int | None = None    # step: stop dropping after this many drops (1: one drop after step_every)
    cycle_steps: int = 0                 # triangular: steps from the low to the high lr (a full cycle is 2x)
    min_lr_ratio: float = 0.1            # triangular: low lr = min_lr_ratio * lr
    drop_after_s: float | None = None    # time_drop: constant lr, times step_gamma once this much training time passed
    plateau_patience: int = 2            # plateau: evaluations without improvement before the lr is cut
    plateau_factor: float = 0.5
    eval_every: int = 0                  # 0: evaluate only at the end
    eval_batch_size: int | None = None
    time_budget_s: float | None = None   # stop (and evaluate) once this much training time has been spent
    budget_clock: str | None = None      # the clock of time_budget_s and drop_after_s: None = wall time (evaluation
                                         # excluded); "cpu" = this process's CPU time, which a run beside it on
                                         # another core does not eat into (one torch thread per run)
    precision: str = "auto"              # auto = bf16 autocast on CUDA with bf16, fp16 mixed precision (loss
                                         # scaling) on CUDA without it (T4, P100, V100), else fp32
    gradient_checkpointing: bool | None = None   # recompute activations in backward (None = off; the full profile
                                                 # sets it where the memory plan needs it)
    # GPU levers (None = off / the library's default; the full profiles turn them on, benchmarks/bench_gpu.py
    # measures each): torch.compile of the model (the Trainer's torch_compile), TF32 matmuls for fp32 work on CUDA
    # (ignored elsewhere), and AdamW's fused kernel (None: transformers' default, fused since torch 2.8; False: the
    # for-each one)
    compile: bool | None = None
    tf32: bool | None = None
    fused_adamw: bool | None = None
    checkpoint_every_s: float | None = None      # save a checkpoint this often (seconds of wall time) when the caller
                                                 # gives a checkpoint folder; a restart resumes from the newest one
    log_every: int = 10
    wandb: bool = False                  # report to wandb (offline unless WANDB_MODE says otherwise)
    run_name: str = "run"
    progress: bool = True

    def __post_init__(self):
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler '{self.scheduler}'; allowed: {', '.join(SCHEDULERS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{self.precision}'; allowed: {', '.join(PRECISIONS)}")
        for name in ("max_steps", "batch_size", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.scheduler == "step" and self.step_every < 1:
            raise ValueError("scheduler 'step' needs step_every >= 1 (drop the lr every N steps)")
        if self.scheduler == "triangular" and self.cycle_steps < 1:
            raise ValueError("scheduler 'triangular' needs cycle_steps >= 1")
        if self.scheduler == "time_drop" and (self.drop_after_s is None or self.drop_after_s <= 0):
            raise ValueError("scheduler 'time_drop' needs drop_after_s > 0 (seconds of training before the lr drops)")
        if self.scheduler == "plateau" and self.eval_every < 1:
            raise ValueError("scheduler 'plateau' steps on the eval loss: set eval_every >= 1")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be > 0 or None, got {self.time_budget_s}")
        if self.budget_clock not in CLOCKS:
            raise ValueError(f"unknown budget_clock {self.budget_clock!r}; allowed: None (wall time) or 'cpu'")
        if self.checkpoint_every_s is not None and self.checkpoint_every_s <= 0:
            raise ValueError(f"checkpoint_every_s must be > 0 or None, got {self.checkpoint_every_s}")


def lr_lambda(cfg: TrainConfig, state: dict | None = None):
    """The multiplier of the base lr at each optimizer step for the schedulers transformers does not ship.

    step:       warmup, then gamma ** (steps_after_warmup // step_every)
    triangular: warmup, then a triangle between min_lr_ratio and 1 with half-period cycle_steps (Adam's betas
                are left alone: torch's CyclicLR would cycle beta1 unless cycle_momentum=False)
    time_drop:  warmup, then 1 until state["dropped"] (set by the training callback once drop_after_s seconds of
                training have passed), then step_gamma: the seed's "drop the lr at minute 20" of a 30-minute run
    """
    w = cfg.warmup_steps
    state = state if state is not None else {}

    def f(step: int) -> float:
        if step < w:
            return (step + 1) / w
        s = step - w
        if cfg.scheduler == "time_drop":
            return cfg.step_gamma if state.get("dropped") else 1.0
        if cfg.scheduler == "step":
            drops = s // cfg.step_every
            return cfg.step_gamma ** (drops if cfg.step_max_drops is None else min(drops, cfg.step_max_drops))
        phase = (s % (2 * cfg.cycle_steps)) / cfg.cycle_steps     # 0..2
        tri = phase if phase <= 1 else 2 - phase                   # 0 -> 1 -> 0
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * tri

    return f


def lm_collator(rows: list[dict]) -> dict:
    """Stack rows of `input_ids` (and optional `labels`, -100 = ignored) into a right-padded batch."""
    n = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    labels = torch.full((len(rows), n), -100, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        x = torch.as_tensor(r["input_ids"], dtype=torch.long)
        ids[i, : len(x)] = x
        mask[i, : len(x)] = 1
        labels[i, : len(x)] = torch.as_tensor(r["labels"]) if "labels" in r else x
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


RAW_CHECKPOINT = "lab_model.safetensors"


class LabTrainer(Trainer):
    """Trainer whose scheduler can also be step-drop, triangular or time-drop (as LambdaLR on the Trainer's AdamW),
    and whose checkpoints keep the modules' own parameter names (raw_checkpoints)."""

    def __init__(self, *a, lab_cfg: TrainConfig, lab_state: dict | None = None, raw_checkpoints: bool = False, **kw):
        self.lab_cfg, self.lab_state, self.raw_checkpoints = lab_cfg, lab_state, raw_checkpoints
        super().__init__(*a, **kw)

    # Checkpoints keep the modules' own parameter names. transformers 5 renames some on save (GPT-NeoX's lm_head is
    # written as embed_out) and does not rename them back when a run resumes, which silently restarts that layer
    # from its random init (found by the resume test: the loss jumped at the first step after resuming). A
    # surgically changed model could not be rebuilt by from_pretrained either.
    def _save(self, output_dir=None, state_dict=None):
        if not self.raw_checkpoints:
            return super()._save(output_dir, state_dict)
        os.makedirs(output_dir, exist_ok=True)
        safetensors.torch.save_model(self.model, os.path.join(output_dir, RAW_CHECKPOINT))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        raw = os.path.join(resume_from_checkpoint, RAW_CHECKPOINT)
        if not os.path.isfile(raw):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        safetensors.torch.load_model(model or self.model, raw, strict=True, device="cpu")

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.lab_cfg.scheduler in ("step", "triangular", "time_drop") and self.lr_scheduler is None:
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer,
                                                                  lr_lambda(self.lab_cfg, self.lab_state))
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)


class Meter(TrainerCallback):
    """What a run's record keeps from a Trainer (transformers' or TRL's): the curves of its logs and evaluations
    (train_loss, lr, grad_norm, eval_loss, eval_ppl; {step: value}) and the seconds spent evaluating. Given the
    run's TrainConfig it also enforces its wall-clock budget (training time only, evaluation excluded), drops the lr
    once drop_after_s has passed (time_drop) and asks for a checkpoint every checkpoint_every_s."""

    LOGGED = {"loss": "train_loss", "learning_rate": "lr", "grad_norm": "grad_norm"}

    def __init__(self, cfg: TrainConfig | None = None, has_eval: bool = True, checkpointing: bool = False):
        self.cfg, self.has_eval, self.checkpointing = cfg, has_eval, checkpointing
        self.curves = {"train_loss": {}, "eval_loss": {}, "eval_ppl": {}, "lr": {}, "grad_norm": {}}
        self.eval_s = self.eval_cpu_s = 0.0
        self.stopped_by_budget = False
        self.state = {"dropped": False, "dropped_at_step": None}   # shared with the time_drop scheduler
        self.on_train_begin()

    def on_train_begin(self, *a, **kw):
        self.t0 = self.last_save = time.perf_counter()
        self.c0 = time.process_time()

    def training_s(self) -> float:
        """Seconds spent training so far on the budget's clock (evaluation excluded)."""
        if self.cfg is not None and self.cfg.budget_clock == "cpu":
            return self.cpu_s()
        return time.perf_counter() - self.t0 - self.eval_s

    def cpu_s(self) -> float:
        """This process's CPU seconds spent training so far (evaluation excluded)."""
        return time.process_time() - self.c0 - self.eval_cpu_s

    def on_step_end(self, args, state, control, **kw):
        cfg = self.cfg
        if cfg is None:
            return
        spent = self.training_s()
        if cfg.drop_after_s is not None and not self.state["dropped"] and spent >= cfg.drop_after_s:
            self.state.update(dropped=True, dropped_at_step=state.global_step)
        now = time.perf_counter()
        if self.checkpointing and now - self.last_save >= cfg.checkpoint_every_s:
            control.should_save, self.last_save = True, now        # the Trainer keeps the newest one only
        if cfg.time_budget_s is not None and spent >= cfg.time_budget_s:
            self.stopped_by_budget = True
            control.should_training_stop = True
            control.should_evaluate = self.has_eval

    def on_log(self, args, state, control, logs=None, **kw):
        for src, dst in self.LOGGED.items():
            if src in (logs or {}):
                self.curves[dst][state.global_step] = float(logs[src])

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        metrics = metrics or {}
        if "eval_loss" in metrics:
            self.curves["eval_loss"][state.global_step] = float(metrics["eval_loss"])
            self.curves["eval_ppl"][state.global_step] = math.exp(min(float(metrics["eval_loss"]), 50))
        runtime = float(metrics.get("eval_runtime", 0.0))
        self.eval_s += runtime
        self.eval_cpu_s += runtime      # ~ its CPU time with one torch thread (runs with a CPU budget have one)


def train_causal_lm(model, train_ds, eval_ds, cfg: TrainConfig, device: str = "cpu", seed: int = 0,
                    collator=None, output_dir: str | None = None, checkpoint_dir=None, callbacks=()) -> dict:
    """Train `model` on `train_ds` (rows of input_ids[, labels]) and evaluate on `eval_ds`.

    Returns {"metrics", "curves", "provenance", "config"} ready for `results.save_run`.
    pure-bf16 casts the weights (and so AdamW's states) to bfloat16 with no fp32 master copy, as seed 000 ran.
    Checkpoints: with cfg.checkpoint_every_s and a `checkpoint_dir` (one folder per run, e.g.
    `paths.checkpoints_dir() / notebook / run id`), the newest checkpoint (weights, optimizer, scheduler, RNG, data
    position, curves) is kept there; started again after a crash, the same run resumes from it
    (provenance.resumed_from_step) and the folder is removed once the run has finished.
    """
    precision = effective_precision(cfg.precision, device)      # warns (once) where the request cannot be met
    if cfg.precision != "auto" and precision != cfg.precision:
        cfg = replace(cfg, precision=precision)                    # the record says what ran
    if cfg.precision == "pure-bf16":
        model = model.to(torch.bfloat16)
    if cfg.wandb:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_PROJECT", "llm-lowrank-lab")
    if cfg.checkpoint_every_s and checkpoint_dir is not None:
        folder = Path(checkpoint_dir)
        folder.mkdir(parents=True, exist_ok=True)
        result = _train(model, train_ds, eval_ds, cfg, device, seed, collator, str(folder), callbacks,
                        checkpointing=True)
        shutil.rmtree(folder, ignore_errors=True)      # finished: the record holds the result
        return result
    # the Trainer needs an output folder even with saving off: a temporary one is removed when the run ends
    scratch = output_dir or tempfile.mkdtemp(prefix="lab-train-")
    try:
        return _train(model, train_ds, eval_ds, cfg, device, seed, collator, scratch, callbacks)
    finally:
        if output_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)


def _tf32(want: bool | None, device: str) -> bool | None:
    """The Trainer's tf32 argument: as asked on a CUDA GPU that has TF32 (Ampere or newer), else None (torch's
    default), since transformers refuses tf32=True elsewhere and a pre-Ampere GPU has nothing to turn on."""
    if want is None or not str(device).startswith("cuda"):
        return None
    return want if torch.cuda.get_device_capability()[0] >= 8 else None


def _train(model, train_ds, eval_ds, cfg: TrainConfig, device: str, seed: int, collator, scratch: str,
           callbacks=(), checkpointing: bool = False) -> dict:
    eval_every = cfg.eval_every if eval_ds is not None else 0
    precision = effective_precision(cfg.precision, device)     # cfg.precision is already what can run: no warning
    args = TrainingArguments(
        output_dir=scratch,
        run_name=cfg.run_name,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size or cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type={"plateau": "reduce_lr_on_plateau", "constant": "constant_with_warmup"}.get(
            cfg.scheduler, cfg.scheduler if cfg.scheduler in ("linear", "cosine") else "constant"),
        lr_scheduler_kwargs={"patience": cfg.plateau_patience, "factor": cfg.plateau_factor}
        if cfg.scheduler == "plateau" else {},
        warmup_steps=cfg.warmup_steps,
        logging_steps=cfg.log_every,
        eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every or None,
        save_strategy="no",                  # checkpoints, when asked for, are saved by time (Meter), not by steps
        save_total_limit=1 if checkpointing else None,
        report_to=["wandb"] if cfg.wandb else "none",
        bf16=precision == "bf16-autocast",
        fp16=precision == "fp16-amp",
        activation_checkpointing=bool(cfg.gradient_checkpointing),
        use_cpu=device == "cpu",
        seed=seed,  # Trainer re-seeds before building the data order
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=not cfg.progress,
        torch_compile=bool(cfg.compile),
        tf32=_tf32(cfg.tf32, device),
        **({} if cfg.fused_adamw is None else {"optim": "adamw_torch_fused" if cfg.fused_adamw else "adamw_torch"}),
    )
    meter = Meter(cfg, eval_ds is not None, checkpointing)
    trainer = LabTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                                  data_collator=collator or lm_collator, callbacks=[meter, *callbacks], lab_cfg=cfg,
                                  lab_state=meter.state, raw_checkpoints=checkpointing)
    resume = _newest_checkpoint(scratch) if checkpointing else None
    if not cfg.progress:  # quiet means quiet: no progress bar and no printed log dicts (the curves keep them)
        trainer.remove_callback(PrinterCallback)
    with Tracker(device) as tr:
        out = trainer.train(resume_from_checkpoint=resume)
        if resume:       # the curves before the crash come back from the checkpoint's log history
            _merge_history(meter.curves, trainer.state.log_history)
        if eval_ds is not None and trainer.state.global_step not in meter.curves["eval_loss"]:
            trainer.evaluate()
    steps = trainer.state.global_step
    world = max(1, args.world_size)
    seq_len = len(train_ds[0]["input_ids"])
    tokens = steps * cfg.batch_size * cfg.grad_accum * world * seq_len
    train_s = max(float(out.metrics.get("train_runtime", tr.wall_s)) - meter.eval_s, 1e-9)
    metrics = {"steps": steps, "tokens": tokens, "train_loss": float(out.training_loss),
               "train_time_s": round(train_s, 3), "train_cpu_s": round(meter.cpu_s(), 3),
               "tokens_per_s": round(tokens / train_s, 1), "stopped_by_budget": meter.stopped_by_budget,
               "stopped_by": "budget" if meter.stopped_by_budget else "max_steps"}
    if cfg.scheduler == "time_drop":
        metrics["lr_dropped_at_step"] = meter.state["dropped_at_step"]
    if meter.curves["eval_loss"]:
        last = meter.curves["eval_loss"][max(meter.curves["eval_loss"])]
        metrics.update(eval_loss=last, eval_ppl=math.exp(min(last, 50)))
    return {"metrics": metrics, "curves": meter.curves, "config": asdict(cfg), "model": trainer.model,
            "provenance": {**tr.as_dict(), "tokens_per_s": metrics["tokens_per_s"], "world_size": world,
                           "bf16_autocast": args.bf16, "pure_bf16": cfg.precision == "pure-bf16",
                           "fp16_amp": args.fp16,
                           "gradient_checkpointing": bool(cfg.gradient_checkpointing),
                           "resumed_from_step": _step_of(resume) if resume else None}}


def _newest_checkpoint(folder: str) -> str | None:
    found = sorted(Path(folder).glob("checkpoint-*"), key=_step_of)
    return str(found[-1]) if found else None


def _step_of(path) -> int:
    return int(str(path).rsplit("-", 1)[-1])


def _merge_history(curves: dict, history: list[dict]) -> None:
    for h in history:
        step = h.get("step")
        if "loss" in h:
            curves["train_loss"].setdefault(step, float(h["loss"]))
        if "learning_rate" in h:
            curves["lr"].setdefault(step, float(h["learning_rate"]))
        if "eval_loss" in h:
            curves["eval_loss"].setdefault(step, float(h["eval_loss"]))
            curves["eval_ppl"].setdefault(step, math.exp(min(float(h["eval_loss"]), 50)))
    for name, curve in curves.items():
        curves[name] = dict(sorted(curve.items()))
