"""GPU-profile dry runs: every notebook's `full` configuration, built exactly as PROFILE=full builds it (real model
configs: Pythia-410m, Mistral-7B's layer shapes, the looped model at d = 20, the pretraining LM), run through its
notebook's sections for a minimal unit (one or two optimizer steps, one calibration batch, one compression, one
evaluation) on this CPU, with every hub download replaced by an offline stand-in of the same shape built from
helpers.hub.HUB_IDS (split names, columns, vocabulary at most the real one, random weights).

What is cut, and why (2 cores, 24 GB, a 15-minute budget for the whole suite):
- sequence length (block) 64 instead of 1024/512, and a few blocks of data;
- Pythia-2.8b: its 32 layers at width 2560 need ~45 GB with AdamW, so on a CPU only its experiments' parameter counts
  run (meta device, tests/test_surgery_study.py); the one-step run is in `test_pythia_2p8b_step_on_cuda` (GPU only);
- Mistral-7B: full vocabulary (32,002), head size 128 and GQA 4:1, two decoder layers, width 512 and MLP 1,792
  instead of 4,096 / 14,336 (a float64 eigendecomposition at 14,336 takes minutes here, and notebook 04 makes dozens;
  the GPU benchmark times the real width: results/benchmarks/throughput-*);
- SmolLM2-360M (notebooks 04 in gpu-small and 06): its real width and vocabulary, two of its 32 layers;
- every pretrained stand-in is built once per test and copied on later loads (building 49k-row embeddings each time
  cost a minute per notebook);
- time budgets of a few seconds, one seed, one grid cell per sweep.
Every number a notebook would print comes from the records checked here: all must be finite.

The `gpu-small` profile (one 16 GB GPU without bf16) gets the same treatment with its own configurations (Pythia-70m-
shaped stand-ins, SmolLM2-360M's shape for notebook 04, the looped model at d = 10, the 384 x 6 LM), cut the same way,
through the same section functions (the `_sections_*` helpers both profiles' tests call).
The shared stand-ins are in dryrun_support.py; 04's, 05's and 06's dry runs in test_dryrun_<family>.py.
"""
from __future__ import annotations

import re

import pytest
import torch

from helpers import hub
from dryrun_support import assert_finite, full_run, reported

pytestmark = pytest.mark.dryrun


SURGERY_CUT = {"block": 64, "epochs": None, "train.max_steps": 1, "train.batch_size": 2, "train.grad_accum": 1,
               "eval_blocks": 2, "train.compile": None}


@pytest.mark.parametrize("notebook, exp_id", [("01_attention_lowrank", 2), ("02_mlp_lowrank", 9),
                                              ("03_partial_layers", 13)])
def test_surgery_notebooks_full_profile(full_offline, notebook, exp_id):
    """Real Pythia-410m (405M parameters, 24 layers x 1024) with the experiment's surgery, one optimizer step on
    WikiText-2-shaped data through the Pythia tokenizer's stand-in; the notebook's summary, figures and conclusion."""
    run = full_run(notebook, SURGERY_CUT)
    assert run.cfg.sizes == {"410m": None, "2.8b": None}           # the real configs, not stand-ins
    rec = _sections_surgery(run, notebook, exp_id)
    assert rec["params"]["total"] > 300_000_000


def _sections_surgery(run, notebook, exp_id) -> dict:
    from helpers.surgery import report as R
    from helpers.surgery import study as S

    recs = S.run_experiments(run, [exp_id])
    assert_finite(recs, notebook)
    S.load_reference(run)
    summary = R.table_from_records(run.records)
    R.curves_figure(R.rows(recs), "dry run")
    R.params_figure(summary, "dry run")
    reported(R, run)
    return next(iter(recs.values()))


@pytest.mark.parametrize("notebook, exp_id", [("01_attention_lowrank", 2), ("02_mlp_lowrank", 9),
                                              ("03_partial_layers", 20)])
def test_surgery_notebooks_gpu_small_profile(full_offline, notebook, exp_id):
    """gpu-small: Pythia-70m's shape for 410m (03's exp 20: the 12-layer stand-in for 2.8b), two seeds, one step
    each, on the WikiText-2 stand-in through the Pythia tokenizer's."""
    run = full_run(notebook, {**SURGERY_CUT, "seeds": (0, 1)}, "gpu-small")
    assert run.cfg.sizes["410m"] == {"hidden": 512, "layers": 6, "heads": 8} and run.cfg.corpus == "wikitext2"
    rec = _sections_surgery(run, notebook, exp_id)
    assert rec["profile"] == "gpu-small" and rec["config"]["size"] == run.cfg.sizes[rec["config"]["model"]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="Pythia-2.8b with AdamW needs ~45 GB: runs on a GPU")
def test_pythia_2p8b_step_on_cuda(full_offline):
    from helpers.surgery import study as S

    run = full_run("03_partial_layers", SURGERY_CUT)
    recs = S.run_experiments(run, [20])
    assert_finite(recs, "03 (2.8b)")


DATA_CUT = {"ref_blocks": 2, "ref_block": 64, "lm.block": 64, "lm.eval_blocks": 2, "lm.train.max_steps": 1,
            "lm.train.batch_size": 2, "lm.train.grad_accum": 1, "lm.train.eval_every": 1, "lm.train.warmup_steps": 0}


