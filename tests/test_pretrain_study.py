"""Seed 003's study: equal-time budgets, replays, schedules, references, verdicts and bad input."""
import math
import time

import pytest

from helpers.pretrain import bigram_cross_entropy, unigram_cross_entropy
from helpers.pretraining import config as PC
from helpers.pretraining import data as PD
from helpers.pretraining import report as PR
from helpers.pretraining import runs as RUNS
from helpers.pretraining import study as S
from helpers.profiles import ProfileError, apply_overrides, settings
from helpers.train import TrainConfig, lr_lambda, train_causal_lm


def test_time_drop_and_single_step_drop_schedules():
    state = {"dropped": False}
    f = lr_lambda(TrainConfig(scheduler="time_drop", drop_after_s=5, step_gamma=0.1, warmup_steps=2), state)
    assert [f(0), f(1), f(50)] == [0.5, 1.0, 1.0]
    state["dropped"] = True
    assert f(50) == pytest.approx(0.1)
    g = lr_lambda(TrainConfig(scheduler="step", step_every=10, step_gamma=0.5, step_max_drops=1))
    assert [g(9), g(10), g(25), g(100)] == [1.0, 0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="time_drop' needs drop_after_s"):
        TrainConfig(scheduler="time_drop")


def test_time_drop_drops_the_lr_once_the_time_has_passed(tiny_model, tiny_blocks):
    train, _ = tiny_blocks
    cfg = TrainConfig(max_steps=30, batch_size=4, lr=1e-3, scheduler="time_drop", drop_after_s=1e-9, step_gamma=0.1,
                      log_every=1, progress=False)
    res = train_causal_lm(tiny_model(), train, None, cfg, seed=0)
    lrs = [v for _, v in sorted(res["curves"]["lr"].items())]
    assert res["metrics"]["lr_dropped_at_step"] == 1
    assert lrs[-1] == pytest.approx(1e-4) and max(lrs) <= 1e-3 + 1e-12


def test_equal_time_budget_stops_by_time_and_a_replay_at_the_recorded_steps_reproduces_it(tiny_model,
                                                                                            tiny_blocks):
    train, val = tiny_blocks
    cfg = TrainConfig(max_steps=100_000, batch_size=4, lr=1e-3, time_budget_s=1.5, scheduler="constant",
                      log_every=5, progress=False)
    res = train_causal_lm(tiny_model(), train, val, cfg, seed=0)
    m = res["metrics"]
    assert m["stopped_by_budget"] and 1 < m["steps"] < 100_000
    assert m["tokens"] == m["steps"] * 4 * len(train[0]["input_ids"])
    replay = TrainConfig(**{**cfg.__dict__, "time_budget_s": None, "max_steps": m["steps"]})
    no_eval = train_causal_lm(tiny_model(), train, None, cfg, seed=0)           # the budget stops a run without
    assert no_eval["metrics"]["stopped_by_budget"] and "eval_loss" not in no_eval["metrics"]   # an eval set too
    again = train_causal_lm(tiny_model(), train, val, replay, seed=0)
    assert not again["metrics"]["stopped_by_budget"] and again["metrics"]["steps"] == m["steps"]
    assert again["metrics"]["eval_loss"] == pytest.approx(m["eval_loss"], abs=1e-6)


def test_reference_cross_entropies_by_hand():
    train = {"input_ids": [[0, 1, 0, 1], [0, 1, 0, 1]]}
    ev = {"input_ids": [[0, 1, 0]]}
    # unigram, add-one over V = 2: p(0) = p(1) = 5 / 10
    assert unigram_cross_entropy(train, ev, 2) == pytest.approx(math.log(2))
    # bigram: after 0 always 1, after 1 always 0 (lam = 0.8): p = 0.8 * 1 + 0.2 * 0.5 = 0.9 for both pairs
    assert bigram_cross_entropy(train, ev, 2, lam=0.8) == pytest.approx(-math.log(0.9))
    assert bigram_cross_entropy(train, ev, 2) < unigram_cross_entropy(train, ev, 2)


