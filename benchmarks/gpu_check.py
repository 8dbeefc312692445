"""`make gpu-check`: a ten-minute check of one GPU (<= 10 min on an H100, <= 20 on a T4), ready before anyone has
one. In order, into ONE record (results/benchmarks/gpu-check-<card>-<id>.json, helpers.results.save_run):

  1 precision   the precision rule on this device (helpers.precision: effective_precision("auto"), model_dtype),
                torch.backends.cuda's flash / mem-efficient / math / cuDNN SDPA flags, which backends accept a
                (B, H, T, D) call in the 16-bit dtype (sdpa_kernel([one]) each), and which one a default call runs
                (torch._fused_sdp_choice)
  2 steps       for each notebook its largest gpu-small step and its largest full step (by memory, from
                families.plan), built from the family's own config for that profile with random weights (no hub),
                `--steps` steps at the planned shape and in the precision the plan gives this card: peak memory
                (torch.cuda.max_memory_allocated) against the plan's figure, tokens/s, a finite loss, the GradScaler's
                scale where fp16; on a card with bf16 each step again as on a T4 (the plan without bf16: fp16 mixed
                precision, fp32 weights; the flash kernel off). A step whose plan does not fit this card is skipped
                and says so
  3 levers      Pythia-410m at 8 x 1024 (the largest of 8/4/2/1 the plan fits here): torch.compile, TF32 and fused
                AdamW all off, bench_gpu's defaults (fused + TF32, eager) and all on: tokens/s and MFU against
                planning.card_of's peak
  4 looped      notebook 05's full-profile model at its final curriculum point alone (and its standard model), then
                per_gpu (8) of it side by side on the GPU (helpers.parallel.map_processes, as bench_gpu packs it)

Plans read the record (helpers.planning.gpu_check_records): its bench_gpu-named cases ("cases" table) replace the
benchmark's on the same card, and NotebookPlan.on(card) takes a measured peak for a step of the same setting.

CPU mode (`--cpu`, or automatically without CUDA) runs the same code path on shrunken stand-ins (width 32, 2
layers, batch <= 2 x 32, 2 steps, fp32; 2 runs packed; torch.compile with the "eager" backend) in ~30 s and writes
its record where LAB_RESULTS points; plans never read a CPU-mode record. Its peak is the tensors' bytes (weights,
gradients, optimizer state, activations saved for backward), as the CPU has no allocator statistics.

    python benchmarks/gpu_check.py [--steps 3] [--looped-steps 50] [--cpu]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import math
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))      # `python benchmarks/gpu_check.py` from anywhere

GiB = 1024 ** 3
SHRINK = {"hidden": 32, "layers": 2, "heads": 4, "kv_heads": 2, "inter": 64, "vocab": 256, "batch": 2, "seq": 32}
SETTING = re.compile(r"^(?P<precision>[\w-]+?)(?: weights, no grad)?, batch (?P<batch>\d+)(?: x (?P<seq>\d+))?")
TRAIN_PRECISIONS = ("fp32", "bf16-autocast", "fp16-amp", "pure-bf16", "bf16-frozen")
# the rows of the record's "cases" table are named like bench_gpu's cases (helpers.planning.bench reads them)
LEVERS = {"off": dict(fused=False, tf32=False, compiled=False),          # for-each AdamW, no TF32, eager
          "default": dict(fused=True, tf32=True, compiled=False),       # bench_gpu's "pythia-410m train sdpa"
          "on": dict(fused=True, tf32=True, compiled=True)}


# ------------------------------------------------------------------------------------------------ the device
@dataclasses.dataclass
class Device:
    name: str                   # "cuda" or "cpu"
    gpu: str                    # torch's name of the GPU, or "cpu"
    card: object                # planning.Card or None
    memory_gib: float | None    # the GPU's memory (None on the CPU: stand-ins, nothing is checked)
    bf16: bool                  # the card has bf16 (False on the CPU: the stand-ins run fp32)

    @property
    def cpu(self) -> bool:
        return self.name == "cpu"

    def sync(self):
        if not self.cpu:
            torch.cuda.synchronize()


def device_of(cpu: bool) -> Device:
    from helpers.planning import card_of
    from helpers.precision import bf16_available

    if cpu or not torch.cuda.is_available():
        return Device("cpu", "cpu", None, None, False)
    gpu = torch.cuda.get_device_name(0)
    return Device("cuda", gpu, card_of(gpu), torch.cuda.get_device_properties(0).total_memory / GiB,
                  bf16_available("cuda"))


def card_key(dev: Device) -> str:
    from helpers.planning import CARDS
    from helpers.results import slug

    if dev.cpu:
        return "cpu"
    key = next((k for k, c in CARDS.items() if c is dev.card), None)
    return slug(key or dev.gpu).lower()


# ------------------------------------------------------------------------------------------------ 1 precision
def precision_check(dev: Device) -> dict:
    """The precision rule here and the attention kernel a (B, H, T, D) 16-bit call gets."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from helpers.precision import effective_precision, model_dtype

    row = {"device": dev.gpu, "precision": effective_precision("auto", dev.name),
           "model_dtype": str(model_dtype(dev.name)).removeprefix("torch.")}
    if not dev.cpu:
        b = torch.backends.cuda
        row.update(flash_enabled=b.flash_sdp_enabled(), mem_efficient_enabled=b.mem_efficient_sdp_enabled(),
                   math_enabled=b.math_sdp_enabled(), cudnn_enabled=b.cudnn_sdp_enabled())
    dtype = torch.float32 if dev.cpu else torch.bfloat16 if dev.bf16 else torch.float16
    q = torch.randn(2, 8, 256, 64, device=dev.name, dtype=dtype)
    attn = torch.nn.functional.scaled_dot_product_attention
    row["sdpa_dtype"] = str(dtype).removeprefix("torch.")
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                    SDPBackend.MATH):
        try:
            with sdpa_kernel([backend]):
                attn(q, q, q, is_causal=True)
            row[f"sdpa_{backend.name.lower()}_works"] = True
        except RuntimeError:
            row[f"sdpa_{backend.name.lower()}_works"] = False
    try:                                # the dispatcher's own choice for this call (what a default call runs)
        row["sdpa_runs"] = SDPBackend(torch._fused_sdp_choice(q, q, q, None, 0.0, True)).name.lower()
    except (AttributeError, RuntimeError, ValueError):
        row["sdpa_runs"] = "unknown"
    return row


