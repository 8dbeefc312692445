"""Notebook 04's glue: the target ratios and the configuration checks."""
import pytest

from helpers import compression_study as S
from helpers import compression_report as CR


def test_target_ratios():
    b = {"tables": {"rows": [{"method": "whiten", "group": "both", "reduction": 0.2, "delta": 0.05},
                             {"method": "svd", "group": "both", "reduction": 0.2, "delta": 1.0}]}}
    c = {"tables": {"fit": [{"fit": "closed form (whiten)", "steps": None, "wall_s": 0.01, "heldout_mse": 1.0},
                            {"fit": "Adam", "steps": 100, "wall_s": 0.5, "heldout_mse": 3.0},
                            {"fit": "Adam", "steps": 1000, "wall_s": 5.0, "heldout_mse": 1.2}]}}
    t = CR.target_ratios(b, c)
    assert t["whiten_over_svd_delta"] == pytest.approx(0.05)
    assert t["speedup_vs_adam"] == pytest.approx(500) and t["adam_steps"] == 1000
    assert t["closed_no_worse_at_every_step"]
    c["tables"]["fit"][2]["heldout_mse"] = 0.9
    assert not CR.target_ratios(b, c)["closed_no_worse_at_every_step"]


def test_the_conclusion_leads_with_whitens_own_increase_and_says_which_targets_missed():
    """From the committed local records of notebook 04: whiten's absolute increase with its interval comes first;
    the ratio to plain SVD is shown only beside the statement that plain SVD is worse than a uniform guess; the
    speed-up target says met or missed; healing says it has no control; the sensitivity map says uncorrected."""
    import copy
    import math

    from helpers.analysis import by_experiment
    from helpers.results import load_records

    recs = {e: rs if e == "e_healing" else rs[0]
            for e, rs in by_experiment(load_records(notebook="04_lowrank_compression")).items()}
    if set(CR.SECTIONS) - set(recs):
        pytest.skip("notebook 04's local records are not all committed")
    text = CR.conclusion(*(recs[s] for s in CR.SECTIONS))
    b = next(r for r in recs["b_sweep"]["tables"]["rows"] if (r["method"], r["group"], r["reduction"]) ==
             ("whiten", "both", 0.2))
    assert f"whiten raises the held-out loss by {b['delta']:+.3f} nats (95% paired bootstrap [{b['lo']:+.3f}" in text
    assert f"worse than a uniform guess over the vocabulary ({math.log(49152):.2f})" in text
    speed = CR.target_ratios(recs["b_sweep"], recs["c_fitting"])["speedup_vs_adam"]
    assert f"(target >= 100: {'met' if speed >= 100 else 'missed'})" in text
    controlled = any(r["metrics"].get("control") for r in load_records(notebook="04_lowrank_compression")
                     if r["experiment"] == "e_healing")
    assert ("net of that domain adaptation" if controlled else "no control arm") in text
    assert "uncorrected over the map's" in text
    fast = copy.deepcopy(recs["c_fitting"])
    for row in fast["tables"]["fit"]:
        if row["fit"] == "closed form (whiten)":
            row["wall_s"] = 1e-6
    assert "(target >= 100: met)" in CR.conclusion(*(fast if s == "c_fitting" else recs[s] for s in CR.SECTIONS))


def test_healing_is_counted_net_of_the_teachers_own_gain_over_seeds():
    """Recovered = (compressed - healed) / (compressed - teacher); net of the control arm (the teacher fine-tuned on
    the same tokens) = 1 - (healed - tuned teacher) / (compressed - teacher); a t interval over seeds."""
    def rec(seed, healed, control=False, compressed=5.0):
        return {"run_id": f"{seed}{control}", "seed": seed, "metrics": {
            "teacher_loss": 3.0, "compressed_loss": 3.0 if control else compressed, "healed_loss": healed,
            "recovered_fraction": None if control else (compressed - healed) / (compressed - 3.0),
            "control": control, "steps": 30, "tokens": 100}}

    e = [rec(0, 4.0), rec(0, 2.8, True), rec(1, 4.2), rec(1, 2.9, True)]
    rows = {r["seed"]: r for r in CR.healing_rows(e)}
    assert rows[0]["recovered"] == pytest.approx(0.5) and rows[0]["net recovered"] == pytest.approx(1 - 1.2 / 2)
    assert rows[1]["net recovered"] == pytest.approx(1 - 1.3 / 2)
    line = CR.healing_line(e)
    assert "2 training seeds" in line and "net of that domain adaptation 37% is recovered [" in line
    assert "no control arm" in CR.healing_line([rec(0, 4.0)]) and "n = 1: no interval" in CR.healing_line([rec(0, 4.0)])


@pytest.mark.parametrize("kw, match", [
    (dict(methods=("svd", "magic")), "unknown method"),
    (dict(groups=("mlp", "embeddings")), "unknown group"),
    (dict(reductions=(0.2, 1.0)), "reductions must lie in"),
    (dict(fit_module="lm_head"), "fit_module must be a block Linear"),
])
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        S.CompressionConfig(**kw)


