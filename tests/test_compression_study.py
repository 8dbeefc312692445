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