# ------------------------------------------------------------------------------------------------ 2 steps
@dataclasses.dataclass
class Step:
    """One planned step to build: the plan's name and setting, the model's config, how it trains."""
    notebook: str
    profile: str
    name: str
    setting: str
    plan_gib: float
    kind: str                   # "train" | "forward" | "looped"
    config: object              # transformers config, or (LoopedStudyConfig) for "looped"
    precision: str = "fp32"     # TRAIN_PRECISIONS, or the forward pass's "bf16" / "fp32" weights
    batch: int = 1
    seq: int = 1
    checkpointing: bool = False
    lora: object = None         # helpers.sft LoraSettings
    frozen: tuple = ()          # name fragments of parameters kept frozen (notebook 04's control: embeddings)


def _model_config(notebook: str, cfg, name: str):
    """(transformers config, lora, frozen) of a plan's step, from the family's config of the profile (what its
    full_plan plans); a step no stand-in is written for raises."""
    from helpers import families

    package = families.family(notebook).package
    if package == "baselines":
        from helpers.models import neox_config
        return neox_config(cfg.lm.size, vocab_size=50304), None, ()
    if package == "surgery":
        from helpers.surgery.study import model_config
        return model_config(cfg, name.split()[0].removeprefix("pythia-"), 50304)[0], None, ()
    if package == "compression" and ("teacher" in name):
        from helpers.compression.plan import SHAPES
        # the control arm trains the block Linears at full rank (embeddings frozen); calibration is a forward pass
        return SHAPES[cfg.model][0](), None, ("embed", "lm_head") if "control" in name else ()
    if package == "sft":
        from helpers.models import smollm2_config
        return smollm2_config(), cfg.lora, ()
    if package == "pretraining":
        from helpers.data import bpe_vocab
        from helpers.models import neox_config
        return neox_config(cfg.lm.size, vocab_size=bpe_vocab(cfg.lm.tokenizer) or 32000), None, ()
    raise ValueError(f"gpu_check: no stand-in for {notebook}'s step '{name}'")


