"""Wrong numbers a plausible wrong implementation would print without failing any other test: the n-gram references'
split, pairs and smoothing, the model DPO starts from and scores against, the SFT loss mask handed to TRL, bits per
character, the TOST interval's level, the default inference loops of the error-against-k curve, and the gates'
boundaries. Each test's docstring names the breakage it was checked against (tiny inputs, no training)."""
import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

# ------------------------------------------------------------------------------------------------ 1. n-gram tables
# vocabulary 0..3 (3 never occurs); two train blocks, two validation blocks
NGRAM_TRAIN = {"input_ids": [[0, 1, 2], [2, 0, 1]]}
NGRAM_VAL = {"input_ids": [[1, 2, 0], [1, 1, 1]]}
V = 4
# by hand. train tokens: 0, 1, 2 twice each (6 tokens); add-one unigram (count + 1) / (6 + 4) = 0.3 for each of them.
# pairs within the train blocks: (0,1) x2, (1,2), (2,0); as first of a pair: 0 twice, 1 once, 2 once.
# validation pairs within its blocks: (1,2): 1/1, (2,0): 1/1, (1,1) twice: 0/1 -> 0.8 * p_bi + 0.2 * 0.3
UNIGRAM_CE = -math.log(0.3)
BIGRAM_CE = -(2 * math.log(0.8 * 1 + 0.2 * 0.3) + 2 * math.log(0.8 * 0 + 0.2 * 0.3)) / 4


class _Tok:
    """len() is the vocabulary; token i decodes to i characters ("x" * i)."""

    def __init__(self, n=V):
        self.n = n

    def __len__(self):
        return self.n

    def decode(self, ids):
        return "".join("x" * int(i) for i in ids)


def test_reference_tables_come_from_the_train_blocks_pairs_within_blocks_and_add_one_unigram():
    """Breakages caught: the unigram without add-one smoothing (-ln 1/3, not -ln 0.3); bigram pairs counted across
    block boundaries (train.ravel(): adds (2,2) and makes p(0|2) = 1/2; or the validation's (0,1) across its two
    blocks); the tables built from the validation split (its counts 1:4, 0:1, 2:1 give other numbers)."""
    from helpers.pretrain import bigram_cross_entropy, unigram_cross_entropy

    assert unigram_cross_entropy(NGRAM_TRAIN, NGRAM_VAL, V) == pytest.approx(UNIGRAM_CE, rel=1e-12)
    assert bigram_cross_entropy(NGRAM_TRAIN, NGRAM_VAL, V, lam=0.8) == pytest.approx(BIGRAM_CE, rel=1e-12)
    # the wrong numbers, by hand, are indeed different (the test would see each breakage)
    wrong = {"unsmoothed unigram": -math.log(2 / 6),
             "unigram of the validation split": -(math.log(5 / 10) * 4 + math.log(2 / 10) * 2) / 6,
             "train pairs across blocks": -(math.log(0.86) + math.log(0.8 / 2 + 0.06) + 2 * math.log(0.06)) / 4,
             "validation pairs across blocks": -(3 * math.log(0.86) + 2 * math.log(0.06)) / 5}
    assert all(abs(w - UNIGRAM_CE) > 1e-3 and abs(w - BIGRAM_CE) > 1e-3 for w in wrong.values())


