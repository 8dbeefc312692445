"""Seed-000 training glue: configs, summaries, references, the params command."""
import subprocess
import sys

import pandas as pd
import pytest

from helpers import surgery_study as P
from helpers.profiles import resolve
from helpers.models import pythia_config
from helpers.results import save_result
from helpers.surgery import apply_surgery
from helpers.train import TrainConfig, train_causal_lm


def test_a_tiny_surgery_model_learns(tiny_blocks):
    from helpers.models import from_config

    train, val = tiny_blocks
    model = from_config(pythia_config("410m", hidden_size=32, num_hidden_layers=24, num_attention_heads=2,
                                      intermediate_size=128, vocab_size=64, max_position_embeddings=64))
    apply_surgery(model, P.EXPERIMENTS[14].ops, rank_factor=32 / 1024)
    res = train_causal_lm(model, train, val, TrainConfig(max_steps=40, batch_size=8, lr=3e-3, eval_every=5,
                                                         log_every=5, progress=False), seed=0)
    curve = res["curves"]["eval_loss"]
    assert curve[40] < curve[5] - 0.5, curve


def test_stand_in_sizes_must_keep_pythia_depth():
    with pytest.raises(ValueError, match="must keep Pythia's 24 layers"):
        P.SurgeryConfig(sizes={"410m": {"hidden": 32, "layers": 6, "heads": 2}, "2.8b": None})
    with pytest.raises(ValueError, match="needs keys"):
        P.SurgeryConfig(sizes={"410m": None})


def test_local_ranks_keep_the_compression_ratio():
    conf, f = P.model_config(P.PROFILES["local"], "410m", 2048)
    assert conf.num_hidden_layers == 24 and f == 32 / 1024
    from helpers.surgery import scale_rank

    assert [scale_rank(r, f) for r in (8, 32, 256, 768, 16, 512)] == [1, 1, 8, 24, 1, 16]


def _runs(rows):
    return pd.DataFrame([{"id": i, "name": P.EXPERIMENTS[i].name, "seed": s, "eval_loss": loss, "tokens_per_s": 1.0,
                          "params.total": p, "params.full_scale": p} for i, s, loss, p in rows])


def test_summarize_and_conclusion_call_differences_by_welch_with_holm():
    df = _runs([(1, 0, 5.00, 100), (1, 1, 5.02, 100), (1, 2, 4.98, 100),
                (6, 0, 5.50, 70), (6, 1, 5.52, 70), (6, 2, 5.48, 70),      # clearly worse
                (8, 0, 5.01, 75), (8, 1, 4.97, 75), (8, 2, 5.05, 75)])     # within noise
    s = P.summarize(df).set_index("id")
    assert s.loc[6, "delta_loss"] == pytest.approx(0.5) and s.loc[6, "params_ratio"] == pytest.approx(0.7)
    assert s.loc[1, "loss_std"] == pytest.approx(0.02)
    text = P.conclusion(P.summarize(df))
    assert "exp  6" in text and "worse" in text.split("exp  6")[1].splitlines()[0]
    assert "no measurable difference" in text.split("exp  8")[1].splitlines()[0]


def test_one_seed_is_no_test_and_no_original_is_said():
    """The full profile trains one seed: a difference of two single runs has no spread to test against, so it must
    not be called better or worse; without experiment 1 there is nothing to compare with."""
    df = _runs([(1, 0, 5.00, 100), (6, 0, 5.50, 70), (8, 0, 4.90, 75)])
    text = P.conclusion(P.summarize(df))
    assert text.count("n = 1: no test") == 2 and "better" not in text and "worse" not in text
    assert "no original" in P.conclusion(P.summarize(_runs([(6, 0, 5.5, 70), (6, 1, 5.6, 70)])))


def test_reference_from_notebook_01_records(results_root):
    run = resolve(P.NB_MLP, P.PROFILES, "tiny", quiet=True)
    assert P.load_reference(run) is None
    cfg01 = P.run_config(run.cfg, P.EXPERIMENTS[1], "tiny")
    for seed, loss in ((0, 5.0),):
        r01 = type(run)(**{**run.__dict__, "notebook": P.NB_ATTENTION, "seed": seed})
        save_result(r01, "exp01", P.EXPERIMENTS[1].name, {"metrics": {"eval_loss": loss, "tokens_per_s": 1.0},
                    "curves": {"eval_loss": {"3": loss}}, "params": {"total": 100, "full_scale": 405_334_016}},
                    config=cfg01)
    ref = P.load_reference(run)
    assert ref is not None and ref.loc[0, "loss_mean"] == 5.0
    s = P.summarize(_runs([(9, 0, 5.25, 90)]), reference=ref)
    assert s.loc[0, "delta_loss"] == pytest.approx(0.25)
    # a record trained with another config is not a valid reference
    other = resolve(P.NB_MLP, P.PROFILES, "tiny", overrides={"train.lr": 1e-2}, quiet=True)
    assert P.load_reference(other) is None


def test_params_command_prints_24_matches_and_2_explained():
    r = subprocess.run([sys.executable, "-m", "helpers", "params"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "24 match, 2 explained, 0 mismatch" in r.stdout
    assert "220,353,704" in r.stdout and "380,102,656" in r.stdout
    r = subprocess.run([sys.executable, "-m", "helpers", "params", "--json"], capture_output=True, text=True,
                       timeout=300)
    import json

    assert {row["id"]: row["status"] for row in json.loads(r.stdout)}[18] == "explained"