def plan_steps(notebook: str, profile: str, dev: Device, records: list[dict]) -> list[Step]:
    """The notebook's largest step in `profile` (families.plan), as planned for this card and, on a card with bf16,
    again as planned for one without (a T4)."""
    from helpers import families, planning

    study = families.family(notebook).study_module()
    cfg = study.PROFILES[profile]
    planned = families.plan(notebook, records, profile=profile)
    largest = planned.peak.name
    bench = planning.bench(records)
    out = []
    for bf16, variant in ((dev.bf16, "main"), (False, "t4-like")) if dev.bf16 else ((False, "main"),):
        # families.plan plans gpu-small without bf16 and full with it: reused where that is this plan's
        same = bf16 == (profile == "full")
        plan = planned if same else study.full_plan(notebook, bench, cfg, bf16=bf16)
        m = next(p for p in plan.memory if p.name == largest)
        common = dict(notebook=notebook, profile=profile, name=m.name, setting=m.setting, plan_gib=m.total / GiB)
        if families.family(notebook).package == "looped":
            step = Step(kind="looped", config=cfg, batch=cfg.train.batch_size, seq=2 * cfg.model.n_positions,
                        **common)
        else:
            got = SETTING.match(m.setting)
            if got is None:
                raise ValueError(f"gpu_check: cannot read the setting '{m.setting}' of {notebook}'s {m.name}")
            conf, lora, frozen = _model_config(notebook, cfg, m.name)
            prec = got["precision"]
            step = Step(kind="train" if prec in TRAIN_PRECISIONS else "forward", config=conf, precision=prec,
                        batch=int(got["batch"]), seq=int(got["seq"]), lora=lora, frozen=frozen,
                        checkpointing="gradient checkpointing" in m.setting, **common)
        out.append((variant, step))
    return out


def shrink(step: Step) -> Step:
    """The step's stand-in for the CPU: the same model family at width 32, 2 layers, batch <= 2 x 32, fp32."""
    s = SHRINK
    if step.kind == "looped":
        cfg = step.config
        m = dataclasses.replace(cfg.model, n_dims=4, n_positions=9, width=32, n_head=2, loops=3,
                                window=min(cfg.model.window, 3))
        from helpers.looped.training import fixed
        small = dataclasses.replace(cfg, model=m, train=dataclasses.replace(
            cfg.train, batch_size=8, dims=fixed(m.n_dims), points=fixed(m.n_positions), loops=fixed(m.loops)))
        return dataclasses.replace(step, config=small, batch=8, seq=2 * m.n_positions, precision="fp32")
    conf = step.config.__class__.from_dict(step.config.to_dict())
    kv = getattr(conf, "num_key_value_heads", None)
    conf.hidden_size, conf.num_hidden_layers, conf.num_attention_heads = s["hidden"], s["layers"], s["heads"]
    conf.intermediate_size, conf.vocab_size = s["inter"], s["vocab"]
    if kv is not None:
        conf.num_key_value_heads = s["kv_heads"] if kv < step.config.num_attention_heads else s["heads"]
    if getattr(conf, "head_dim", None):
        conf.head_dim = s["hidden"] // s["heads"]
    conf.max_position_embeddings = max(getattr(conf, "max_position_embeddings", 0) or 0, s["seq"])
    return dataclasses.replace(step, config=conf, batch=min(step.batch, s["batch"]), seq=min(step.seq, s["seq"]),
                               precision="fp32")


def _runtime(precision: str):
    """(weights dtype, autocast dtype or None, GradScaler or not) of a plan's precision."""
    return {"fp32": (torch.float32, None, False), "bf16-autocast": (torch.float32, torch.bfloat16, False),
            "fp16-amp": (torch.float32, torch.float16, True), "pure-bf16": (torch.bfloat16, None, False),
            "bf16-frozen": (torch.bfloat16, torch.bfloat16, False), "bf16": (torch.bfloat16, None, False)}[precision]


