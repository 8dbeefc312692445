"""LowRankLinear, surgery ops and the seed-000 registry."""
import pytest
import torch
from torch import nn

from helpers.layers import parse_layers
from helpers.lowrank import FactorizedEmbedding, LowRankLinear, NoAttention
from helpers.models import param_counts as count
from helpers.models import pythia_config
from helpers.surgery import study as pythia
from helpers.surgery.ops import Op, apply_surgery, census, validate_ops


# ------------------------------------------------------------------------------------------ LowRankLinear
@pytest.mark.parametrize("shape", [(24, 40), (40, 24)])
def test_full_rank_svd_reproduces_the_layer(shape):
    torch.manual_seed(0)
    lin = nn.Linear(*shape)
    low = LowRankLinear.from_linear(lin, min(shape), init="svd")
    x = torch.randn(7, shape[0])
    assert torch.allclose(low(x), lin(x), atol=1e-5)


def test_truncated_svd_is_the_best_rank_r_approximation():
    torch.manual_seed(0)
    lin = nn.Linear(30, 20, bias=False)
    low = LowRankLinear.from_linear(lin, 5, init="svd")
    s = torch.linalg.svdvals(lin.weight.double())
    err = torch.linalg.matrix_norm((low.weight - lin.weight).double())
    assert err.item() == pytest.approx(s[5:].pow(2).sum().sqrt().item(), rel=1e-4)  # Eckart-Young
    assert low.down.bias is None and low.up.bias is None


def test_random_init_follows_the_models_initializer():
    torch.manual_seed(0)
    low = LowRankLinear.from_linear(nn.Linear(512, 512), 64)
    assert low.down.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.all(low.down.bias == 0) and torch.all(low.up.bias == 0)


@pytest.mark.parametrize("rank", [0, -1, 11, 2.5])
def test_bad_rank_names_the_value_and_the_limit(rank):
    with pytest.raises(ValueError, match=rf"rank {rank!r} is not allowed .* 1 <= rank <= min\(in, out\) = 10"):
        LowRankLinear(10, 30, rank)


def test_nonlinear_lora_has_a_gelu_and_same_params():
    a, b = LowRankLinear(16, 48, 4), LowRankLinear(16, 48, 4, activation="gelu")
    assert isinstance(b.act, nn.GELU) and isinstance(a.act, nn.Identity)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters()) == 16 * 4 + 4 + 4 * 48 + 48


def test_factorized_embedding_shapes():
    emb = FactorizedEmbedding(100, 32, 8)
    assert emb(torch.tensor([[1, 2, 3]])).shape == (1, 3, 32)
    assert sum(p.numel() for p in emb.parameters()) == 100 * 8 + 8 * 32


# ------------------------------------------------------------------------------------------ layer selection
def test_parse_layers():
    assert parse_layers("all", 4) == [0, 1, 2, 3]
    assert parse_layers("after:3", 24) == list(range(3, 24))
    assert parse_layers("12-18", 24) == list(range(12, 19))
    assert parse_layers("0-1,5", 8) == [0, 1, 5]


@pytest.mark.parametrize("sel, match", [
    ("24", "layer index 24 in '24' is out of range: the model has 24 layers"),
    ("20-25", "layer index 25"),
    ("after:24", "after:k with 0 <= k < 24"),
    ("5-3", "the end is before the start"),
    ("first three", "bad layer selection"),
])
def test_bad_layer_selection(sel, match):
    with pytest.raises(ValueError, match=match):
        parse_layers(sel, 24)


@pytest.mark.parametrize("kw, match", [
    (dict(target="ffn", action="remove"), "unknown surgery target 'ffn'"),
    (dict(target="dense", action="linearize"), "action 'linearize' is not allowed on 'dense'"),
    (dict(target="qkv", action="lowrank"), "needs an integer rank >= 1, got None"),
    (dict(target="qkv", action="lowrank", rank=0), "got 0"),
    (dict(target="mlp", action="linearize", rank=4), "takes no rank"),
    (dict(target="embed", action="freeze", layers="0-3"), "not per layer"),
])
def test_bad_ops(kw, match):
    with pytest.raises(ValueError, match=match):
        Op(**kw)


@pytest.mark.parametrize("ops, match", [
    ((Op("dense", "remove"), Op("dense", "lowrank", 8)), "contradict.*dense of layer 0"),
    ((Op("attention", "remove", layers="3"), Op("qkv", "lowrank", 8, "after:2")), "qkv of layer 3"),
    ((Op("mlp", "bottleneck", 8), Op("mlp", "linearize", layers="5")), "mlp.act of layer 5"),
    ((Op("embed", "freeze"), Op("embed", "factorize", 8)), "embed of the embedding"),
])
def test_contradicting_ops_raise(ops, match):
    with pytest.raises(ValueError, match=match):
        validate_ops(ops, 24)