def _rec(variant, seed, loss, experiment="grid", lr=3e-3, bigram=5.0, unigram=7.0):
    return {"experiment": experiment, "variant": variant, "seed": seed, "config": {"lm": {"train": {"lr": lr}}},
            "metrics": {"eval_loss": loss, "tokens": 100, "steps": 10, "bigram_ce": bigram, "unigram_ce": unigram,
                        "below_bigram": bigram - loss}}


def test_grid_verdict_is_dunnett_against_the_base_cell_and_tukey_over_every_pair():
    """Dunnett against the base cell; every pair at once by Tukey's HSD on the pooled variance (scipy's, by value),
    best vs worst its row. Breakages caught: Welch + Holm per pair (p 0.26 where Tukey gives < 1e-3 on these), best
    and worst swapped, one-run cells tested."""
    from scipy import stats

    losses = {"2 x 1": (4.0, 4.1, 3.9), "4 x 2": (4.6, 4.65, 4.55), "8 x 4": (5.0, 5.3, 4.7)}
    recs = {(c, s): _rec(c, s, x) for c, xs in losses.items() for s, x in enumerate(xs)}
    v = PR.grid_verdict(recs, control="4 x 2")
    assert (v["best"], v["worst"]) == ("2 x 1", "8 x 4") and v["gap"] == pytest.approx(1.0)
    tukey = stats.tukey_hsd(*losses.values()).pvalue
    bw = v["best_worst"]
    assert bw["test"] == "Tukey HSD" and bw["p"] == pytest.approx(tukey[0, 2]) and bw["df"] == 6 and bw["m"] == 3
    assert {(r["a"], r["b"]): r["p"] for r in v["pairs"]}[("4 x 2", "8 x 4")] == pytest.approx(tukey[1, 2])
    rows = {r["name"]: r for r in v["vs_control"]}
    assert set(rows) == {"2 x 1", "8 x 4"} and rows["2 x 1"]["verdict"] == "better" and rows["2 x 1"]["df"] == 6
    assert "indicative" not in PR._pairs_line(v) and "Tukey HSD over all 3 pairs" in PR._pairs_line(v)
    one = {(c, 0): _rec(c, 0, x[0]) for c, x in losses.items()}
    v1 = PR.grid_verdict(one, control="4 x 2")
    assert v1["best_worst"]["p"] is None and all(r["verdict"] == "n = 1: no test" for r in v1["vs_control"])


def test_identical_computations_are_merged_and_two_seeds_are_indicative():
    """4 x 4 and 8 x 2 with every seed within 1e-4 are one computation: merged (the control kept), not counted as two
    cells; 2 x 8 has the same sequences per step but other losses: kept. Two seeds an arm: 'indicative', and no
    Brown-Forsythe p (degenerate at n = 2). Breakages caught: merging on equal sequences per step alone, merging
    cells that share only some seeds, a Brown-Forsythe p printed at n = 2."""
    losses = {"4 x 4": (4.50, 4.60), "8 x 2": (4.50004, 4.59997), "2 x 8": (4.7, 4.8), "2 x 1": (4.2, 4.3)}
    recs = [_rec(c, s, x) for c, xs in losses.items() for s, x in enumerate(xs)]
    v = PR.grid_verdict(recs, control="8 x 2")
    assert v["same"] == {"4 x 4": "8 x 2"} and set(v["stats"]) == {"8 x 2", "2 x 8", "2 x 1"}
    assert v["best_worst"]["m"] == 3 and "4 x 4 is the same computation as 8 x 2" in PR._pairs_line(v)
    assert "(n = 2 an arm: indicative)" in PR._control_line(v) and "Brown-Forsythe" not in PR._control_line(v)
    partial = [r for r in recs if not (r["variant"] == "4 x 4" and r["seed"] == 1)]
    assert PR.grid_verdict(partial, control="8 x 2")["same"] == {}


