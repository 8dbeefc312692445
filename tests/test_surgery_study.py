"""Seed-000 training glue: configs, summaries, references, the params command."""
import subprocess
import sys

import pandas as pd
import pytest

from helpers.__main__ import main
from helpers.models import pythia_config
from helpers.profiles import settings
from helpers.results import save_result
from helpers.surgery import experiments as SE
from helpers.surgery import claims as SC
from helpers.surgery import regime
from helpers.surgery import study as P
from helpers.surgery import summary as SS
from helpers.surgery.ops import apply_surgery
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


def test_stand_in_sizes_are_validated_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"has 30 layers; allowed: 1-24"):
        P.SurgeryConfig(sizes={"410m": {"hidden": 32, "layers": 30, "heads": 2}, "2.8b": None})
    with pytest.raises(ValueError, match="needs keys"):
        P.SurgeryConfig(sizes={"410m": None})
    with pytest.raises(ValueError, match="multiple of its heads 5"):
        P.SurgeryConfig(sizes={"410m": {"hidden": 32, "layers": 6, "heads": 5}, "2.8b": None})
    with pytest.raises(ValueError, match=r"unknown tokenizer 'bites'; allowed: bytes;.*en-bpe-2048"):
        P.SurgeryConfig(tokenizer="bites")
    P.SurgeryConfig(sizes={"410m": {"hidden": 32, "layers": 6, "heads": 2}, "2.8b": None})   # shallower is fine


def test_local_ranks_keep_the_compression_ratio():
    """Width 96 of 1024: every factor keeps the full model's rank / width ratio, rounded, never below 1."""
    conf, f = P.model_config(P.PROFILES["local"], "410m", 259)
    assert conf.num_hidden_layers == 6 and conf.hidden_size == 96 and f == 96 / 1024
    from helpers.surgery.ops import scale_rank

    assert [scale_rank(r, f) for r in (8, 32, 256, 768, 16, 512)] == [1, 3, 24, 72, 2, 48]
    assert P.rank_factor(P.PROFILES["local"], "2.8b") == 96 / 2560 and P.rank_factor(P.PROFILES["full"], "2.8b") == 1


def test_depth_mapping_of_the_partial_experiments():
    cfg = P.PROFILES["local"]                       # 24 -> 6 layers (410m), 32 -> 8 (2.8b)
    assert P.stand_in(cfg, P.EXPERIMENTS[13]) == "qkv lowrank r=1 [after:2]; dense remove"
    assert P.stand_in(cfg, P.EXPERIMENTS[23]).endswith("mlp factorize r=2 [3-4]")     # 12-18 of 24 -> 3-4 of 6
    assert P.stand_in(cfg, P.EXPERIMENTS[22]).endswith("mlp factorize r=2 [5]")       # 20-23 of 24 -> 5
    assert P.stand_in(cfg, P.EXPERIMENTS[24]).endswith("mlp factorize r=1 [3-4]")     # 12-18 of 32 -> 3-4 of 8
    assert P.stand_in(P.PROFILES["full"], P.EXPERIMENTS[23]) == P.EXPERIMENTS[23].describe()   # full: unchanged


def test_experiments_that_coincide_are_marked_same_model():
    # local: the first 1, 2 and 3 layers of 24 all map to the first layer of 6 -> 14 and 15 are 12's model
    assert P.same_model(P.PROFILES["local"]) == {14: 12, 15: 12}
    # Pythia's depth at width 32 (the old local profile): ranks 8 and 32 both scale to 1 -> 4 is 2's model
    old = P.SurgeryConfig(sizes={"410m": {"hidden": 32, "layers": 24, "heads": 2},
                                 "2.8b": {"hidden": 32, "layers": 32, "heads": 2}})
    assert P.same_model(old) == {4: 2}
    assert P.same_model(P.PROFILES["full"]) == {}
    s = SS.summarize(_runs([(12, 0, 2.0, 10), (12, 1, 2.1, 10)]), same={14: 12})
    assert s.set_index("id").loc[14, "same_as"] == 12 and pd.isna(s.set_index("id").loc[14, "loss_mean"])
    assert "exp 14: same model as exp 12" in SC.conclusion(s)