class Peak:
    """Peak memory of what runs inside: torch.cuda.max_memory_allocated on CUDA; on the CPU the tensors' bytes:
    parameters, gradients, optimizer state (2 per trainable parameter: Adam) and the activations saved for backward
    (storages other than the parameters')."""

    def __init__(self, dev: Device):
        self.dev, self.saved = dev, {}

    def __enter__(self):
        if self.dev.cpu:
            def pack(t):
                s = t.untyped_storage()
                self.saved[s.data_ptr()] = s.nbytes()
                return t
            self.hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
            self.hooks.__enter__()
        else:
            gc.collect()                    # the previous case's model and optimizer
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        if self.dev.cpu:
            self.hooks.__exit__(*exc)

    def gib(self, model) -> float:
        if not self.dev.cpu:
            return torch.cuda.max_memory_allocated() / GiB
        params = list(model.parameters())
        ptrs = {p.untyped_storage().data_ptr() for p in params}
        weights = sum(p.nbytes for p in params)
        trainable = sum(p.nbytes for p in params if p.requires_grad)
        return (weights + 3 * trainable + sum(n for ptr, n in self.saved.items() if ptr not in ptrs)) / GiB


def _build(step: Step, dev: Device, weights):
    from transformers import AutoModelForCausalLM

    with torch.device(dev.name):
        model = AutoModelForCausalLM.from_config(step.config, dtype=weights, attn_implementation="sdpa")
    if step.lora is not None:
        from peft import get_peft_model
        model = get_peft_model(model, step.lora.config())
    for n, p in model.named_parameters():
        if any(f in n for f in step.frozen):
            p.requires_grad_(False)
    if step.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    return model