def test_all_pairs_is_tukey_hsd_on_the_pooled_variance():
    """By value against scipy.stats.tukey_hsd, the pooled se by hand, one-run arms left out ('n = 1: no test'), an
    all-identical family 'no spread'. Breakages caught: Welch's per-pair se, a one-run arm entering the family (it
    changes every p), df counted with it."""
    from scipy import stats

    from helpers.stats import all_pairs

    arms = {"a": [1.0, 1.2, 1.1], "b": [1.5, 1.6, 1.4], "c": [1.05, 1.15], "d": [9.0]}
    rows = {(r["a"], r["b"]): r for r in all_pairs(arms)}
    ref = stats.tukey_hsd(arms["a"], arms["b"], arms["c"]).pvalue
    assert rows["a", "b"]["p"] == pytest.approx(ref[0, 1]) and rows["b", "c"]["p"] == pytest.approx(ref[1, 2])
    pooled = ((0.02 + 0.02 + 0.005) / (8 - 3)) ** 0.5
    assert rows["a", "c"]["se"] == pytest.approx(pooled * (1 / 3 + 1 / 2) ** 0.5) and rows["a", "c"]["df"] == 5
    assert rows["a", "b"]["verdict"] == "better" and rows["a", "d"]["verdict"] == "n = 1: no test"
    assert {r["verdict"] for r in all_pairs({"x": [1.0, 1.0], "y": [2.0, 2.0]})} == {"no spread: no test"}


def test_the_lr_range_exemption_and_the_gate_name_what_they_judge():
    """Diverged: the first lr above the best whose loss diverged on a seed (above the unigram); the gate exempts the
    lrs from there up and names every other run that ends < 0.3 below the bigram, an lr that is only worse included.
    Breakages caught: the old 0.25-nat rule (exempts 0.03 here, where no seed diverged), an exemption below the best."""
    losses = ((1e-3, (4.5, 4.55)), (1e-2, (4.6, 4.62)), (3e-2, (4.9, 4.95)), (1e-1, (8.0, 6.1)))
    lr_recs = [_rec(f"lr={lr:g}", s, x, "lr_range", lr) for lr, xs in losses for s, x in enumerate(xs)]
    base = [_rec("constant+warmup", s, x, "schedules") for s, x in enumerate((4.4, 4.42))]
    rows = PR.lr_rows(lr_recs, base)
    assert [r["lr"] for r in rows] == [1e-3, 3e-3, 1e-2, 3e-2, 1e-1] and rows[4]["diverged"] == 1
    assert PR.first_diverged(rows) == 1e-1
    assert PR.first_diverged(rows[:4]) is None
    grid = [_rec("2 x 1", 0, 4.5), _rec("8 x 4", 0, 4.8)]                   # 0.5 and 0.2 below the bigram (5.0)
    table = PR.gate_table(grid + base + lr_recs, gate=0.3).set_index(["section", "run", "seed"])["gate"]
    assert table["grid", "2 x 1", 0] == "pass" and table["grid", "8 x 4", 0] == "FAIL"
    assert table["lr_range", "lr=0.1", 0].startswith("exempt") and table["lr_range", "lr=0.03", 0] == "FAIL"
    assert table["lr_range", "lr=0.01", 0] == "pass"


def test_generations_are_compared_by_fisher_on_word_counts_or_not_at_all():
    """12 of 94 against 2 of 27 (issue 39's figures): Fisher's exact p by scipy, 'no measurable difference'; a record
    without word counts: no comparison line. Breakages caught: shares compared without a test, counts rounded from
    the wrong share."""
    from scipy import stats

    data = {"config": {"quality_samples": 3}, "metrics": {"bigram_sample.words": 27,
                                                           "bigram_sample.valid_word_share": 2 / 27}}
    def best(exp, words, valid):
        r = _rec("x", 0, 4.0, exp)
        r["metrics"].update({"sampled.words": words, "sampled.valid_word_share": valid / words})
        return r
    recs = {"data": [data], "grid": [best("grid", 50, 7)], "schedules": [best("schedules", 44, 5)]}
    line = PR.generations_line(recs)
    p = stats.fisher_exact([[12, 82], [2, 25]]).pvalue
    assert "12 of 94" in line and "2 of 27" in line and f"p = {p:.2g}" in line and "no measurable difference" in line
    del recs["grid"][0]["metrics"]["sampled.words"]
    assert PR.generations_line(recs) == ""


