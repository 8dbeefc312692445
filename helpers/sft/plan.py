"""Notebook 06's full-profile plan: the GPU memory of its SFT and DPO steps and the time of its runs, from the
config (helpers.planning; `python -m helpers plan`)."""
from __future__ import annotations

from ..memory import counts, training_plan
from ..models import smollm2_config
from ..planning import NotebookPlan, lora_params, train_seconds
from .config import PROFILES, variant_settings
from .report import SFT_VARIANTS


def full_plan(notebook: str, b: dict, cfg=None, bf16: bool = True) -> NotebookPlan:
    """The full profile's plan: SFT and DPO steps of LoRA on SmolLM2-360M, held-out scoring (helpers.planning)."""
    cfg = cfg or PROFILES["full"]
    conf = smollm2_config()
    n, lora = counts(conf)["total"], lora_params(conf, cfg.lora)
    d, T = cfg.dpo, cfg.max_length
    # on a card without bf16 the frozen weights stay fp32 and the adapters train in fp16 mixed precision
    # (helpers.precision.trainer_precision)
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