def lm_steps(step: Step, dev: Device, steps: int, flash: bool = True, fused: bool = True, tf32: bool = True,
             compiled: bool = False) -> dict:
    """`steps` steps (the first a warm-up, untimed) of an LM at the step's shape and precision: tokens/s, peak
    memory, the last loss, the loss scaler's state; flash=False keeps the flash SDPA kernel out (as on a T4)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from helpers.models import count_params

    weights, autocast, scaled = _runtime(step.precision)
    if step.kind == "forward" and step.precision == "fp32" and not dev.cpu:
        autocast = torch.float16            # fp32 weights on a card without bf16: helpers.precision.inference_autocast
    torch.backends.cuda.matmul.allow_tf32 = tf32
    # flash off: the kernels a T4 has (no flash before sm80); else torch's own choice, as the notebooks run
    kernels = contextlib.nullcontext() if flash else sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
    train = step.kind == "train"
    with Peak(dev) as peak, kernels:
        model = _build(step, dev, weights)
        model.train(train)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, fused=fused, foreach=None if fused else True) if train else None
        scaler = torch.amp.GradScaler(dev.name) if scaled and not dev.cpu else None
        forward = model
        if compiled:
            forward = torch.compile(model, backend="eager" if dev.cpu else "inductor")
        ids = torch.randint(0, step.config.vocab_size, (step.batch, step.seq), device=dev.name)
        losses, skipped = [], 0

        def one():
            nonlocal skipped
            with torch.autocast(dev.name, dtype=autocast, enabled=autocast is not None), \
                    torch.set_grad_enabled(train):
                loss = forward(input_ids=ids, labels=ids).loss
            if train:
                if scaler is not None:
                    before = scaler.get_scale()
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    skipped += scaler.get_scale() < before
                else:
                    loss.backward()
                    opt.step()
                opt.zero_grad(set_to_none=True)
            losses.append(loss.detach())

        one()
        dev.sync()
        t0 = time.perf_counter()
        for _ in range(max(1, steps - 1)):
            one()
        dev.sync()
        s = (time.perf_counter() - t0) / max(1, steps - 1)
    loss = float(losses[-1].float())
    n, trainable = count_params(model), count_params(model, trainable_only=True)
    tps = step.batch * step.seq / s
    row = {"step_s": s, "tokens_per_s": tps, "peak_gib": peak.gib(model), "loss": loss,
           "loss_finite": math.isfinite(loss), "params": n, "trainable": trainable, "batch": step.batch,
           "seq": step.seq, "run_precision": step.precision, "flash_allowed": flash,
           # MFU's FLOPs: 6 N per token to train, 4 N with frozen weights (no weight gradients), 2 N forward
           "flops_per_s": (2 if not train else 6 if trainable == n else 4) * n * tps}
    if scaler is not None:
        row.update(scaler_scale=scaler.get_scale(), scaler_skipped_steps=skipped)
    model = opt = forward = scaler = None
    if compiled:
        torch._dynamo.reset()               # its caches hold the compiled model
    torch.backends.cuda.matmul.allow_tf32 = True
    return row


def _final_point(cfg, steps: int):
    from helpers.looped.training import fixed

    m = cfg.model
    return m, dataclasses.replace(cfg.train, dims=fixed(m.n_dims), points=fixed(m.n_positions), loops=fixed(m.loops),
                                  time_budget_s=None, log_every=steps, steps=steps)   # losses: first, last


def looped_run(step: Step, dev: Device, steps: int, standard: bool = False) -> dict:
    """Notebook 05's model at its final curriculum point (fp32, no autocast: as the notebook trains it)."""
    from helpers.looped.config import standard_config
    from helpers.looped.training import train_model

    m, tcfg = _final_point(step.config, steps)
    if standard:
        m = standard_config(step.config)
    train_model(m, dataclasses.replace(tcfg, steps=1), 0, dev.name)                 # warm-up (kernels, allocator)
    with Peak(dev) as peak:
        res = train_model(m, tcfg, 0, dev.name)
    loss = float(res["curve"][max(res["curve"])])
    return {"steps_per_s": res["steps_per_s"], "tokens_per_s": res["steps_per_s"] * step.batch * step.seq,
            "peak_gib": peak.gib(res["model"]), "loss": loss, "loss_finite": math.isfinite(loss),
            "params": res["params"], "batch": step.batch, "seq": step.seq, "run_precision": "fp32"}


def check_step(variant: str, step: Step, dev: Device, steps: int, looped_steps: int) -> dict:
    from helpers.memory import HEADROOM

    row = {"notebook": step.notebook, "profile": step.profile, "variant": variant, "step": step.name,
           "setting": step.setting, "plan_gib": step.plan_gib, "stand_in": dev.cpu}
    if not dev.cpu and step.plan_gib > HEADROOM * dev.memory_gib:
        return {**row, "skipped": f"the plan's {step.plan_gib:.1f} GiB does not fit this card's "
                                  f"{dev.memory_gib:.1f} GiB ({HEADROOM:.0%})"}
    run = shrink(step) if dev.cpu else step
    if variant == "t4-like" and run.kind == "looped":
        return {**row, "skipped": "fp32 on every card (no autocast): the main row is what a T4 runs"}
    try:
        if run.kind == "looped":
            row.update(looped_run(run, dev, max(2, looped_steps if not dev.cpu else 2)))
        else:
            row.update(lm_steps(run, dev, steps, flash=variant != "t4-like"))
    except torch.OutOfMemoryError as e:
        return {**row, "error": f"out of memory: {str(e).splitlines()[0]}"}
    if not dev.cpu:
        row["peak_over_plan"] = row["peak_gib"] / step.plan_gib
    return row