@pytest.mark.parametrize("profile", ["full", "gpu-small"])
def test_data_notebook_gpu_profiles(full_offline, profile):
    from helpers.baselines import report as R
    from helpers.baselines import study as S

    run = full_run("00_data_and_baselines", DATA_CUT, profile)
    assert run.cfg.lm.corpus == "wikitext2" and run.cfg.ref_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    corpora, reference, pretrain = S.corpora(run), S.reference(run), S.pretrain(run)
    R.corpus_table(corpora), R.fertility_table(corpora), R.reference_table(reference), R.pretrain_table(pretrain)
    R.pretrain_figure(pretrain)
    reported(R, run)
    for recs in (corpora, reference, pretrain):
        assert_finite(recs, "00")


def test_pretraining_notebook_full_profile(full_offline):
    """Notebook 07's LM (NeoX 768 x 10, a BPE trained on the Russian Wikipedia stand-in), one grid cell, one
    schedule, one learning rate, each for a budget of a couple of seconds or two steps."""
    from helpers.pretraining import study as S

    full = S.PROFILES["full"]
    run = full_run("07_pretraining", pretrain_cut(full))
    assert run.cfg.lm.size.hidden == 768 and full.wandb
    _sections_pretraining(run)


def test_pretraining_notebook_gpu_small_profile(full_offline):
    """gpu-small: the 384 x 6 LM on the Russian Wikipedia stand-in, one grid cell, budgets of seconds."""
    from helpers.pretraining import study as S

    small = S.PROFILES["gpu-small"]
    run = full_run("07_pretraining", pretrain_cut(small), "gpu-small")
    assert run.cfg.lm.size.hidden == 384 and run.cfg.lm.corpus == "ruwiki"
    _sections_pretraining(run)


def pretrain_cut(cfg) -> dict:
    from helpers.pretraining import config as PC

    # the stand-in corpus holds ~480 distinct BPE merges' worth of text, and check_inputs refuses a 32,000-token BPE
    # it cannot support (as it should): the dry run trains a 256-token BPE of the same kind on it instead
    return {"lm.tokenizer": "ruwiki-bpe-256", "lm.block": 64, "lm.eval_blocks": 2,
            # a budget well above one step of the 768 x 10 model (~2-5 CPU s, more on a loaded machine):
            # check_inputs refuses a budget shorter than one step
            "lm.train.time_budget_s": 8.0,
            "lm.train.warmup_steps": 0, "lm.train.log_every": 1, "lm.train.batch_size": 1, "lm.train.grad_accum": 1,
            "grid": PC.grid_declaration((1,), (1,)), "grid_seeds": (0,), "reruns": 1, "equal_tokens": 128,
            "token_seeds": (0,), "schedule_steps": 2, "schedules": dict(list(PC.seed_schedules(2).items())[:1]),
            "schedule_seeds": (0,), "lr_range": cfg.lr_range[:1], "lr_seeds": (0,), "new_tokens": 4,
            "quality_samples": 1,
            # W&B keeps process-wide state that would leak into later tests; its logging is tested in a process of
            # its own (test_pretrain_study.py)
            "wandb": False}


def _sections_pretraining(run):
    from helpers.pretraining import report as R
    from helpers.pretraining import study as S

    data = S.data_check(run)
    grid, tokens = S.equal_time_grid(run), S.equal_token_grid(run)
    assert S.reruns(run) == {}                          # reruns = 1: the grid run is the only one
    schedules, lrs = S.schedules(run), S.lr_range(run)
    R.grid_figure(grid), R.schedules_figure(schedules), R.lr_figure(lrs, schedules), R.grid_figure(tokens)
    R.run_table(grid), R.lr_table(lrs, schedules), R.generations_table({"grid": grid}, data)
    reported(R, run)
    for recs in (data, grid, tokens, schedules, lrs):
        assert_finite(recs, "07")


def test_hub_ids_table_matches_what_the_code_loads(full_offline):
    """helpers.hub.HUB_IDS against the calls the GPU profiles' loaders make (function, id, config or split), and
    every hub id named in a study's full or gpu-small profile is in the table."""
    import dataclasses

    from helpers.baselines import study as data_study
    from helpers.compression import data as compression_data
    from helpers.compression import study as compression_study
    from helpers.data import load_corpus, load_pretrained, load_tokenizer
    from helpers.pretraining import study as pretrain_study
    from helpers.sft import chats as sft_data
    from helpers.sft import study as sft_study
    from helpers.surgery import study as surgery_study

    load_corpus("wikitext2"), load_corpus("ruwiki")
    load_tokenizer("EleutherAI/pythia-410m")
    load_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct"), load_pretrained("Open-Orca/Mistral-7B-OpenOrca")
    load_pretrained("HuggingFaceTB/SmolLM2-360M")
    compression_data._splits(compression_study.PROFILES["full"])
    compression_data._splits(compression_study.PROFILES["gpu-small"])
    sft_data.load_rows(sft_study.PROFILES["full"])
    seen = {(fn, ident, arg) for fn, ident, arg in full_offline.calls}
    expected = set()
    for ident, spec in hub.HUB_IDS.items():
        if spec["kind"] == "dataset":     # with a config: load_dataset(repo, config); without: one call per split
            expected |= {("load_dataset", ident, a) for a in ((spec["config"],) if spec["config"] else spec["splits"])}
        else:
            fn = "AutoTokenizer" if spec["kind"] == "tokenizer" else "AutoModelForCausalLM"
            expected.add((f"{fn}.from_pretrained", ident, None))
    assert seen == expected
    # every "owner/name" string in the full profiles is a table entry
    named = set()
    for study in (data_study, surgery_study, compression_study, pretrain_study, sft_study):
        for profile in ("full", "gpu-small"):
            text = repr(dataclasses.asdict(study.PROFILES[profile]))
            named |= set(re.findall(r"'([A-Za-z0-9-]+/[A-Za-z0-9._-]+)'", text))
    assert named and named <= set(hub.HUB_IDS), named - set(hub.HUB_IDS)