def test_students_are_compared_with_the_teacher_on_the_same_sequences_with_an_interval():
    """The teacher against itself is a tie at exactly 0; a student with a broken layer is worse, its interval
    above 0; the sweep table shows the interval and says tie only where it contains 0."""
    import copy

    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    teacher = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=2, vocab_size=50))
    g = torch.Generator().manual_seed(1)
    held = Dataset.from_list([{"input_ids": torch.randint(0, 50, (16,), generator=g).tolist()} for _ in range(24)])
    data = {"model": teacher, "held": held, "chats": []}
    same = S.versus_teacher(data, teacher, 24)
    assert same["delta"] == 0 and same["tie"]
    broken = copy.deepcopy(teacher)
    with torch.no_grad():
        broken.lm_head.weight.mul_(50.0)                   # confident, random logits: a far worse model
    worse = S.versus_teacher(data, broken, 24)
    assert worse["delta"] > 0 and 0 < worse["lo"] <= worse["delta"] <= worse["hi"] and not worse["tie"]
    b = {"tables": {"rows": [{"method": "svd", "group": "mlp", "reduction": 0.2, **worse},
                             {"method": "whiten", "group": "mlp", "reduction": 0.2, **same}]}}
    table = CR.sweep_table(b)
    assert table.loc[("mlp", 0.2), "whiten"].endswith("tie") and not table.loc[("mlp", 0.2), "svd"].endswith("tie")
    # the full profile's second set (held-out OpenOrca chats) is scored and labelled beside the headline set
    rows = [{"input_ids": r["input_ids"], "labels": [-100] * 8 + r["input_ids"][8:]} for r in held.select(range(4))]
    sets = S.heldout_losses(teacher, {**data, "openorca": rows})
    assert set(sets) == {"english", S.OPENORCA_SET} and "likely in its tuning data" in S.OPENORCA_SET
    assert sets[S.OPENORCA_SET]["tokens"] == 4 * 8                        # answer tokens only (labels shifted)
    assert S.PROFILES["full"].openorca_rows > 0 and S.PROFILES["full"].eval_corpus == "wikitext2"


def test_sensitivity_map_is_each_layers_loss_minus_the_uncompressed_models():
    """Full rank reproduces the teacher (every delta ~0, a tie); at rank 1 each cell equals that student's own loss
    minus the uncompressed model's, computed here by hand on the same blocks."""
    import copy

    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM

    from helpers.evaluate import lm_loss

    torch.manual_seed(0)
    teacher = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=4, num_key_value_heads=4,
                                           vocab_size=50)).eval()   # square q/k/v/o
    g = torch.Generator().manual_seed(1)
    held = Dataset.from_list([{"input_ids": torch.randint(0, 50, (16,), generator=g).tolist()} for _ in range(12)])
    full = S.measure_sensitivity({"model": teacher, "held": held, "chats": []},
                                 S.CompressionConfig(layers="all", sens_rank=32, sens_eval_blocks=12))
    for group in ("attention", "mlp"):
        assert all(abs(c["delta"]) < 1e-4 and c["tie"] for c in full["delta"][group]), full["delta"][group]
    data = {"model": teacher, "held": held, "chats": []}
    low = S.measure_sensitivity(data, S.CompressionConfig(layers="all", sens_rank=1, sens_eval_blocks=12))
    base = lm_loss(teacher, held, batch_size=4)["loss"]
    assert low["teacher_loss"] == pytest.approx(base, abs=1e-6)
    for layer in (0, 1):
        student = copy.deepcopy(teacher)
        mlp = student.model.layers[layer].mlp
        with torch.no_grad():                                  # rank-1 truncated SVD of each MLP weight, by hand
            for lin in (mlp.gate_proj, mlp.up_proj, mlp.down_proj):
                U, sv, Vh = torch.linalg.svd(lin.weight, full_matrices=False)
                lin.weight.copy_(sv[0] * U[:, :1] @ Vh[:1])
        by_hand = lm_loss(student, held, batch_size=4)["loss"] - base
        assert low["delta"]["mlp"][layer]["delta"] == pytest.approx(by_hand, abs=1e-5)


def test_paired_bootstrap_interval_has_the_known_width_and_uses_the_pairing():
    """Per-sequence differences with sd 3 over 2,000 sequences of 10 tokens: delta = their mean / 10 and the 95%
    interval is delta +- 1.96 * 0.3 / sqrt(2000) (within 10%), however much the teacher's losses vary between
    sequences (an unpaired bootstrap would be about 15x wider here)."""
    import numpy as np

    from helpers.stats import paired_bootstrap

    rng = np.random.default_rng(3)
    n = 2000
    teacher = rng.normal(40, 50, n)                                    # sequences differ a lot in difficulty
    diff = rng.normal(5.0, 3.0, n)
    tokens = np.full(n, 10)
    b = paired_bootstrap({"seq_loss_sum": teacher, "seq_tokens": tokens},
                         {"seq_loss_sum": teacher + diff, "seq_tokens": tokens})
    assert b["delta"] == pytest.approx(diff.mean() / 10)
    half = 1.96 * diff.std(ddof=1) / 10 / n ** 0.5
    assert (b["hi"] - b["lo"]) / 2 == pytest.approx(half, rel=0.1)
    assert b["lo"] < b["delta"] < b["hi"] and b["sequences"] == n and b["tokens"] == 10 * n
    with pytest.raises(ValueError, match="different sequences"):
        paired_bootstrap({"seq_loss_sum": teacher, "seq_tokens": tokens},
                         {"seq_loss_sum": teacher, "seq_tokens": tokens + 1})
