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
"""
from __future__ import annotations

import copy
import math
import random
import re

import pytest
import torch

from helpers import hub, parallel
from helpers.analysis import records_of
from helpers.families import resolve

pytestmark = pytest.mark.dryrun

EN = ("the of and to in a is was for on as with by he at from his an were are which this be or has had not but "
      "first one their its new after who they have her she two been other when there all during into school time "
      "may years more most only over city some world would where later up such used many can state about national "
      "out known university united then made").split()
RU = ("и в не на что с по как из это он его для от но так был к же была по за то все она при до они мы года "
      "время город первый после также только может более один два России история человек жизнь работа мир").split()


def _docs(words, n_docs: int, seed: int, sentences: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))).capitalize() + "."
                     for _ in range(sentences)) for _ in range(n_docs)]


class FakeHub:
    """Stands in for helpers.hub.call: serves a same-shaped offline object for every id in hub.HUB_IDS and records
    what the code asked for (function, id, config / split)."""

    MISTRAL_CUT = dict(hidden_size=512, intermediate_size=1792, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=1)

    def __init__(self, tmp_path):
        self.tmp, self.calls, self._tok, self._models = tmp_path, [], {}, {}

    def __call__(self, what, fn, *args, **kw):
        owner = getattr(getattr(fn, "__self__", None), "__name__", "")
        name = f"{owner}.{fn.__name__}" if owner else fn.__name__
        ident = args[0]
        self.calls.append((name, ident, args[1] if len(args) > 1 else kw.get("split")))
        assert ident in hub.HUB_IDS, f"{ident} is loaded by the code but missing from helpers.hub.HUB_IDS"
        spec = hub.HUB_IDS[ident]
        if name == "load_dataset":
            return self.dataset(ident, spec, args, kw)
        if name == "AutoTokenizer.from_pretrained":
            return self.tokenizer(ident, spec)
        if name == "AutoModelForCausalLM.from_pretrained":
            return self.model(ident, spec, kw.get("dtype"))
        raise AssertionError(f"unexpected hub call {name}({ident})")

    def dataset(self, ident, spec, args, kw):
        from datasets import Dataset, DatasetDict

        assert spec["kind"] == "dataset"
        assert (args[1] if len(args) > 1 else None) == spec["config"], f"{ident}: config {args[1:]} vs the table"
        words = RU if spec["config"] and spec["config"].endswith(".ru") else EN

        def split(n, seed):
            pool = _docs(words, min(n, 200), seed)
            texts = [pool[i % len(pool)] for i in range(n)]
            cols = {c: [f"{c} {i}" for i in range(n)] for c in spec["columns"] if c != "text"}
            if "text" in spec["columns"]:
                cols["text"] = texts
            if "question" in cols:                       # oo-gpt4: question / response pairs, a sentence each, so
                short = [t.split(".")[0] + "." for t in texts]   # that rows fit the dry run's short blocks
                cols["question"], cols["response"] = short, short[1:] + short[:1]
            turns = [[{"role": "user", "content": t[:80]}, {"role": "assistant", "content": t[80:]}] for t in texts]
            if "messages" in cols:                       # UltraChat / UltraFeedback: conversations
                cols["messages"], cols["prompt"] = turns, [t[:80] for t in texts]
            if "chosen" in cols:
                cols["chosen"] = turns
                cols["rejected"] = [[m, {"role": "assistant", "content": m["content"][::-1]}] for m, _ in turns]
            return Dataset.from_dict(cols)

        if kw.get("split"):
            assert kw["split"] in spec["splits"]
            # oo-gpt4: the notes split off 100,000 rows for their test set, so the stand-in needs more rows than that
            n = 100_050 if ident.startswith("openaccess-ai-collective") else 80 if "train" in kw["split"] else 12
            return split(n, 0)
        return DatasetDict({s: split(80 if s == "train" else 12, i) for i, s in enumerate(spec["splits"])})

    def tokenizer(self, ident, spec):
        from transformers import AutoTokenizer

        from helpers.assets import train_bpe

        if ident not in self._tok:
            folder = self.tmp / "tok" / ident.replace("/", "--")
            words = RU if ident.endswith(".ru") else EN
            train_bpe(_docs(words, 200, 7), folder, min(spec["vocab"], 2048), {"stand_in_for": ident})
            self._tok[ident] = AutoTokenizer.from_pretrained(folder)
            if ident == "Open-Orca/Mistral-7B-OpenOrca":     # its 32,002 = Mistral's 32,000 + ChatML's two markers
                self._tok[ident].add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
            assert len(self._tok[ident]) <= spec["vocab"]
        return self._tok[ident]

    def model(self, ident, spec, dtype):
        """A same-shaped model with random weights, built once per (id, dtype) and copied on every later load (a
        notebook loads its base model once per run; building the 49k-row embeddings each time cost minutes)."""
        key = (ident, dtype)
        if key not in self._models:
            self._models[key] = self._build(ident, spec, dtype)
        return copy.deepcopy(self._models[key])

    def _build(self, ident, spec, dtype):
        from transformers import LlamaConfig, MistralConfig

        from helpers.models import from_config, mistral_config, smollm2_config

        if ident == "Open-Orca/Mistral-7B-OpenOrca":
            conf = mistral_config()
            for k, v in self.MISTRAL_CUT.items():
                setattr(conf, k, v)
            conf.head_dim = conf.hidden_size // conf.num_attention_heads
            assert isinstance(conf, MistralConfig) and conf.vocab_size == spec["vocab"]
        elif ident == "HuggingFaceTB/SmolLM2-360M":         # its real shape, 2 of its 32 layers
            conf = smollm2_config()
            conf.num_hidden_layers = 2
            assert conf.vocab_size == spec["vocab"]
        else:                                                # SmolLM2-135M's shape, random weights
            conf = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                               num_key_value_heads=3, vocab_size=spec["vocab"], tie_word_embeddings=True)
        torch.manual_seed(0)
        return from_config(conf, dtype=dtype)


@pytest.fixture
def full_offline(tmp_path, monkeypatch):
    """PROFILE=full with the hub replaced by FakeHub; caches and records go to a temporary folder. The jobs run in
    this process (parallel.IN_PROCESS), where the stand-in hub lives: a job's own process would not see it."""
    fake = FakeHub(tmp_path)
    monkeypatch.setattr(hub, "call", fake)
    monkeypatch.setattr(parallel, "IN_PROCESS", True)
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("LAB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return fake


def full_run(notebook: str, overrides: dict, profile: str = "full"):
    """The notebook's start exactly as in PROFILE=full (or gpu-small): helpers.families.resolve, with its memory
    plan, offline."""
    return resolve(notebook, profile, overrides=overrides, check_hub=False, quiet=True)


def reported(report_module, run) -> str:
    """The notebook's last cell: the family's report of the records this run wrote or loaded; its conclusion."""
    rep = report_module.report(run.records)
    assert rep.records and rep.text, "the report of this run's records is empty"
    return rep.text


def assert_finite(records, where: str):
    """Every number of every record's metrics (what the notebooks print and plot) is finite; `records` is what a
    section returns ({(variant, seed): record}, or one record), or a list of those."""
    recs = [r for part in (records if isinstance(records, list) else [records]) for r in records_of(part)]
    assert recs, f"{where}: no record written"
    for r in recs:
        for k, v in r["metrics"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert math.isfinite(v), f"{where}: {r['experiment']} {k} = {v}"
        assert r["profile"] in ("full", "gpu-small")


# compile off: compiling the 410m shape costs minutes of CPU here (compile with the surgery modules: test_train)
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


def test_compression_notebook_full_profile(full_offline):
    """Mistral-7B-shaped teacher (cut as the module docstring says) through every section of notebook 04: bf16
    never on the CPU, calibration, the three methods, the fit, sensitivity, healing with checkpointing and the
    whitening policies over two calibration draws on both held-out sets (WikiText-2 and the OpenOrca rows)."""
    from helpers.compression.data import OPENORCA_SET

    run = full_run("04_lowrank_compression", {**COMPRESSION_CUT, "openorca_rows": 4})
    assert run.cfg.model == "Open-Orca/Mistral-7B-OpenOrca" and run.cfg.heal.gradient_checkpointing
    data = _sections_compression(run)
    assert set(data["teacher"]) == {"english", OPENORCA_SET} and len(data["openorca"]) == 4


COMPRESSION_CUT = {"calib_blocks": 2, "block": 64, "eval_blocks": 2, "sweep_eval_blocks": 1, "sens_eval_blocks": 1,
                   "fit_tokens": 128, "fit_steps": (2,), "fit_rank": 16, "trap_tokens": 16, "trap_rank": 24,
                   "heal_block": 64, "heal.max_steps": 1, "heal.warmup_steps": 0, "reductions": (0.2,),
                   "center_policies": ("none", "except-v"), "center_draws": 2}


def test_compression_notebook_gpu_small_profile(full_offline):
    """gpu-small: SmolLM2-360M's shape (2 of its 32 layers) calibrated on the WikiText-2 stand-in, every section;
    one held-out set (no OpenOrca rows, no WordNet chats)."""
    run = full_run("04_lowrank_compression", COMPRESSION_CUT, "gpu-small")
    assert run.cfg.model == "HuggingFaceTB/SmolLM2-360M" and run.cfg.calib_corpus == "wikitext2"
    data = _sections_compression(run)
    assert set(data["teacher"]) == {"english"} and data["model"].config.hidden_size == 960


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
    # two draws; every held-out set the teacher was scored on (full: WikiText-2 and the OpenOrca rows)
    assert sorted(k[1] for k in f) == [0, 1] and {r["set"] for r in R.whitening_rows(f)} == set(data["teacher"])
    reported(R, run)
    assert_finite([a, b, c, d, e, f], "04")
    return data


def test_looped_notebook_full_profile(full_offline):
    """The looped model at d = 20 (width 256, 30 loops, window 15) and the 12-layer standard model: two steps each,
    then every section of notebook 05 on a small test set."""
    run = full_run("05_looped_transformer", LOOPED_CUT)
    assert run.cfg.model.n_dims == 20 and run.cfg.model.loops == 30
    _sections_looped(run)


LOOPED_CUT = {"train.steps": 2, "train.test_prompts": 16, "train.log_every": 1, "option_steps": 1, "task_steps": 1,
              "seeds": (0, 1), "option_seeds": (0,), "task_seeds": (0,), "baseline_prompts": 16,
              "eval_loops": (1, 30, 240), "tasks": ("decision_tree",)}


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


SFT_CUT = {"train_rows": 8, "policy_rows": 4, "val_rows": 4, "test_rows": 4, "heldout_rows": 4, "hard_pairs": 4,
           "gen_rows": 2, "gen_tokens": 4, "show_words": 2, "worst_k": 2, "accum_examples": 4, "accum_micro": 1,
           "seeds": (0,), "lesson_seeds": (0,), "dpo_seeds": (0,), "search_steps": 1, "dpo_search": ((0.1, 5e-5),),
           "probe_pairs": 2, "speed_batch": 1, "speed_length": 32, "sft.steps": 1, "sft.batch_size": 2,
           "sft.eval_every": 1, "sft.eval_rows": 2, "sft.warmup_steps": 0, "dpo.steps": 1, "dpo.batch_size": 2,
           "dpo.eval_every": 1, "dpo.eval_rows": 2}


def test_sft_notebook_full_profile(full_offline):
    """SmolLM2-360M's shape (2 of its 32 layers) with a ChatML template on UltraChat / UltraFeedback stand-ins:
    every section of notebook 06, one optimizer step per SFT variant, DPO search point and DPO loss."""
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
    R.sft_table(sft_runs), R.lessons_tables(c), R.pairs_table(pairs), R.search_table(search, pairs)
    R.curves_figure(sft_runs, dpo), R.dpo_rows(dpo, pairs, sft_runs["baseline", 0])
    R.models_table(a, sft_runs, dpo, pairs), R.answers_table(e)
    reported(R, run)
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