def test_a_size_that_breaks_a_spec_names_the_experiment_and_the_setting():
    unscaled = P.SurgeryConfig(tokenizer="bytes", scale_ranks=False,
                               sizes={"410m": {"hidden": 96, "layers": 6, "heads": 4}, "2.8b": None})
    with pytest.raises(ValueError, match=r"experiment 5 \(linear-lora-256-5.*scale_ranks=False.*rank 256"):
        P.check_specs(unscaled, [1, 5])
    P.check_specs(P.PROFILES["local"], list(P.EXPERIMENTS))     # the profile's own sizes build all 26


def test_retained_benefit_and_its_delta_method_error_match_a_simulation():
    import numpy as np

    rows = {i: {"loss_mean": m, "loss_std": sd, "seeds": 3} for i, m, sd in ((6, 2.5, 0.03), (1, 2.0, 0.02),
                                                                              (8, 2.2, 0.05))}
    r, se = SS.retained(rows[6], rows[8], rows[1])
    assert r == pytest.approx(0.6)                                 # (2.5 - 2.2) / (2.5 - 2.0)
    rng = np.random.default_rng(0)
    draw = {i: rng.normal(v["loss_mean"], v["loss_std"] / np.sqrt(3), 200_000) for i, v in rows.items()}
    sim = (draw[6] - draw[8]) / (draw[6] - draw[1])
    assert se == pytest.approx(sim.std(), rel=0.05)
    # without the covariance term (no-attention arm shared) the error would be off by far more than 5%
    no_cov = np.sqrt((0.03 ** 2 + 0.05 ** 2) / 3 / 0.25 + 0.36 * (0.03 ** 2 + 0.02 ** 2) / 3 / 0.25)
    assert abs(no_cov - sim.std()) > 0.1 * sim.std()
    s = SS.summarize(_runs([(1, 0, 2.0, 100), (1, 1, 2.02, 100), (6, 0, 2.5, 70), (6, 1, 2.52, 70),
                           (8, 0, 2.2, 75), (8, 1, 2.22, 75)])).set_index("id")
    assert s.loc[8, "retained"] == pytest.approx(0.6) and s.loc[1, "retained"] == 1 and s.loc[6, "retained"] == 0


def test_claims_get_verdicts_from_the_data():
    df = _runs([(1, s, 2.0 + 0.01 * s, 100) for s in range(3)]
               + [(23, s, 2.005 + 0.01 * s, 60) for s in range(3)]      # a match
               + [(25, s, 2.6 + 0.01 * s, 90) for s in range(3)]        # much higher
               + [(26, s, 2.0 + 0.01 * s, 95) for s in range(3)])       # not higher
    text = SC.claims(SS.summarize(df))
    assert "exp 23: notes 'matched the original' -> CONSISTENT" in text
    assert "exp 25: notes 'loss much higher' -> CONFIRMED" in text
    assert "exp 26: notes 'loss higher, only ~10M fewer params' -> NOT CONFIRMED" in text
    assert "exp 24" not in text                                           # not in this table
    # a match that the spread cannot place inside +-0.05 nats is undecided, not "consistent" for want of a p-value
    wide = _runs([(1, s, 2.0 + 0.1 * s, 100) for s in range(3)] + [(23, s, 2.03 + 0.1 * s, 60) for s in range(3)])
    assert "exp 23: notes 'matched the original' -> UNDECIDED" in SC.claims(SS.summarize(wide))
    apart = _runs([(1, s, 2.0 + 0.01 * s, 100) for s in range(3)] + [(23, s, 2.2 + 0.01 * s, 60) for s in range(3)])
    assert "exp 23: notes 'matched the original' -> CONTRADICTED" in SC.claims(SS.summarize(apart))