def test_rerun_noise_is_the_spread_of_one_configuration_and_seed():
    grid = [_rec("4 x 2", 0, 4.50), _rec("4 x 2", 1, 4.9)]
    reruns = [_rec("rerun 1", 0, 4.52, "rerun"), _rec("rerun 2", 0, 4.47, "rerun")]
    n = PR.rerun_noise(grid, reruns, "4 x 2")
    assert n["n"] == 3 and n["losses"] == [4.50, 4.52, 4.47] and n["sd"] == pytest.approx(0.025166, abs=1e-5)


def test_a_cpu_budget_does_not_count_time_spent_waiting(tiny_model, tiny_blocks):
    """A run beside a busy neighbour loses wall time, not CPU time: with budget_clock='cpu' a callback that sleeps
    0.1 s per step (waiting, no CPU) does not shorten the run; on the wall clock it does."""
    from transformers import TrainerCallback

    class Wait(TrainerCallback):
        def on_step_end(self, *a, **k):
            time.sleep(0.1)

    import torch

    train, _ = tiny_blocks
    runs, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)                  # one thread per run, as the study's workers (idle threads spin on CPU)
    try:
        for clock in (None, "cpu"):
            cfg = TrainConfig(max_steps=100_000, batch_size=4, lr=1e-3, time_budget_s=0.8, budget_clock=clock,
                              scheduler="constant", log_every=50, progress=False)
            runs[clock] = train_causal_lm(tiny_model(), train, None, cfg, seed=0, callbacks=(Wait(),))["metrics"]
    finally:
        torch.set_num_threads(threads)
    assert runs[None]["steps"] <= 9 and runs[None]["stopped_by"] == "budget"
    assert runs["cpu"]["steps"] > runs[None]["steps"] + 3 and runs["cpu"]["train_cpu_s"] >= 0.8
    # the wall clock holds every wait and more than the CPU budget (CPU time and waits are not disjoint: another
    # thread of the process may run during a sleep, so wall >= cpu + waits failed by 4 ms once in CI)
    assert runs["cpu"]["train_time_s"] >= 0.1 * (runs["cpu"]["steps"] - 1)
    assert runs["cpu"]["train_time_s"] > 2 * runs["cpu"]["train_cpu_s"]
    with pytest.raises(ValueError, match="unknown budget_clock 'gpu'"):
        TrainConfig(budget_clock="gpu")