# ------------------------------------------------------------------------------------------------ 3 levers
def levers(dev: Device, steps: int) -> list[dict]:
    """Pythia-410m (its stand-in on the CPU) with the training core's levers off, at bench_gpu's defaults, on."""
    from helpers.memory import largest_micro_batch, training_plan
    from helpers.models import pythia_config

    conf = pythia_config("410m")
    prec = "fp32" if dev.cpu else "bf16-autocast" if dev.bf16 else "fp16-amp"
    batch = 8 if dev.cpu else largest_micro_batch("pythia-410m", conf, 1024, prec, dev.memory_gib, (1, 2, 4, 8))
    plan = training_plan("pythia-410m", conf, batch or 1, 1024, prec)
    step = Step("levers", "-", "pythia-410m", plan.setting, plan.total / GiB, "train", conf, prec, batch or 1, 1024)
    run = shrink(step) if dev.cpu else step
    rows = []
    for case, kw in LEVERS.items():
        row = {"case": case, **kw, "compile_backend": ("eager" if dev.cpu else "inductor") if kw["compiled"] else None,
               "plan_gib": step.plan_gib, "stand_in": dev.cpu}
        if batch is None:
            rows.append({**row, "skipped": "batch 1 x 1024 does not fit this card by the plan"})
            continue
        try:
            row.update(lm_steps(run, dev, steps + (2 if kw["compiled"] else 0), **kw))   # compile in the warm-up
        except torch.OutOfMemoryError as e:
            row["error"] = f"out of memory: {str(e).splitlines()[0]}"
        if "flops_per_s" in row and dev.card is not None:
            row["mfu"] = row["flops_per_s"] / (dev.card.tflops("16-bit") * 1e12)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ 4 looped packed
def _packed_run(steps: int, seed: int, device: str, cpu: bool) -> dict:
    """One looped run in a worker (helpers.parallel): its wall-clock span (after a warm-up step)."""
    from helpers.looped import config as L
    from helpers.looped.training import train_model

    cfg = L.PROFILES["full"]
    step = Step("05", "full", "looped", "", 0.0, "looped", cfg, batch=cfg.train.batch_size)
    m, tcfg = _final_point((shrink(step) if cpu else step).config, steps)
    train_model(m, dataclasses.replace(tcfg, steps=1), seed, device)
    start = time.time()
    res = train_model(m, tcfg, seed, device)
    return {"start": start, "end": time.time(), "steps": res["steps"]}


def looped_pack(dev: Device, steps: int) -> list[dict]:
    """05's full-profile looped model alone (and its standard model), then per_gpu runs side by side (2 on the CPU)."""
    from helpers.looped import config as L
    from helpers.parallel import map_processes

    cfg = L.PROFILES["full"]
    step = Step("05_looped_transformer", "full", "looped", "", 0.0, "looped", cfg, batch=cfg.train.batch_size,
                seq=2 * cfg.model.n_positions)
    run = shrink(step) if dev.cpu else step
    alone = looped_run(run, dev, steps)
    std = looped_run(run, dev, steps, standard=True)
    k = 2 if dev.cpu else cfg.per_gpu
    out = map_processes(_packed_run, {i: (steps, i, dev.name, dev.cpu) for i in range(k)}, workers=k,
                        device=dev.name, per_device=k, n_devices=1)
    span = max(r["end"] for r in out.values()) - min(r["start"] for r in out.values())
    summed = sum(r["steps"] for r in out.values()) / span
    return [{"case": "alone", "runs": 1, "steps_per_s": alone["steps_per_s"], "peak_gib": alone["peak_gib"],
             "loss": alone["loss"], "standard_steps_per_s": std["steps_per_s"], "d": run.config.model.n_dims,
             "loops": run.config.model.loops, "batch": run.batch, "stand_in": dev.cpu},
            {"case": "packed", "runs": k, "steps_per_s_summed": summed, "speedup": summed / alone["steps_per_s"],
             "stand_in": dev.cpu}]


def bench_cases(lever_rows: list[dict], looped_rows: list[dict]) -> list[dict]:
    """The measurements named as bench_gpu names them, where they are the same case (helpers.planning.bench)."""
    rows = []
    default = next((r for r in lever_rows if r["case"] == "default" and "tokens_per_s" in r), None)
    if default and default["batch"] == 8 and default["seq"] == 1024:
        rows.append({"case": "pythia-410m train sdpa", **{k: v for k, v in default.items() if k != "case"}})
    alone, packed = looped_rows
    rows.append({"case": "05 looped d=20", "looped_steps_per_s": alone["steps_per_s"],
                 "standard_steps_per_s": alone["standard_steps_per_s"], "batch": alone["batch"],
                 "loops": alone["loops"], "d": alone["d"]})
    rows.append({"case": "05 looped d=20 packed", **{k: v for k, v in packed.items() if k != "case"}})
    return rows