def test_variants_against_one_original_use_dunnett_on_the_pooled_variance():
    """Six variants of 3 seeds against one original: df = 21 - 7 = 14 (not Welch's ~4 per pair), and a clear
    difference stays "worse" where Holm over six Welch tests at df ~2 would not call it."""
    from scipy import stats as st

    noise = (-0.02, 0.0, 0.02)
    rows = [(1, s, 2.0 + e, 100) for s, e in enumerate(noise)]
    for i, shift in zip((2, 3, 4, 5, 7, 8), (0.1, 0.0, 0.0, 0.0, 0.0, 0.0)):
        rows += [(i, s, 2.0 + shift + e * (1 + 0.1 * i), 80) for s, e in enumerate(noise)]
    s = SS.summarize(_runs(rows)).set_index("id")
    assert set(s.loc[[2, 3, 4, 5, 7, 8], "df"]) == {14} and set(s.loc[[2, 3], "test"]) == {"Dunnett"}
    arms = [_runs(rows).query("id == @i")["eval_loss"].to_numpy() for i in (2, 3, 4, 5, 7, 8, 1)]
    ref = st.dunnett(*arms[:-1], control=arms[-1], rng=0).pvalue
    assert s.loc[2, "p"] == pytest.approx(ref[0], abs=1e-3) and s.loc[2, "verdict"] == "worse"
    assert s.loc[3, "verdict"] == "no measurable difference" and s.loc[2, "p_welch"] > s.loc[2, "p"]
    assert "Dunnett t = " in SC.conclusion(s.reset_index()) and "pooled df = 14" in SC.conclusion(s.reset_index())


def test_byte_tokenizer_is_utf8_bytes():
    from helpers.data import load_tokenizer

    tok = load_tokenizer("bytes")
    ids = tok("héllo", add_special_tokens=False)["input_ids"]
    assert [i - 3 for i in ids] == list("héllo".encode()) and len(tok) == 259 and tok.decode(ids) == "héllo"


def _runs(rows):
    return pd.DataFrame([{"id": i, "name": P.EXPERIMENTS[i].name, "seed": s, "eval_loss": loss, "tokens_per_s": 1.0,
                          "params.total": p, "params.full_scale": p} for i, s, loss, p in rows])


def test_summarize_and_conclusion_call_differences_by_welch_with_holm():
    df = _runs([(1, 0, 5.00, 100), (1, 1, 5.02, 100), (1, 2, 4.98, 100),
                (6, 0, 5.50, 70), (6, 1, 5.52, 70), (6, 2, 5.48, 70),      # clearly worse
                (8, 0, 5.01, 75), (8, 1, 4.97, 75), (8, 2, 5.05, 75)])     # within noise
    s = SS.summarize(df).set_index("id")
    assert s.loc[6, "delta_loss"] == pytest.approx(0.5) and s.loc[6, "params_ratio"] == pytest.approx(0.7)
    assert s.loc[1, "loss_std"] == pytest.approx(0.02)
    text = SC.conclusion(SS.summarize(df))
    assert "exp  6" in text and "worse" in text.split("exp  6")[1].splitlines()[0]
    assert "no measurable difference" in text.split("exp  8")[1].splitlines()[0]


def test_runs_at_or_above_the_bigram_table_are_named():
    """A seed that ends at or above the bigram table of its tokens learned no more than the previous token: the
    conclusion names it (experiment and seed), beside an original that learned; none named when every run is below."""
    df = _runs([(1, 0, 2.00, 100), (1, 1, 2.02, 100), (9, 0, 2.47, 70), (9, 1, 2.50, 70), (9, 2, 2.48, 70)])
    df["bigram_ce"], df["unigram_ce"] = 2.48, 3.08
    s = SS.summarize(df).set_index("id")
    assert s.loc[9, "at_bigram_seeds"] == [1, 2] and s.loc[1, "at_bigram_seeds"] == []
    text = SC.conclusion(s.reset_index())
    assert "exp 9 (linea-mlp-9) seeds 1, 2 of 3" in text and "exp 1 (" not in text.split("at or above")[1]
    df["bigram_ce"] = 2.6
    assert "at or above" not in SC.conclusion(SS.summarize(df))


