"""GPU-profile dry runs of notebook 06 (full and gpu-small), as test_full_dryrun.py describes them."""
from __future__ import annotations

import pytest

from dryrun_support import assert_finite, full_run, reported

pytestmark = pytest.mark.dryrun


SFT_CUT = {"train_rows": 8, "policy_rows": 4, "val_rows": 4, "test_rows": 4, "heldout_rows": 4, "hard_pairs": 4,
           "gen_rows": 2, "gen_tokens": 4, "show_words": 2, "worst_k": 2, "accum_examples": 4, "accum_micro": 1,
           "seeds": (0,), "lesson_seeds": (), "dpo_seeds": (0,), "search_steps": 1, "dpo_search": ((0.1, 5e-5),),
           "dpo_losses": ("sigmoid",),
           "probe_pairs": 2, "speed_batch": 1, "speed_length": 32, "sft.steps": 1, "sft.batch_size": 2,
           "sft.eval_every": 1, "sft.eval_rows": 2, "sft.warmup_steps": 0, "dpo.steps": 1, "dpo.batch_size": 2,
           "dpo.eval_every": 1, "dpo.eval_rows": 2}


def test_sft_notebook_full_profile(full_offline):
    """SmolLM2-360M's shape (2 of its 32 layers) with a ChatML template on UltraChat / UltraFeedback stand-ins:
    every section of notebook 06, one optimizer step for the SFT baseline, each DPO search point and DPO run. The
    lesson arms (lesson_seeds = (): not run) differ from the baseline in TRL settings only, not in shape, and all run
    in the tiny notebook; here they cost ~45 s of the suite's 15-minute budget. DPO runs with the sigmoid loss only:
    IPO is the same job with another TRL loss_type (both run in the tiny notebook; ~10 s here)."""
    from helpers.sft import report as R
    from helpers.sft import study as S

    run = full_run("06_sft_dpo", SFT_CUT)
    assert run.cfg.model == "HuggingFaceTB/SmolLM2-360M" and run.cfg.chat_template == "chatml"
    assert run.cfg.max_length == 1024
    data = S.prepare(run)
    a = S.data_section(run, data)
    sft_runs = S.sft_runs(run, data)
    c = S.lessons_record(run, data, sft_runs)
    pairs = S.preference_pairs(run, data, sft_runs)
    search = S.dpo_search(run, data, sft_runs, pairs)
    dpo = S.dpo_runs(run, data, sft_runs, pairs, search)
    e = S.compare(run, data, dpo)
    assert set(sft_runs) == {("baseline", 0)}                     # lesson_seeds = (): the baseline alone
    R.sft_table(sft_runs), R.lessons_tables(c), R.pairs_table(pairs), R.search_table(search, pairs)
    R.curves_figure(sft_runs, dpo), R.dpo_rows(dpo, pairs, sft_runs["baseline", 0])
    R.models_table(a, sft_runs, dpo, pairs), R.answers_table(e)
    assert "c. the lessons were not run (lesson_seeds = ())" in reported(R, run)
    for recs in (a, sft_runs, c, pairs, search, dpo, e):
        assert_finite(recs, "06")


def test_sft_notebook_gpu_small_profile(full_offline):
    """gpu-small: the same model, data and code as the full profile's dry run above, at its own sequence length
    (384): its data, encoded and cut at that length. The training sections differ from full's only in that length,
    so they are dry-run once, there (twice cost ~90 s of this suite's 15-minute budget)."""
    from helpers.sft import study as S

    run = full_run("06_sft_dpo", SFT_CUT, "gpu-small")
    assert run.cfg.model == "HuggingFaceTB/SmolLM2-360M" and run.cfg.max_length == 384
    assert_finite(S.data_section(run, S.prepare(run)), "06")
