"""The precision policy: the one rule that decides fp32, bf16 or fp16 mixed precision, and what follows from it
(the Trainer's flags, the dtype a pretrained model is loaded in, the autocast of forward passes).

`precision_for(requested, cuda, bf16)` is the rule, torch-free, so that the planners (helpers.planning and the
families' `full_plan`, read by Analysis) plan a card by the same rule the training core runs by:

    precision_for("auto", cuda=True, bf16=False)   # 'fp16-amp': a T4 / P100 / V100
    effective_precision("auto", "cuda")            # the same rule for the device this process has (imports torch)

torch is imported only in the functions that touch a device.
"""
from __future__ import annotations

import contextlib
import warnings

PRECISIONS = ("auto", "fp32", "bf16-autocast", "pure-bf16", "fp16-amp")     # TrainConfig.precision


def precision_for(requested: str, cuda: bool, bf16: bool) -> str:
    """THE rule: the precision a run asking for `requested` gets on a device that is (not) CUDA and has (no) bf16.
    auto: bf16 autocast on CUDA with bf16; fp16 mixed precision (fp32 master weights, fp16 matmuls, the Trainer's
    dynamic loss scaler) on CUDA without it (T4, P100, V100: the standard choice there, several times faster than
    fp32); else fp32. A bf16 request without bf16 falls back to fp16 mixed precision on CUDA and to fp32 elsewhere;
    fp16 mixed precision off CUDA falls back to fp32; anything else runs as asked."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision '{requested}'; allowed: {', '.join(PRECISIONS)}")
    if requested == "auto":
        return ("bf16-autocast" if bf16 else "fp16-amp") if cuda else "fp32"
    if requested in ("bf16-autocast", "pure-bf16") and not bf16:
        return "fp16-amp" if cuda else "fp32"
    if requested == "fp16-amp" and not cuda:
        return "fp32"
    return requested


def bf16_available(device: str) -> bool:
    """bf16 works on CPUs (slowly) and on CUDA devices of compute capability 8.0+ (A100, H100, L4, RTX 30xx+);
    not on a T4 (7.5) or V100 (7.0). Decided by the capability, not by torch.cuda.is_bf16_supported(), whose default
    (including_emulation=True) says True on a T4 wherever a bf16 tensor can be made: training there would run in
    emulated bf16, without tensor cores (~8x slower than the fp16 mixed precision the plan counts on)."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.is_available() and tuple(torch.cuda.get_device_capability(torch.device(device).index)) \
            >= (8, 0)
    return not str(device).startswith("mps")


def effective_precision(precision: str, device: str) -> str:
    """precision_for on this device (instead of failing in the first step), warning where an explicit request
    cannot be met."""
    cuda = str(device).startswith("cuda")
    got = precision_for(precision, cuda, bf16_available(device))
    if precision in ("bf16-autocast", "pure-bf16") and got != precision:
        warnings.warn(f"precision '{precision}' asked for on {device}, which has no bf16 support: training in "
                      f"{'fp16 mixed precision' if cuda else 'fp32'} instead (set precision='{got}' to silence "
                      "this)", stacklevel=2)
    elif precision == "fp16-amp" and got != precision:
        warnings.warn(f"precision 'fp16-amp' needs a CUDA device, not {device}: training in fp32", stacklevel=2)
    return got


def model_dtype(device: str):
    """The dtype a pretrained model is loaded in: bf16 on a GPU with bf16 (a 7B model is 14 GB instead of 29 GB in
    fp32), fp32 elsewhere (bf16 matmuls are slow on a CPU)."""
    import torch

    return torch.bfloat16 if str(device).startswith("cuda") and bf16_available(device) else torch.float32


def inference_autocast(device: str):
    """The context forward passes without training run in: fp16 autocast on a CUDA GPU without bf16 (T4, P100),
    where the model is loaded in fp32 (model_dtype) and its matmuls would otherwise run at the fp32 rate (a T4: 8 of
    its 65 TFLOP/s); the same fp16 mixed precision the Trainer trains with there. Nothing elsewhere: a GPU with bf16
    loads the model in bf16, and a CPU runs fp32."""
    if effective_precision("auto", device) == "fp16-amp":
        import torch

        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def trainer_precision(device: str) -> dict:
    """TrainingArguments (and TRL config) precision settings for fine-tuning a model loaded in model_dtype: bf16
    on a GPU with bf16, fp16 mixed precision on a GPU without it (the model is then loaded in fp32: fp16 master
    weights would not train), fp32 on a CPU; never TRL's defaults (bf16, gradient checkpointing), which are wrong
    on a CPU."""
    mode = effective_precision("auto", device)
    return {"bf16": mode == "bf16-autocast", "fp16": mode == "fp16-amp", "use_cpu": not str(device).startswith("cuda"),
            "gradient_checkpointing": False}