@pytest.mark.parametrize("over, match", [
    ({"lm.train.batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"lm.train.lr": -1.0}, "lr must be > 0"),
    ({"lm.train.scheduler": "exponential"}, "unknown scheduler 'exponential'"),
    ({"lm.train.depth": 3}, r"unknown setting\(s\) \['depth'\]"),
    ({"lm.train.time_budget_s": 0}, "time_budget_s must be > 0"),
])
def test_bad_sweep_points_are_refused_before_anything_runs(over, match):
    cfg = S.PROFILES["tiny"]
    with pytest.raises((ValueError, ProfileError), match=match):
        PC.PretrainStudyConfig(lm=cfg.lm, grid={"method": "grid", "parameters": {k: {"values": [v]}
                                                                                  for k, v in over.items()}})
    with pytest.raises((ValueError, ProfileError), match=match):
        PC.PretrainStudyConfig(lm=cfg.lm, schedules={"bad": over})


def test_a_sweep_key_outside_the_model_settings_is_refused():
    with pytest.raises(ValueError, match="not settings of the model's training"):
        PC.PretrainStudyConfig(lm=S.PROFILES["tiny"].lm, schedules={"bad": {"prompt": "x"}})


def test_empty_prompt_and_prompt_without_tokens_are_refused():
    from helpers.pretrain import generate

    with pytest.raises(ValueError, match="prompt is empty"):
        PC.PretrainStudyConfig(lm=S.PROFILES["tiny"].lm, prompt="  ")

    class NoTokens:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": []}

    with pytest.raises(ValueError, match="tokenizes to no tokens"):
        generate(None, NoTokens(), "\u200b")


def test_corpus_files_that_are_empty_not_utf8_or_not_russian_are_refused(tmp_path):
    from datasets import Dataset, DatasetDict

    from helpers.data import load_corpus
    from helpers.pretrain import check_corpus

    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n ")
    with pytest.raises(ValueError, match="holds no text"):
        load_corpus(str(empty))
    latin1 = tmp_path / "cp1251.txt"
    latin1.write_bytes("Привет".encode("cp1251"))
    with pytest.raises(ValueError, match=r"cp1251.txt is not UTF-8 text: byte 0 \(0xcf\)"):
        load_corpus(str(latin1))
    english = DatasetDict({"train": Dataset.from_dict({"text": ["It was a truth universally acknowledged."] * 3})})
    with pytest.raises(ValueError, match="is not cyrillic text: 0% of its letters"):
        check_corpus(english, "austen.txt", "cyrillic")
    russian = DatasetDict({"train": Dataset.from_dict({"text": ["В начале было слово, и слово было у Бога."]})})
    check_corpus(russian, "ru", "cyrillic")


def test_sections_record_what_each_run_trained_and_a_rerun_loads_them(results_root):
    run = settings(PR.NOTEBOOK, S.PROFILES, "tiny", quiet=True, overrides={"grid": PC.grid_declaration((2,), (1, 2)),
                                                                        "grid_seeds": (0, 1), "reruns": 3})
    data = S.data_check(run)
    grid = S.equal_time_grid(run)
    assert len(grid) == 4 and set(grid) == {(c, s) for c in ("2 x 1", "2 x 2") for s in (0, 1)}
    for rec in grid.values():
        m = rec["metrics"]
        assert m["defined_by"] == "time_budget" and m["budget_clock"] == "cpu" and m["stopped_by"] == "max_steps"
        assert m["tokens"] == m["steps"] * m["sequences_per_step"] * 32 and m["train_cpu_s"] > 0
        assert math.isfinite(m["eval_loss"]) and m["below_bigram"] == pytest.approx(m["bigram_ce"] - m["eval_loss"])
        assert {g["mode"] for g in rec["tables"]["generations"]} == {"greedy", "sampled"}
    reruns = S.reruns(run)                                   # the base cell (2 x 1), seed 0, twice more
    assert sorted(v for v, _ in reruns) == ["rerun 1", "rerun 2"] and len({r["run_id"] for r in reruns.values()}) == 2
    same = [grid["2 x 1", 0]] + list(reruns.values())
    assert len({r["metrics"]["steps"] for r in same}) == 1            # identical config and seed, its own record each
    tokens = S.equal_token_grid(run)
    assert {r["metrics"]["tokens"] for r in tokens.values()} == {256} and all(
        r["metrics"]["defined_by"] == "steps" for r in tokens.values())
    assert {k: r["created"] for k, r in S.equal_time_grid(run).items()} == {k: r["created"] for k, r in grid.items()}
    gens = PR.generations_table({"grid": grid}, data)
    assert gens["section"].tolist()[-1] == "reference" and gens["text"].map(len).min() > 0


def test_bad_input_is_refused_before_any_run_and_recorded_points_stay(results_root, monkeypatch):
    run = settings(PR.NOTEBOOK, S.PROFILES, "tiny", quiet=True)
    S.data_check(run)
    done = S.equal_time_grid(run)
    cfg = run.cfg
    with pytest.raises(ValueError, match=r"grid cell 1000000 x 1 needs 1000000 sequences .* allowed: batch x accum"):
        PD.check_inputs(PC.PretrainStudyConfig(**{**cfg.__dict__, "grid": PC.grid_declaration((2, 1_000_000), (1,))}))
    with pytest.raises(ValueError, match=r"equal_tokens=32 is less than one step of cell 2 x 1 .* allowed: >= 256"):
        PD.check_inputs(PC.PretrainStudyConfig(**{**cfg.__dict__, "equal_tokens": 32}))
    short = apply_overrides(cfg, {"lm.train.time_budget_s": 1e-6}, "test")
    with pytest.raises(ValueError, match=r"time_budget_s=1e-06 is shorter than one optimizer step .* allowed: >"):
        PD.check_inputs(short)
    big = apply_overrides(cfg, {"lm.tokenizer": "ru-bpe-512"}, "test")
    monkeypatch.setattr(PD, "config_data", lambda lm, script: type("D", (), {"vocab": 300})())
    with pytest.raises(ValueError, match="ru-bpe-512 asks for 512 tokens, but BPE on this train split found only 300"):
        PD.check_inputs(big)
    assert all(p.exists() for p in (results_root / PR.NOTEBOOK).glob("*.json")) and len(done) == 8


def test_bigram_sample_and_the_valid_word_share():
    from helpers.pretrain import lm_data

    d = lm_data("ru", "bytes", 32, 40, 8, "cyrillic")
    a, b = (PD.bigram_sample(d, "В начале было слово", 32, seed=0) for _ in range(2))
    assert a == b and a != PD.bigram_sample(d, "В начале было слово", 32, seed=1)
    vocab = PD.valid_words(d)
    assert PD.word_share(" и в на.", {"и", "в"}) == pytest.approx(2 / 3) and PD.word_share("...", vocab) is None
    assert PD.complete_words("ей и в на") == ["и", "в"]           # a prompt word's end and a cut-off word are not words
    assert len(vocab) > 1000 and {"и", "в", "на"} <= vocab


def _log_once(tmp):
    import os

    os.environ.update(WANDB_MODE="offline", LAB_WANDB=tmp)
    os.environ.pop("WANDB_API_KEY", None)
    result = {"metrics": {"eval_loss": 5.0, "steps": 3}, "curves": {"train_loss": {"1": 6.0, "2": 5.5}}}
    RUNS.log_wandb(S.PROFILES["tiny"], 0, result)


def test_wandb_logging_is_offline_and_needs_no_account(tmp_path):
    import multiprocessing as mp

    p = mp.get_context("spawn").Process(target=_log_once, args=(str(tmp_path),))   # wandb keeps process-wide state
    p.start()
    p.join(120)
    assert p.exitcode == 0
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_full_profile_is_the_seeds_scale_on_the_meta_device():
    from helpers.data import HUB_CORPORA
    from helpers.models import count_params, from_config, neox_config

    full = S.PROFILES["full"]
    assert HUB_CORPORA[full.lm.corpus] == ("wikimedia/wikipedia", "20231101.ru")
    assert full.lm.train.time_budget_s == 30 * 60 and full.lm.tokenizer == "ruwiki-bpe-32000"
    n = count_params(from_config(neox_config(full.lm.size, 32000), "meta"))
    assert 90e6 < n < 130e6, n                     # "a GPT-NeoX or Llama of about 100M parameters"
    cells = PC.grid_declaration((6,), (6,))["parameters"]
    assert [v["values"] for v in cells.values()] == [[6], [6]]      # the seed's best cell is in the full grid
    assert all(6 in v["values"] for v in full.grid["parameters"].values())


def test_without_wandb_installed_a_run_warns_and_goes_on(monkeypatch):
    """W&B is optional: the full profile logs to it, but a machine without the package (a bare GPU image) must
    still train and record, with a warning instead of an ImportError after the first run."""
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)             # import wandb -> ImportError
    with pytest.warns(UserWarning, match="wandb is not installed"):
        RUNS.log_wandb(S.PROFILES["tiny"], 0, {"curves": {}, "metrics": {"eval_loss": 1.0}})
