"""GPU-profile dry runs of notebook 05 (full and gpu-small), as test_full_dryrun.py describes them."""
from __future__ import annotations

import pytest

from dryrun_support import assert_finite, full_run, reported

pytestmark = pytest.mark.dryrun


def test_looped_notebook_full_profile(full_offline):
    """The looped model at d = 20 (width 256, 30 loops, window 15) and the 12-layer standard model: two steps each
    of 8 prompts, then every section of notebook 05 on a small test set. The batch is cut, not the model: at the
    profile's 64 prompts the two steps of the 22 jobs were 3/4 of this file's ~100 s; the memory of the real batch
    is helpers.planning's (test_planning)."""
    run = full_run("05_looped_transformer", LOOPED_CUT)
    assert run.cfg.model.n_dims == 20 and run.cfg.model.loops == 30
    _sections_looped(run)


LOOPED_CUT = {"train.steps": 2, "train.batch_size": 8, "train.test_prompts": 4, "train.log_every": 1,
              "option_steps": 1, "task_steps": 1, "seeds": (0, 1), "option_seeds": (0,), "task_seeds": (0,),
              "baseline_prompts": 16, "eval_loops": (1, 30, 240), "tasks": ("decision_tree",)}


def test_looped_notebook_gpu_small_profile(full_offline):
    """gpu-small: d = 10 (21 points), width 128, the paper's 30 loops; every section of notebook 05."""
    run = full_run("05_looped_transformer", LOOPED_CUT, "gpu-small")
    assert (run.cfg.model.n_dims, run.cfg.model.width, run.cfg.model.loops) == (10, 128, 30)
    _sections_looped(run)


def _sections_looped(run):
    from helpers.looped import report as R
    from helpers.looped import study as S

    base, head = S.baselines(run), S.headline(run)
    options, tasks = S.options(run, head), S.tasks(run)
    R.baselines_table(base), R.training_table(head), R.gate_table(head, base), R.escape_table(head, base)
    R.cost_table(head), R.ratio_rows(head, base), R.options_rows(options, base), R.tasks_rows(tasks)
    R.training_figure(head), R.bands_figure(head, base), R.loops_figure(head)
    assert R.verdict_line(head, run.cfg.parity_margin) and R.drift(head)["far"] == 240
    reported(R, run)
    for recs in (base, head, options, tasks):
        assert_finite(recs, "05")
