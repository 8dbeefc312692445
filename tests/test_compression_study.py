"""Notebook 04's glue: the target ratios and the configuration checks."""
import pytest

from helpers import compression_study as S


def test_target_ratios():
    b = {"tables": {"rows": [{"method": "whiten", "group": "both", "reduction": 0.2, "delta": 0.05},
                             {"method": "svd", "group": "both", "reduction": 0.2, "delta": 1.0}]}}
    c = {"tables": {"fit": [{"fit": "closed form (whiten)", "steps": None, "wall_s": 0.01, "heldout_mse": 1.0},
                            {"fit": "Adam", "steps": 100, "wall_s": 0.5, "heldout_mse": 3.0},
                            {"fit": "Adam", "steps": 1000, "wall_s": 5.0, "heldout_mse": 1.2}]}}
    t = S.target_ratios(b, c)
    assert t["whiten_over_svd_delta"] == pytest.approx(0.05)
    assert t["speedup_vs_adam"] == pytest.approx(500) and t["adam_steps"] == 1000
    assert t["closed_no_worse_at_every_step"]
    c["tables"]["fit"][2]["heldout_mse"] = 0.9
    assert not S.target_ratios(b, c)["closed_no_worse_at_every_step"]


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
    table = S.sweep_table(b)
    assert table.loc[("mlp", 0.2), "whiten"].endswith("tie") and not table.loc[("mlp", 0.2), "svd"].endswith("tie")