def test_one_seed_is_no_test_and_no_original_is_said():
    """The full profile trains one seed: a difference of two single runs has no spread to test against, so it must
    not be called better or worse; without experiment 1 there is nothing to compare with."""
    df = _runs([(1, 0, 5.00, 100), (6, 0, 5.50, 70), (8, 0, 4.90, 75)])
    text = SC.conclusion(SS.summarize(df))
    assert text.count("n = 1: no test") == 2 and "better" not in text and "worse" not in text
    assert "no original" in SC.conclusion(SS.summarize(_runs([(6, 0, 5.5, 70), (6, 1, 5.6, 70)])))


def test_reference_from_notebook_01_records(results_root):
    run = settings(SE.NB_MLP, P.PROFILES, "tiny", quiet=True)
    assert P.load_reference(run) == {} and run.records == []
    cfg01 = P.run_config(run.cfg, P.EXPERIMENTS[1], "tiny")
    for seed, loss in ((0, 5.0),):
        r01 = type(run)(**{**run.__dict__, "notebook": SE.NB_ATTENTION, "seed": seed, "records": []})
        save_result(r01, "exp01", P.EXPERIMENTS[1].name, {"metrics": {"eval_loss": loss, "tokens_per_s": 1.0},
                    "curves": {"eval_loss": {"3": loss}}, "params": {"total": 100, "full_scale": 405_334_016}},
                    config=cfg01)
    refs = P.load_reference(run)
    assert len(refs) == 1 and [r["notebook"] for r in run.records] == [SE.NB_ATTENTION]   # it joins the run's records
    ref = SS.summarize(SS.rows(refs))
    assert ref.loc[0, "loss_mean"] == 5.0
    s = SS.summarize(_runs([(9, 0, 5.25, 90)]), reference=ref)
    assert s.loc[0, "delta_loss"] == pytest.approx(0.25)
    # a record trained with another config is not a valid reference
    other = settings(SE.NB_MLP, P.PROFILES, "tiny", overrides={"train.lr": 1e-2}, quiet=True)
    assert P.load_reference(other) == {}


