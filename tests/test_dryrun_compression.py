"""GPU-profile dry runs of notebook 04 (full and gpu-small), as test_full_dryrun.py describes them."""
from __future__ import annotations

import pytest
import torch

from dryrun_support import assert_finite, full_run, reported

pytestmark = pytest.mark.dryrun


def test_compression_notebook_full_profile(full_offline):
    """Mistral-7B-shaped teacher (cut as the module docstring says) through every section of notebook 04: bf16
    never on the CPU, calibration, the three methods, the fit, sensitivity, healing with checkpointing and the
    whitening policies over one calibration draw on both held-out sets (WikiText-2 and the OpenOrca rows). Two draws
    (the report's comparison over draws) run in the tiny notebook; a second draw at this shape cost ~15 s of the
    suite's 15-minute budget."""
    from helpers.compression.data import OPENORCA_SET

    run = full_run("04_lowrank_compression", {**COMPRESSION_CUT, "openorca_rows": 4})
    assert run.cfg.model == "Open-Orca/Mistral-7B-OpenOrca" and run.cfg.heal.gradient_checkpointing
    data = _sections_compression(run)
    assert set(data["teacher"]) == {"english", OPENORCA_SET} and len(data["openorca"]) == 4


COMPRESSION_CUT = {"calib_blocks": 2, "block": 64, "eval_blocks": 2, "sweep_eval_blocks": 1, "sens_eval_blocks": 1,
                   "fit_tokens": 128, "fit_steps": (2,), "fit_rank": 16, "trap_tokens": 16, "trap_rank": 24,
                   "heal_block": 64, "heal.max_steps": 1, "heal.warmup_steps": 0, "reductions": (0.2,),
                   "center_policies": ("none", "except-v"), "center_draws": 1}


def test_compression_notebook_gpu_small_profile(full_offline):
    """gpu-small: SmolLM2-360M's shape (2 of its 32 layers) calibrated on the WikiText-2 stand-in; one held-out set
    (no OpenOrca rows, no WordNet chats): the teacher's evaluation and exp 3. The other sections run the same code on
    another shape, dry-run in the full profile above; on a CPU the only thing gpu-small changes in them is the shape
    (its fp16 mixed precision needs a GPU). Healing here cost ~30 s of the suite's 15-minute budget, 15 s of it
    whiten's bases; the method sweep ~50 s."""
    from helpers.compression import report as R
    from helpers.compression import study as S

    run = full_run("04_lowrank_compression", {**COMPRESSION_CUT, "methods": ("svd", "whiten")}, "gpu-small")
    assert run.cfg.model == "HuggingFaceTB/SmolLM2-360M" and run.cfg.calib_corpus == "wikitext2"
    data = S.prepare(run)
    assert set(data["teacher"]) == {"english"} and data["model"].config.hidden_size == 960
    a = S.exp3(run, data)
    R.exp3_table(a)
    assert_finite(a, "04")


def _sections_compression(run) -> dict:
    from helpers.compression import report as R
    from helpers.compression import study as S

    data = S.prepare(run)
    # bf16 on a GPU (14 GB for the real 7B teacher instead of 29 GB), fp32 on a CPU
    assert next(data["model"].parameters()).dtype == (torch.bfloat16 if run.device == "cuda" else torch.float32)
    a, b = S.exp3(run, data), S.method_sweep(run, data)
    c, d, e = S.fitting(run, data), S.sensitivity(run, data), S.healing(run, data)
    f = S.whitening(run, data)
    R.exp3_table(a), R.sweep_table(b), R.fit_table(c), R.healing_table(e), R.whitening_table(f)
    R.sweep_figure(b), R.sensitivity_figure(d)
    assert R.trap_text(c)
    # one draw; every held-out set the teacher was scored on (full: WikiText-2 and the OpenOrca rows)
    assert sorted(k[1] for k in f) == [0] and {r["set"] for r in R.whitening_rows(f)} == set(data["teacher"])
    reported(R, run)
    assert_finite([a, b, c, d, e, f], "04")
    return data