def test_compatible_ops_pass():
    validate_ops((Op("mlp", "linearize"), Op("mlp", "factorize", 4, "0-2"), Op("qkv", "lowrank", 8, "after:3"),
                  Op("dense", "remove")), 24)


def test_unknown_experiment_id():
    with pytest.raises(ValueError, match="unknown experiment id 27; allowed: 1-26"):
        pythia.get([1, 27])


# ------------------------------------------------------------------------------------------ surgery on a model
TINY = dict(hidden_size=32, num_hidden_layers=24, num_attention_heads=4, intermediate_size=128, vocab_size=96,
            max_position_embeddings=64)


def tiny(which="410m", layers=None):
    from helpers.models import from_config

    torch.manual_seed(0)
    return from_config(pythia_config(which, **{**TINY, "num_hidden_layers": layers or TINY["num_hidden_layers"]}))


def test_surgery_changes_exactly_the_intended_modules():
    model = tiny()
    before = census(model)
    apply_surgery(model, pythia.EXPERIMENTS[23].ops, rank_factor=32 / 1024)   # partial(6) + MLP-LoRA 12-18
    after = census(model)
    changed = {k[:2] for k in (before - after) + (after - before)}
    expect = {(i, "attention.query_key_value") for i in range(6, 24)} | {(i, "attention.dense") for i in range(24)} \
        | {(i, p) for i in range(12, 19) for p in ("mlp.dense_h_to_4h", "mlp.dense_4h_to_h")}
    assert changed == expect
    assert after[(7, "attention.query_key_value", "LowRankLinear")] == 1
    assert after[(5, "attention.query_key_value", "Linear")] == 1
    assert after[(0, "attention.dense", "Identity")] == 1
    assert after[(11, "mlp.dense_h_to_4h", "Linear")] == 1 and after[(19, "mlp.dense_4h_to_h", "Linear")] == 1


def test_removed_attention_contributes_nothing():
    model = tiny(layers=2)
    apply_surgery(model, (Op("attention", "remove"),))
    assert all(isinstance(layer.attention, NoAttention) for layer in model.gpt_neox.layers)
    ids = torch.randint(0, 96, (1, 10))
    # without attention no token sees another: the prediction at position t ignores earlier tokens
    ids2 = ids.clone()
    ids2[0, 0] = (ids[0, 0] + 1) % 96
    with torch.no_grad():
        a, b = model(ids).logits, model(ids2).logits
    assert torch.allclose(a[0, 1:], b[0, 1:], atol=1e-6) and not torch.allclose(a[0, 0], b[0, 0])


def test_linearized_mlp_is_linear():
    model = tiny(layers=1)
    apply_surgery(model, (Op("mlp", "linearize"),))
    mlp = model.gpt_neox.layers[0].mlp
    x, y = torch.randn(3, 32), torch.randn(3, 32)
    with torch.no_grad():
        assert torch.allclose(mlp(x + y) - mlp(y), mlp(x) - mlp(torch.zeros(3, 32)), atol=1e-5)


def test_frozen_embeddings_are_not_trained():
    model = tiny(layers=1)
    apply_surgery(model, (Op("embed", "freeze"),))
    c = count(model)
    assert c["total"] - c["trainable"] == 96 * 32


def test_model_with_surgery_still_runs_forward_and_backward():
    for exp in pythia.EXPERIMENTS.values():
        model = tiny(exp.model, layers=32 if exp.model == "2.8b" else 24)
        apply_surgery(model, exp.ops, rank_factor=32 / pythia_config(exp.model).hidden_size)
        out = model(torch.randint(0, 96, (2, 8)), labels=torch.randint(0, 96, (2, 8)))
        out.loss.backward()
        assert torch.isfinite(out.loss)


# ------------------------------------------------------------------------------------------ parameter counts
def lin(i, o, bias=True):
    return i * o + (o if bias else 0)


def ll(i, o, r):
    return lin(i, r) + lin(r, o)