def test_the_ngram_ladder_by_hand_witten_bell_within_blocks_from_the_train_blocks():
    """Orders 2 and 3 by hand on train [0,1,0,1], eval [0,1,0,0] (V = 2). Add-one unigram: (2 + 1) / (4 + 2) = 0.5.
    Order 2, (c(h,w) + u(h) p_1) / (c(h) + u(h)): after 0 (twice, always 1): p(1|0) = 2.5/3, p(0|0) = 0.5/3;
    after 1 (once, 0): p(0|1) = 1.5/2. Order 3: (0,1) -> 0 once: p(0|01) = (1 + 0.75) / 2; (1,0) -> 1 once:
    p(0|10) = (0 + 1/6) / 2; the first target has one token before it and keeps its order-2 probability.
    Breakages caught: a fixed interpolation weight; an unseen history not backing off whole; the tables built from
    the eval blocks; windows across block boundaries (the second case: [0,1] | [1,0] flattened shows 1 -> 1); the
    first targets of a block dropped from the higher orders (a different mean)."""
    from helpers.pretrain import ngram_ladder

    train, ev = {"input_ids": [[0, 1, 0, 1]]}, {"input_ids": [[0, 1, 0, 0]]}
    got = ngram_ladder(train, ev, 2, orders=(2, 3))
    assert got[2] == pytest.approx(-(math.log(2.5 / 3) + math.log(0.75) + math.log(0.5 / 3)) / 3, rel=1e-12)
    assert got[3] == pytest.approx(-(math.log(2.5 / 3) + math.log(0.875) + math.log(1 / 12)) / 3, rel=1e-12)
    # a history train never shows, (0,0), backs off whole: order 3 = order 2 = p(0|0) = 0.5/3 on every target
    unseen = ngram_ladder(train, {"input_ids": [[0, 0, 0, 0]]}, 2, orders=(2, 3))
    assert unseen[2] == pytest.approx(-math.log(0.5 / 3), rel=1e-12) and unseen[3] == pytest.approx(unseen[2])
    # within blocks: train [0,1] and [1,0] never show 1 followed by 1, nor anything after the 1 that ends block 1
    # as a history of order 3; eval [1,1]: history 1 is seen once (-> 0), p(1|1) = (0 + 1 * 0.5) / (1 + 1)
    split = ngram_ladder({"input_ids": [[0, 1], [1, 0]]}, {"input_ids": [[1, 1]]}, 2, orders=(2, 5))
    assert split[2] == pytest.approx(-math.log(0.25), rel=1e-12) and split[5] == split[2]
    with pytest.raises(ValueError, match=r"orders must be integers >= 2.*\(1, 2\)"):
        ngram_ladder(train, ev, 2, orders=(1, 2))


def test_the_share_of_evaluation_windows_seen_in_train_by_hand():
    """Train [0,1,0,1], eval [0,1,0,0]: eval pairs (0,1) (1,0) (0,0), of which train shows the first two: 2/3; eval
    triples (0,1,0) (1,0,0), train shows (0,1,0) only: 1/2. Within blocks: train [0,1] | [1,0] never shows (1,1)
    nor (1,1,...), so eval [1,1] has seen share 0 at every order. Breakages caught: shares counted over the eval
    blocks' own windows (1 everywhere), windows across the train blocks' boundary (1 for the split case), the shares
    of one order reported under another."""
    from helpers.pretrain import ngram_ladder

    seen = {}
    ngram_ladder({"input_ids": [[0, 1, 0, 1]]}, {"input_ids": [[0, 1, 0, 0]]}, 2, orders=(2, 3), seen=seen)
    assert seen == {2: pytest.approx(2 / 3), 3: pytest.approx(1 / 2)}
    split = {}
    ngram_ladder({"input_ids": [[0, 1], [1, 0]]}, {"input_ids": [[1, 1]]}, 2, orders=(2,), seen=split)
    assert split == {2: 0.0}


def test_spread_rows_reach_every_part_of_a_split():
    """k of n rows evenly spaced, floor(i n / k): 3 of 10 -> 0, 3, 6; all rows for None or k >= n. Breakages
    caught: the first k rows (the old sample: one document), a stride that overruns n, rounding that repeats a row."""
    from helpers.pretrain import spread_rows

    assert spread_rows(10, 3) == [0, 3, 6] and spread_rows(7, 7) == list(range(7))
    assert spread_rows(5, None) == list(range(5)) and spread_rows(5, 9) == list(range(5))
    rows = spread_rows(4790, 256)
    assert len(set(rows)) == 256 and rows[-1] >= 4790 - 4790 // 256 - 1 and max(rows) < 4790


def test_the_ngram_ladder_falls_with_the_order_on_text_with_structure():
    """A sequence that repeats with period 5 in a vocabulary of 7 is a function of its last 4 tokens, not of its
    last one: each order's table must score lower than the one below it (a ladder whose orders ignore the extra
    context, or count it wrong, does not). Random tokens give the reverse (no context to use)."""
    from helpers.pretrain import ngram_ladder

    seq = [3, 1, 4, 1, 5] * 8
    blocks = {"input_ids": [seq[i:i + 16] for i in range(0, 20)]}
    got = ngram_ladder(blocks, blocks, 7)
    assert got[2] > got[3] > got[4] >= got[5] and got[5] < 0.2, got
    rng = np.random.default_rng(0)
    noise = ngram_ladder({"input_ids": rng.integers(0, 7, (50, 16)).tolist()},
                         {"input_ids": rng.integers(0, 7, (9, 16)).tolist()}, 7)
    assert noise[5] > noise[2] > math.log(7) - 0.2, noise