def test_params_command_prints_24_matches_and_2_explained(capsys):
    """The command in a process of its own; its --json form here (the same function: a second process cost ~12 s)."""
    r = subprocess.run([sys.executable, "-m", "helpers", "params"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "24 match, 2 explained, 0 mismatch" in r.stdout
    assert "220,353,704" in r.stdout and "380,102,656" in r.stdout
    assert main(["params", "--json"]) in (0, None)
    import json

    assert {row["id"]: row["status"] for row in json.loads(capsys.readouterr().out)}[18] == "explained"


def test_regime_point_records_both_losses_the_gap_and_the_references():
    cfg = P.PROFILES["tiny"]
    res = regime.regime_point(cfg, seed=0)
    m = res["metrics"]
    assert m["gap"] == pytest.approx(m["no_attention.eval_loss"] - m["original.eval_loss"])
    assert m["bigram_ce"] < m["unigram_ce"] and m["original.params"] > m["no_attention.params"]
    rec = {"variant": "regime tiny", "seed": 0, "config": {**__import__("dataclasses").asdict(cfg)}, "metrics": m}
    other = {**rec, "variant": "regime other", "metrics": {**m, "gap": m["gap"] + 1}}
    table = SS.regime_table([rec, other])
    assert list(table["point"]) == ["other", "tiny"] and table.loc[1, "layers x width"] == "6 x 16"


def test_the_standard_error_of_a_difference_pools_every_arm():
    """delta_se = s_pooled sqrt(1/n_a + 1/n_b) with s_pooled^2 = the within-arm sum of squares / (N - groups): an
    arm with no spread still gets the others' (a se from one arm only, or without the root, fails here)."""
    df = _runs([(1, 0, 5.0, 100), (1, 1, 5.2, 100), (1, 2, 5.4, 100),          # original: SS 0.08, n = 3
                (6, 0, 5.9, 70), (6, 1, 5.9, 70),                               # no attention: SS 0, n = 2
                (8, 0, 5.3, 75), (8, 1, 5.5, 75)])                              # SS 0.02, n = 2
    s = SS.summarize(df).set_index("id")
    pooled = ((0.08 + 0.0 + 0.02) / (7 - 3)) ** 0.5
    assert s.loc[6, "delta_se"] == pytest.approx(pooled * (1 / 2 + 1 / 3) ** 0.5)
    assert s.loc[8, "delta_se"] == pytest.approx(pooled * (1 / 2 + 1 / 3) ** 0.5) and s.loc[8, "df"] == 4


def _laddered(rows, rungs=(2.4, 1.9, 1.55, 1.4)):
    df = _runs(rows)
    df["bigram_ce"], df["unigram_ce"] = 2.48, 3.08
    for n, ce in zip((2, 3, 4, 5), rungs):
        df[f"ngram{n}_ce"] = ce
    df["seen5"], df["train_tokens_available"] = 0.8, 614_400
    return df


def test_the_gate_says_met_or_missed_per_original_and_names_variants_above_the_trigram():
    """The gate (each original below the trigram table of its text on every seed) reads 'met' with the worst seed's
    margin, or 'MISSED' naming the seeds; a variant at or above the rung is named as a finding. Breakages caught: the
    mean instead of every seed (1.88 / 1.92 averages below 1.9), the margin of the best seed, the gate judged on the
    bigram column."""
    rows = [(1, 0, 1.80, 100), (1, 1, 1.85, 100), (1, 2, 1.83, 100),
            (19, 0, 1.88, 120), (19, 1, 1.92, 120),
            (9, 0, 1.95, 70), (9, 1, 1.85, 70), (9, 2, 1.90, 70)]
    s = SS.summarize(_laddered(rows)).set_index("id")
    assert s.loc[1, "at_gate_seeds"] == [] and s.loc[19, "at_gate_seeds"] == [1] and s.loc[9, "at_gate_seeds"] == [0, 2]
    assert s.loc[1, "gate_margin_min"] == pytest.approx(0.05) and s.loc[19, "gate_margin_min"] == pytest.approx(-0.02)
    lines = SC.ladder_lines(s.reset_index())
    assert "3-gram 1.900" in lines[0] and "80% of 5-grams" in lines[0] and "614,400 train tokens" in lines[0]
    assert "exp 1 (410m) met" in lines[1] and "worst of 3 seeds 0.050 nats below" in lines[1]
    assert "exp 19 (2.8b) MISSED on seed 1 of 2" in lines[2] and "0.020 nats above" in lines[2]
    assert "exp 9 seeds 0, 2 of 3" in lines[3] and "exp 1 " not in lines[3]
    assert SC.ladder_lines(SS.summarize(_runs(rows))) == []          # records before the ladder: no gate claimed


def test_the_regime_rule_picks_the_fewest_tokens_among_points_that_clear_the_trigram_and_the_gap():
    """REGIME_MARGIN below the trigram and REGIME_GAP, then the fewest train tokens. Breakages caught: a rule on the
    bigram, a rule that ignores the gap, picking the lowest loss instead of the cheapest point, a point without a
    ladder qualifying."""
    def point(name, steps, orig, gap, trigram):
        m = {"original.eval_loss": orig, "no_attention.eval_loss": orig + gap, "gap": gap, "bigram_ce": 2.4,
             "unigram_ce": 3.0, "original.wall_s": 1.0, "no_attention.wall_s": 1.0, "original.params": 100}
        if trigram is not None:
            m["ngram_ce"] = {"2": 2.3, "3": trigram, "4": 1.5, "5": 1.3}
        return {"variant": f"regime {name}", "seed": 10, "metrics": m,
                "config": {"tokenizer": "bytes", "sizes": {"410m": {"layers": 6, "hidden": 96}}, "block": 64,
                           "train": {"max_steps": steps, "batch_size": 16, "lr": 5e-3}}}
    pts = [point("old", 300, 1.70, 0.5, None),                       # no ladder: never qualifies
           point("short", 300, 1.80, 0.5, 1.85),                     # 0.05 below: under the margin
           point("narrow gap", 450, 1.60, 0.2, 1.85),                # below by 0.25 but attention barely matters
           point("long", 900, 1.50, 0.4, 1.85), point("mid", 600, 1.74, 0.4, 1.85)]
    assert SS.regime_choice(pts) == "mid"
    assert SS.regime_choice(pts[:3]) is None
    table = SS.regime_table(pts)
    assert table.set_index("point").loc["mid", "chosen"] == "<- rule"
    assert table.set_index("point").loc["mid", "below trigram"] == pytest.approx(0.11)


def test_embedding_claims_are_not_testable_where_the_embedding_is_a_small_share():
    """Exps 25/26 are judged only where the embedding holds >= EMBED_SHARE_MIN of the parameters (from exp 25's
    trainable count); below it the claim reads NOT TESTABLE with both shares, never NOT CONFIRMED. Breakages caught:
    the share from the total alone (always 0), a threshold on the full-scale share (12.7%: always testable)."""
    def table(trainable):
        df = _runs([(1, s, 2.0 + 0.01 * s, 100) for s in range(3)] + [(25, s, 2.0 + 0.01 * s, 100) for s in range(3)]
                   + [(26, s, 2.01 + 0.01 * s, 99) for s in range(3)])
        df["params.trainable"] = df["params.total"]
        df.loc[df["id"] == 25, "params.trainable"] = trainable
        df.loc[df["id"] == 1, "params.full_scale"] = 405_334_016
        df.loc[df["id"] == 25, "params.full_scale"] = 353_822_720
        return SS.summarize(df)
    small = SC.claims(table(97))
    assert "exp 25: notes 'loss much higher' -> NOT TESTABLE" in small and "3.0% of the stand-in's" in small
    assert "(12.7% at full scale)" in small and "exp 26: notes 'loss higher, only ~10M fewer params' -> NOT TESTABLE" \
        in small and "NOT CONFIRMED" not in small
    assert "exp 25: notes 'loss much higher' -> NOT CONFIRMED" in SC.claims(table(80))


def test_the_readme_lists_each_dunnett_family_with_its_own_df():
    """Variants of exp 1 and of exp 19 are two many-to-one families: each is listed with its size and pooled df (3
    arms x 3 seeds - 3 = 6; 2 arms x 3 - 2 = 4), not one count and the first family's df."""
    rows = [(i, s, 2.0 + 0.01 * s + 0.001 * i, 100) for i in (1, 2, 3) for s in range(3)]
    rows += [(i, s, 2.1 + 0.01 * s + 0.001 * i, 200) for i in (19, 20) for s in range(3)]
    text = SC.dunnett_families(SS.summarize(_runs(rows)).dropna(subset=["delta_loss"]))
    assert text.startswith("exp 1 (410m): 2 variants, pooled df 6") and "exp 19 (2.8b): 1 variant, pooled df 4" in text


def test_every_regime_point_finds_its_committed_record():
    """`make surgery-regime` on a fresh clone loads all its points: each grid point, applied to today's local
    profile, keys to a committed record. Breakage caught (it happened): a point that inherits the profile's newer
    settings (spread evaluation, train_tokens, eval_every) names another experiment and would be retrained."""
    import importlib.util

    from helpers.paths import REPO_ROOT
    from helpers.results import find_record
    from helpers.sweep import overrides_sweep

    spec = importlib.util.spec_from_file_location("surgery_regime", REPO_ROOT / "benchmarks" / "surgery_regime.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    run = settings(SE.NB_ATTENTION, P.PROFILES, "local", quiet=True, overrides={"workers": 2})
    s = overrides_sweep(run, "regime", {f"regime {n}": o for n, o in bench.grid().items()}, regime.regime_point,
                        key=lambda c: regime._regime_key(c, regime.REGIME_SEED))
    missing = [p.variant for p in s.points
               if find_record(SE.NB_ATTENTION, p.variant, {"profile": "local", **p.config}, regime.REGIME_SEED,
                              REPO_ROOT / "results") is None]
    assert len(s.points) == 14 and not missing, missing