# ------------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="steps per case, the first one a warm-up (CPU mode: 2)")
    ap.add_argument("--looped-steps", type=int, default=50, help="timed steps of the looped model (CPU mode: 2)")
    ap.add_argument("--cpu", action="store_true", help="shrunken stand-ins on the CPU (automatic without CUDA)")
    args = ap.parse_args(argv)

    from helpers import families, planning
    from helpers.results import save_run

    t0 = time.perf_counter()
    dev = device_of(args.cpu)
    steps, looped_steps = (2, 2) if dev.cpu else (args.steps, args.looped_steps)
    if dev.cpu:
        torch.manual_seed(0)
        torch.set_num_threads(1)        # tiny ops: threads only wait on each other (helpers.parallel.CPU_THREADS)
        print("gpu_check: CPU mode (shrunken stand-ins, fp32): checks the code path, measures nothing about a GPU")
    print(f"device: {dev.gpu} ({card_key(dev)})", flush=True)

    prec = precision_check(dev)
    print(f"1 precision {prec['precision']}, model dtype {prec['model_dtype']}, sdpa runs {prec['sdpa_runs']}",
          flush=True)

    records = planning.bench_records()
    step_rows = []
    for nb in families.NOTEBOOKS:
        for profile in ("gpu-small", "full"):
            for variant, step in plan_steps(nb, profile, dev, records):
                r = check_step(variant, step, dev, steps, looped_steps)
                step_rows.append(r)
                what = r.get("skipped") or r.get("error") or (
                    f"{r['tokens_per_s']:>10,.0f} tokens/s  peak {r['peak_gib'] * 1024:8.1f} MiB "
                    f"(plan {r['plan_gib']:5.1f} GiB)"
                    f"  loss {r['loss']:.3f}" + (f"  scale {r['scaler_scale']:.0f}" if "scaler_scale" in r else ""))
                print(f"2 {nb[:2]} {profile:<9} {variant:<7} {step.name[:34]:<34} {what}", flush=True)

    lever_rows = levers(dev, steps)
    for r in lever_rows:
        print(f"3 pythia-410m levers {r['case']:<7} " + (r.get("skipped") or r.get("error") or
              f"{r['tokens_per_s']:>10,.0f} tokens/s  MFU {r.get('mfu', float('nan')):6.1%}"), flush=True)

    looped_rows = looped_pack(dev, looped_steps)
    print(f"4 looped alone {looped_rows[0]['steps_per_s']:.1f} steps/s; {looped_rows[1]['runs']} packed "
          f"{looped_rows[1]['steps_per_s_summed']:.1f} steps/s summed (x{looped_rows[1]['speedup']:.2f})", flush=True)

    wall = time.perf_counter() - t0
    config = {"gpu": dev.gpu, "card": card_key(dev), "cpu_mode": dev.cpu, "steps": steps,
              "looped_steps": looped_steps, "torch": torch.__version__}
    done = [r for r in step_rows if "tokens_per_s" in r]
    metrics = {"wall_s": wall, "steps_measured": len(done), "steps_skipped": len(step_rows) - len(done),
               "steps_finite": sum(bool(r["loss_finite"]) for r in done),
               **{f"levers.{r['case']}.tokens_per_s": r["tokens_per_s"] for r in lever_rows if "tokens_per_s" in r},
               "looped.packed.speedup": looped_rows[1]["speedup"]}
    path = save_run("benchmarks", "gpu_check", f"gpu-check-{card_key(dev)}", config, metrics,
                    profile="cpu" if dev.cpu else "gpu", seed=0, device=dev.name,
                    tables={"precision": [prec], "steps": step_rows, "levers": lever_rows, "looped": looped_rows,
                            "cases": bench_cases(lever_rows, looped_rows)})
    print(f"record: {path} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