def test_lm_data_references_are_the_train_tables_scored_on_the_validation_blocks():
    """Breakage caught: LMData.references building its tables from the validation split (or scoring the train
    blocks): with these tokens the validation's own tables give other numbers than the hand-computed ones."""
    from helpers.pretrain import LMData

    d = LMData(tok=_Tok(), train=NGRAM_TRAIN, val=NGRAM_VAL, corpus="hand", block=3, eval_blocks=None)
    refs = d.references
    assert refs["unigram_ce"] == pytest.approx(UNIGRAM_CE, rel=1e-12)
    assert refs["bigram_ce"] == pytest.approx(BIGRAM_CE, rel=1e-12)


def test_lm_data_ladder_is_the_train_blocks_ladder_scored_on_the_validation_blocks():
    """Breakage caught: LMData.ladder (what 00's record stores) built from the validation blocks, or scoring the
    train blocks: the hand-computed ladder of test_the_ngram_ladder_by_hand... is the only right answer."""
    from helpers.pretrain import LMData

    d = LMData(tok=_Tok(2), train={"input_ids": [[0, 1, 0, 1]]}, val={"input_ids": [[0, 1, 0, 0]]}, corpus="hand",
               block=4, eval_blocks=None)
    assert d.ladder[2] == pytest.approx(-(math.log(2.5 / 3) + math.log(0.75) + math.log(0.5 / 3)) / 3, rel=1e-12)
    assert d.ladder[3] == pytest.approx(-(math.log(2.5 / 3) + math.log(0.875) + math.log(1 / 12)) / 3, rel=1e-12)
    assert sorted(d.ladder) == [2, 3, 4, 5]


# ------------------------------------------------------------------------------------------------ 4. bits per char
def test_bits_per_char_is_nats_per_token_times_tokens_over_chars_over_ln2():
    """Breakages caught: counting every token of a block (8, not the 6 predicted ones), decoding the whole block
    (first token's characters included), dividing by log(10) or not by ln 2 at all. By hand: predicted tokens
    [1, 2, 3] and [4, 4, 1] = 6 tokens of 6 + 9 = 15 characters; 2.5 bits/token * 6 / 15 = 1.0 bit per char."""
    from helpers.pretrain import bits_per_char

    blocks = {"input_ids": [[5, 1, 2, 3], [7, 4, 4, 1]]}
    loss = 2.5 * math.log(2)                          # nats per token = 2.5 bits per token
    assert bits_per_char(loss, blocks, _Tok(16)) == pytest.approx(1.0, rel=1e-12)
    assert bits_per_char(2 * loss, blocks, _Tok(16)) == pytest.approx(2.0, rel=1e-12)


# ------------------------------------------------------------------------------------------------ 5. TOST level
TOST_A = [-0.047, -0.004, -0.025]
TOST_B = [-0.015, -0.011, -0.006]


def test_tost_at_alpha_005_prints_the_90_percent_interval():
    """Breakage caught: the interval of a TOST at alpha = 0.05 computed or printed at 95% (t quantile 1 - alpha/2, or
    level 1 - alpha). By hand: Welch se and df, quantile t(0.95, df); the 90% interval lies inside +-0.05 (TOST
    p < 0.05, 'equivalent'), the 95% one would not, so a 95% interval also contradicts the printed verdict."""
    from scipy import stats as st

    from helpers.stats import describe_equivalence, equivalence

    a, b = np.array(TOST_A), np.array(TOST_B)
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    diff = a.mean() - b.mean()
    q90 = st.t.ppf(0.95, df)
    r = equivalence(a, b, margin=0.05)
    assert r["level"] == pytest.approx(0.90)
    assert r["lo"] == pytest.approx(diff - q90 * se, rel=1e-9) and r["hi"] == pytest.approx(diff + q90 * se, rel=1e-9)
    assert r["verdict"] == "equivalent" and r["p_tost"] < 0.05
    assert diff - st.t.ppf(0.975, df) * se < -0.05          # the 95% interval would leave the margin
    text = describe_equivalence(r)
    assert f"90% CI [{diff - q90 * se:+.3f}, {diff + q90 * se:+.3f}] inside +-0.05" in text
    assert text.endswith(": equivalent")