def expected_params(exp_id, h, L, inter, V, f):
    """Independent count for experiment `exp_id` on a GPT-NeoX of width h, depth L, MLP width inter, vocab V, with
    ranks scaled by f (max(1, round(r * f))). Written from the notes' descriptions, not from helpers.surgery.ops."""
    R = lambda r: max(1, round(r * f))  # noqa: E731
    ln = 2 * h
    qkv, dense = lin(h, 3 * h), lin(h, h)
    mlp = lin(h, inter) + lin(inter, h)
    emb = V * h
    head = V * h

    def model(qkv_of, dense_of, mlp_of, emb_params=emb):
        return emb_params + head + ln + sum(2 * ln + qkv_of(i) + dense_of(i) + mlp_of(i) for i in range(L))

    full_qkv, full_dense, full_mlp = (lambda i: qkv), (lambda i: dense), (lambda i: mlp)
    no_dense = lambda i: 0  # noqa: E731
    ll8 = lambda i: ll(h, 3 * h, R(8))  # noqa: E731
    part = lambda k: (lambda i: qkv if i < k else ll(h, 3 * h, R(8)))  # noqa: E731
    mlp_lora = lambda i: ll(h, inter, R(16)) + ll(inter, h, R(16))  # noqa: E731
    table = {
        1: lambda: model(full_qkv, full_dense, full_mlp),
        2: lambda: model(ll8, full_dense, full_mlp),
        3: lambda: model(ll8, full_dense, full_mlp),
        4: lambda: model(lambda i: ll(h, 3 * h, R(32)), full_dense, full_mlp),
        5: lambda: model(lambda i: ll(h, 3 * h, R(256)), full_dense, full_mlp),
        6: lambda: model(lambda i: 0, no_dense, full_mlp),
        7: lambda: model(ll8, lambda i: ll(h, h, R(8)), full_mlp),
        8: lambda: model(ll8, no_dense, full_mlp),
        9: lambda: model(ll8, no_dense, full_mlp),
        10: lambda: model(ll8, no_dense, lambda i: ll(h, h, R(8))),
        11: lambda: model(ll8, no_dense, lambda i: ll(h, h, R(768))),
        12: lambda: model(part(1), no_dense, full_mlp),
        13: lambda: model(part(6), no_dense, full_mlp),
        14: lambda: model(part(3), no_dense, full_mlp),
        15: lambda: model(part(2), no_dense, full_mlp),
        16: lambda: model(part(3), no_dense, lambda i: mlp if i < 6 else ll(h, h, R(8))),
        17: lambda: model(part(3), no_dense, lambda i: mlp if i < 12 else ll(h, h, R(8))),
        18: lambda: model(part(3), no_dense, lambda i: mlp if i < 12 else ll(h, h, R(256))),
        19: lambda: model(full_qkv, full_dense, full_mlp),
        20: lambda: model(part(3), no_dense, full_mlp),
        21: lambda: model(part(6), no_dense, full_mlp),
        22: lambda: model(part(6), no_dense, lambda i: mlp_lora(i) if 20 <= i <= 23 else mlp),
        23: lambda: model(part(6), no_dense, lambda i: mlp_lora(i) if 12 <= i <= 18 else mlp),
        24: lambda: model(part(6), no_dense, lambda i: mlp_lora(i) if 12 <= i <= 18 else mlp),
        25: lambda: model(full_qkv, full_dense, full_mlp) - emb,        # trainable
        26: lambda: model(full_qkv, full_dense, full_mlp, emb_params=V * R(512) + R(512) * h),
    }
    return table[exp_id]()


@pytest.mark.parametrize("exp_id", sorted(pythia.EXPERIMENTS))
def test_param_count_on_a_tiny_config_matches_an_independent_formula(exp_id):
    exp = pythia.EXPERIMENTS[exp_id]
    L = 32 if exp.model == "2.8b" else 24
    h, inter, V = 64, 256, 96
    f = h / pythia_config(exp.model).hidden_size
    from helpers.models import from_config

    model = from_config(pythia_config(exp.model, hidden_size=h, num_hidden_layers=L, num_attention_heads=4,
                                      intermediate_size=inter, vocab_size=V), device="meta")
    apply_surgery(model, exp.ops, rank_factor=f)
    assert count(model)[exp.counted] == expected_params(exp_id, h, L, inter, V, f)


def test_full_scale_counts_match_the_notes_24_exactly_and_2_explained():
    rows = pythia.param_table()
    assert len(rows) == 26
    status = {r["id"]: r["status"] for r in rows}
    assert [i for i, s in status.items() if s != "match"] == [18, 26]
    ours = {r["id"]: r["ours"] for r in rows}
    assert ours[18] == 220_353_704 and ours[26] == 380_102_656 and ours[1] == 405_334_016
    assert all(r["ours"] == r["notes"] for r in rows if r["status"] == "match")
    # and the formula above agrees at full scale too
    assert expected_params(24, 2560, 32, 10240, 50304, 1.0) == 1_692_226_992
    assert expected_params(26, 1024, 24, 4096, 50304, 1.0) == 380_102_656
