"""Seed 003's study: equal-time budgets, replays, schedules, references, verdicts and bad input."""
import math

import pytest

from helpers import pretrain_study as S
from helpers import pretrain_report as PR
from helpers.pretrain import bigram_cross_entropy, unigram_cross_entropy
from helpers.profiles import ProfileError, resolve
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


def _rec(variant, seed, loss, experiment="grid"):
    return {"experiment": experiment, "variant": variant, "seed": seed,
            "metrics": {"eval_loss": loss, "tokens": 100, "steps": 10}}


def test_grid_verdict_uses_welch_and_refuses_a_single_seed():
    from scipy import stats

    best, worst = "lm.train.batch_size=2,lm.train.grad_accum=1", "lm.train.batch_size=8,lm.train.grad_accum=4"
    one = {(best, 0): _rec(best, 0, 5.0), (worst, 0): _rec(worst, 0, 6.0)}
    assert PR.grid_verdict(one)["test"] == "n = 1: no test" and PR.grid_verdict(one)["p"] is None
    recs = {(c, s): _rec(c, s, loss) for c, losses in ((best, (5.0, 5.1, 4.9)), (worst, (6.0, 6.3, 5.7)))
            for s, loss in enumerate(losses)}
    v = PR.grid_verdict(recs)
    assert v["best"] == best and v["gap"] == pytest.approx(1.0)
    assert v["p"] == pytest.approx(stats.ttest_ind((6.0, 6.3, 5.7), (5.0, 5.1, 4.9), equal_var=False).pvalue)
    assert 2 <= v["df"] <= 4 and v["beyond_noise"]


def test_divergence_lr_marks_the_first_lr_past_the_best_that_is_clearly_worse():
    rows = [{"lr": 1e-4, "eval_loss": 6.0}, {"lr": 1e-3, "eval_loss": 5.0}, {"lr": 3e-3, "eval_loss": 5.1},
            {"lr": 1e-2, "eval_loss": 5.6}, {"lr": 3e-2, "eval_loss": float("nan")}]
    assert PR.divergence_lr(rows) == 1e-2
    assert PR.divergence_lr(rows[:3]) is None


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
        S.PretrainStudyConfig(lm=cfg.lm, grid={"method": "grid", "parameters": {k: {"values": [v]}
                                                                                 for k, v in over.items()}})
    with pytest.raises((ValueError, ProfileError), match=match):
        S.PretrainStudyConfig(lm=cfg.lm, schedules={"bad": over})


def test_a_sweep_key_outside_the_model_settings_is_refused():
    with pytest.raises(ValueError, match="not settings of the model's training"):
        S.PretrainStudyConfig(lm=S.PROFILES["tiny"].lm, schedules={"bad": {"prompt": "x"}})


def test_empty_prompt_and_prompt_without_tokens_are_refused():
    from helpers.pretrain import generate

    with pytest.raises(ValueError, match="prompt is empty"):
        S.PretrainStudyConfig(lm=S.PROFILES["tiny"].lm, prompt="  ")

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


def test_a_study_run_records_the_seed_numbers_and_the_sweep_skips_recorded_points(results_root):
    run = resolve(PR.NOTEBOOK, S.PROFILES, "tiny", quiet=True,
                  overrides={"grid": S.grid_declaration((2,), (1, 2)), "lr_range": (1e-3,)})
    grid = S.batch_grid(run)
    assert len(grid) == 2
    for rec in grid.values():
        m = rec["metrics"]
        assert m["defined_by"] == "time_budget" and m["tokens"] == m["steps"] * m["sequences_per_step"] * 32
        assert math.isfinite(m["eval_loss"]) and m["bits_per_char"] > 0 and m["unigram_ce"] > m["bigram_ce"]
        assert {g["mode"] for g in rec["tables"]["generations"]} == {"greedy", "sampled"}
    again = S.batch_grid(run)
    assert {k: r["created"] for k, r in again.items()} == {k: r["created"] for k, r in grid.items()}
    best = min(grid.values(), key=lambda r: r["metrics"]["eval_loss"])
    rep = S.replay(run, best)
    assert rep["metrics"]["defined_by"] == "steps" and rep["metrics"]["steps"] == best["metrics"]["steps"]
    assert rep["metrics"]["eval_loss"] == pytest.approx(best["metrics"]["eval_loss"], abs=1e-5)


def _log_once(tmp):
    import os

    os.environ.update(WANDB_MODE="offline", LAB_WANDB=tmp)
    os.environ.pop("WANDB_API_KEY", None)
    result = {"metrics": {"eval_loss": 5.0, "steps": 3}, "curves": {"train_loss": {"1": 6.0, "2": 5.5}}}
    S.log_wandb(S.PROFILES["tiny"], 0, result)


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
    cells = S.grid_declaration((6,), (6,))["parameters"]
    assert [v["values"] for v in cells.values()] == [[6], [6]]      # the seed's best cell is in the full grid
    assert all(6 in v["values"] for v in full.grid["parameters"].values())


def test_without_wandb_installed_a_run_warns_and_goes_on(monkeypatch):
    """W&B is optional: the full profile logs to it, but a machine without the package (a bare GPU image) must
    still train and record, with a warning instead of an ImportError after the first run."""
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)             # import wandb -> ImportError
    with pytest.warns(UserWarning, match="wandb is not installed"):
        S.log_wandb(S.PROFILES["tiny"], 0, {"curves": {}, "metrics": {"eval_loss": 1.0}})