# ------------------------------------------------------------------------------------------------ 6. default loops
def test_error_against_k_runs_the_trained_loops_unless_told_otherwise():
    """Breakage caught: errors_vs_k (or the model's forward) defaulting to another loop count than the trained
    loops (e.g. `loops or 1`, or cfg.window): a call without `loops` must equal one with the model's trained loops
    (LoopedConfig.loops) and differ from one with 1 loop. Every profile's model.loops is its loop curriculum's end,
    the loops the last training steps ran."""
    from helpers.looped import tasks as icl
    from helpers.looped.config import PROFILES
    from helpers.looped.model import LoopedTransformer
    from helpers.looped.training import errors_vs_k
    from helpers.models import LoopedConfig

    for name, cfg in PROFILES.items():
        assert cfg.model.loops == cfg.train.loops.end, name
    torch.manual_seed(0)
    model = LoopedTransformer(LoopedConfig(n_dims=2, n_positions=6, width=16, n_head=2, loops=3, window=2,
                                           token_format="extra_dim"))
    g = torch.Generator().manual_seed(0)
    xs = icl.sample_xs(8, 6, 2, 2, g)
    ys = icl.sample_task("linear_regression", xs, 2, g)
    default = errors_vs_k(model, xs, ys, 2.0)
    np.testing.assert_array_equal(default, errors_vs_k(model, xs, ys, 2.0, loops=3))
    for other in (1, 2, 4):
        assert not np.allclose(default, errors_vs_k(model, xs, ys, 2.0, loops=other)), other


# ------------------------------------------------------------------------------------------------ 7. gates
def _looped_rec(arm, seed, err):
    return {"run_id": f"{arm}-{seed}", "experiment": arm, "variant": arm, "seed": seed, "status": "ok",
            "metrics": {"err.k=2d": err, "d": 2}}


def test_notebook_05_gate_is_strictly_below_a_third_of_averaging():
    """Breakage caught: the gate `error < 1/3 x averaging` flipped to `<=` (gate_table or regime_table): a run at
    exactly 1/3 of averaging's error must FAIL (the docstrings: 'below 1/3'), one just under it pass."""
    from helpers.looped import verdicts as VD

    base = {"run_id": "b", "experiment": "baselines", "metrics": {"averaging.k=2d": 3.0}}
    assert VD.GATE * 3.0 == 1.0                                  # exactly at the gate in floating point
    head = [_looped_rec("looped", 0, 1.0), _looped_rec("looped", 1, 0.999), _looped_rec("standard", 0, 1.0)]
    g = VD.gate_table(head, base).set_index(["arm", "seed"])["gate (< 1/3)"]
    assert g["looped", 0] == "FAIL" and g["standard", 0] == "FAIL" and g["looped", 1] == "pass"
    regime = [{"variant": "regime p", "config": {"train": {"steps": 10, "lr": 1e-3}},
               "metrics": {"d": 2, "looped.ratio_to_averaging": VD.GATE, "standard.ratio_to_averaging": 0.3,
                           "looped.wall_s": 1.0}}]
    row = VD.regime_table(regime).loc["p"]
    assert row["looped pass"] == "0 of 1" and row["standard pass"] == "1 of 1"


def test_notebook_07_gate_passes_a_run_exactly_gate_nats_below_the_bigram():
    """Breakage caught: 07's gate `below_bigram >= gate_nats` flipped to `>` (the config: every run must end
    gate_nats below the bigram table; the conclusion: '>= gate nats below'): a run exactly 0.25 nats below passes,
    one 0.2499 below fails."""
    from helpers.pretraining import report as PR

    def rec(variant, below):
        return {"experiment": "grid", "variant": variant, "seed": 0, "config": {"lm": {"train": {"lr": 1e-3}}},
                "metrics": {"eval_loss": 5.0 - below, "bigram_ce": 5.0, "unigram_ce": 7.0, "below_bigram": below}}

    g = PR.gate_table([rec("2 x 1", 0.25), rec("4 x 1", 0.2499)], gate=0.25).set_index("run")["gate"]
    assert g["2 x 1"] == "pass" and g["4 x 1"] == "FAIL"


def test_notebook_00_gate_is_strictly_below_the_trigram_and_names_the_strongest_rung():
    """00's gate (helpers.baselines.report.GATE_ORDER = 3): a model exactly at its trigram's cross-entropy MISSES,
    one just below meets it; the text names the strongest rung (here the trigram, the 4- and 5-gram being sparser),
    not the highest order the model happens to clear. Breakages caught: `<` flipped to `<=`; the gate read off the
    bigram; "the highest rung it clears" (the 5-gram here, a weaker table than the trigram)."""
    from helpers.baselines import report as BR

    ladder = {"2": 4.96, "3": 4.85, "4": 4.99, "5": 5.08}

    def lines(loss):
        return BR.ladder_lines({"eval_loss": loss, "train_tokens_available": 1000, "ngram_ce": ladder})

    at, below, above = lines(4.85), lines(4.8499), lines(4.94)
    assert BR.GATE_ORDER == 3
    assert "MISSED, the model ends 0.000 nats at or above it" in at[1]
    assert "met, the model ends 0.000 nats below it" in below[1]
    assert "MISSED, the model ends 0.090 nats at or above it" in above[1]
    assert "the strongest is the 3-gram, and the model (4.940) ends 0.090 nats ABOVE it" in above[0]
    assert "2-gram 4.960, 3-gram 4.850, 4-gram 4.990, 5-gram 5.080" in above[0]
    assert BR.ladder_lines({"eval_loss": 4.9, "train_tokens_available": 10}) == []        # records before the ladder


def test_notebook_00_regime_rule_takes_the_fewest_tokens_at_least_the_margin_below_the_trigram():
    """The regime search's rule (report.regime_choice, fixed before the search): among points at least
    REGIME_MARGIN below their own trigram (exactly at the margin counts), the one with the fewest training tokens;
    none: None, and the sentence says so. Breakages caught: choosing the lowest loss (the 2400-token point); `>=`
    flipped to `>`; measuring the margin against the bigram."""
    from helpers.baselines import report as BR

    def rec(name, tokens, loss, tri):
        return {"variant": f"regime {name}", "seed": 10, "experiment": "regime",
                "config": {"lm": {"tokenizer": "t", "size": {"hidden": 8, "layers": 1}, "train": {"lr": 1e-3}}},
                "metrics": {"tokens": tokens, "steps": tokens // 10, "eval_loss": loss, "train_time_s": 1.0,
                            "ngram_ce": {"2": tri - 0.5, "3": tri, "4": tri + 0.1, "5": tri + 0.2}}}

    margin = BR.REGIME_MARGIN
    assert 2 * margin - margin == margin                        # exactly at the margin in floating point
    recs = [rec("small", 600, 4.90, 4.85), rec("mid", 1200, margin, 2 * margin), rec("big", 2400, 0.01, 4.85)]
    assert BR.regime_choice(recs) == "regime mid"
    assert "chose 'mid' (1,200 tokens" in BR.regime_line(recs)
    table = BR.regime_table(recs)
    assert table.loc["mid", "chosen"] and not table.loc["big", "chosen"]
    assert table.loc["small", "below gate"] == pytest.approx(-0.05)
    assert BR.regime_choice(recs[:1]) is None and BR.regime_line(recs[:1]).endswith("no point met it.")


# ------------------------------------------------------------------------------------------------ 2. DPO's start
PAIR = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
        "rejected": [{"role": "assistant", "content": "b"}]}


def _loaders(monkeypatch, jobs):
    """jobs' loaders replaced by recorders: base_model -> 'untuned', PeftModel.from_pretrained -> ('adapter', model,
    dir), merged -> ('merged', model); train_dpo records the model it is handed."""
    seen = {}

    class Peft:
        @staticmethod
        def from_pretrained(model, path):
            return ("adapter", model, str(path))

    class Out:
        def save_pretrained(self, path):
            seen["saved"] = path

    def train_dpo(model, *a, **k):
        seen["model"] = model
        return {"metrics": {}, "curves": {}, "provenance": {}, "model": Out()}

    monkeypatch.setattr(jobs, "base_model", lambda cfg, device="cpu": "untuned")
    monkeypatch.setattr(jobs, "PeftModel", Peft)
    monkeypatch.setattr(jobs, "merged", lambda m: ("merged", m))
    monkeypatch.setattr(jobs, "train_dpo", train_dpo)
    monkeypatch.setattr(jobs, "evaluate", lambda *a, **k: {"metrics": {}, "tables": {}})
    return seen


def test_dpo_sections_start_from_the_merged_sft_baseline(tmp_path, monkeypatch):
    """Breakages caught: dpo_job training from the untuned model (base_model(cfg) without the SFT adapter) or from the
    unmerged PEFT model; dpo_search / dpo_runs handing the jobs another adapter than the SFT baseline's seed 0 (or
    none). The sections run with a recording run_points, the job with recording loaders: nothing is trained."""
    from helpers.sft import jobs
    from helpers.sft import study as S

    sft_recs = {}
    for variant, seed in (("baseline", 0), ("baseline", 1), ("whole-sequence", 0)):
        d = tmp_path / f"{variant}-s{seed}"
        d.mkdir()
        (d / "adapter_config.json").write_text("{}")
        sft_recs[variant, seed] = {"provenance": {"adapter_dir": str(d)}}
    want = str(tmp_path / "baseline-s0")
    points = []
    monkeypatch.setattr(S, "run_points", lambda run, pts, *a, **k: points.extend(pts) or {})
    monkeypatch.setattr(S, "recorded", lambda *a, **k: None)
    pairs = {"train": [PAIR], "val": [PAIR], "heldout": [PAIR]}
    ref = {n: {"chosen": [-1.0], "rejected": [-2.0]} for n in ("val", "heldout")}
    monkeypatch.setattr(S, "_dpo_inputs", lambda *a: ({"run_id": "pairs-1"}, pairs, ref))
    run = SimpleNamespace(cfg=S.PROFILES["tiny"], notebook="06_sft_dpo", profile="tiny", device="cpu")
    run.with_seed = lambda seed: run
    S.dpo_search(run, {"tok": None}, sft_recs, {})
    S.dpo_runs(run, {"tok": None}, sft_recs, {}, {})
    assert points and {p.args[0].sft_dir for p in points} == {want}

    seen = _loaders(monkeypatch, jobs)
    job = dataclasses.replace(points[0].args[0], pairs={"train": [PAIR]}, ref={})
    jobs.dpo_job(job, 0, "cpu")
    assert seen["model"] == ("merged", ("adapter", "untuned", want))


class _Stop(Exception):
    """Raised by a recording stand-in for a TRL trainer: what it was handed is checked, nothing is trained."""


def _recorder(seen: list):
    def record(**kw):
        seen.append(kw)
        raise _Stop

    return record


class _TinyQ(torch.nn.Module):
    """A model with one q_proj, what the LoRA settings target."""

    def __init__(self):
        super().__init__()
        self.q_proj = torch.nn.Linear(2, 2)


def test_train_dpo_scores_against_the_model_it_starts_from(monkeypatch):
    """Breakage caught: a separate reference (e.g. an untuned copy) handed to TRL, or no fresh LoRA config (with
    ref_model=None and a PEFT config, TRL's reference is the start model with the DPO adapter disabled: the merged
    SFT model). DPOTrainer is replaced by a recorder that stops before training."""
    from helpers.sft import trainers

    calls = []
    model = _TinyQ()
    monkeypatch.setattr(trainers, "DPOTrainer", _recorder(calls))
    with pytest.raises(_Stop):
        trainers.train_dpo(model, "tok", [PAIR] * 4, trainers.DPOSettings(steps=1, batch_size=2),
                           trainers.LoraSettings(targets=("q_proj",)), 64)
    seen = calls[0]
    assert seen["model"] is model and seen["ref_model"] is None
    assert seen["peft_config"] is not None and list(seen["peft_config"].target_modules) == ["q_proj"]


# ------------------------------------------------------------------------------------------------ 3. SFT loss mask
def test_sft_masking_hands_trl_completion_only_loss_on_prompt_completion_rows(monkeypatch):
    """Breakages caught: completion_only_loss not passed (TRL's default None masks prompt-completion rows anyway, so
    'whole-sequence' would silently mask), passed inverted, or masking moved to assistant_only_loss (which needs
    'messages' rows); the rows handed to TRL must be prompt / completion. SFTTrainer is a recorder that stops."""
    from helpers.sft import trainers
    from helpers.sft.config import PROFILES, variant_settings

    seen = []
    monkeypatch.setattr(trainers, "SFTTrainer", _recorder(seen))
    rows = [{"prompt": PAIR["prompt"], "completion": PAIR["chosen"], "word": "w"}] * 2
    cfg = PROFILES["tiny"]
    for variant, masked in (("baseline", True), ("whole-sequence", False)):
        s = variant_settings(cfg, variant)
        assert s.completion_only is masked
        with pytest.raises(_Stop):
            trainers.train_sft(_TinyQ(), "tok", rows, rows, s, trainers.LoraSettings(targets=("q_proj",)), 64)
        args = seen[-1]["args"]
        assert args.completion_only_loss is masked and args.assistant_only_loss is False
        assert seen[-1]["train_dataset"].column_names == ["prompt", "completion"]
