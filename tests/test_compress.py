"""Seed 001's building blocks: calibration statistics, factorizations, plans and budgets."""
import pytest
import torch
from torch import nn

from helpers.compression.calibrate import InputStats, calibrate, find_linears
from helpers.compression.factorize import (
    Bases,
    Target,
    compress_model,
    factorize,
    output_mse,
    param_budget,
    resolve_plan,
)
from helpers.models import mistral_config


def correlated_inputs(n=4000, d=48, seed=0):
    """Inputs with a strongly non-isotropic covariance and a non-zero mean (like real activations)."""
    basis = torch.randn(d, d, generator=torch.Generator().manual_seed(1234))   # one distribution for all seeds
    scales = torch.logspace(1, -2, d)
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * scales @ basis + 3.0


def stats_of(x):
    s = InputStats(x.shape[1])
    s.update(x)
    return s


def test_streaming_stats_match_the_batch_formulas():
    x = correlated_inputs(500, 8).double()
    s = InputStats(8)
    for chunk in x.split(77):
        s.update(chunk)
    assert torch.allclose(s.mean, x.mean(0))
    assert torch.allclose(s.covariance(), torch.cov(x.T, correction=0), atol=1e-8)


def test_whiten_is_optimal_on_calibration_inputs_and_beats_plain_svd():
    torch.manual_seed(0)
    lin = nn.Linear(48, 32)
    x, held = correlated_inputs(), correlated_inputs(seed=1)
    st = stats_of(x)
    errs = {m: output_mse(factorize(lin, 6, m, st).module, lin, x) for m in ("svd", "scaled", "whiten")}
    assert errs["whiten"] < errs["scaled"] and errs["whiten"] < 0.5 * errs["svd"], errs
    # the closed form's error equals the tail of the singular values of the centred X W (REFERENCE.md section 2)
    xc = (x - x.mean(0)).double()
    s = torch.linalg.svdvals(xc @ lin.weight.double().T)
    assert errs["whiten"] == pytest.approx((s[6:] ** 2).sum().item() / (x.shape[0] * 32), rel=1e-3)
    assert output_mse(factorize(lin, 6, "whiten", st).module, lin, held) < 0.5 * output_mse(
        factorize(lin, 6, "svd").module, lin, held)


def test_full_rank_whiten_reproduces_the_layer():
    torch.manual_seed(0)
    lin = nn.Linear(16, 24)
    x = correlated_inputs(300, 16)
    f = factorize(lin, 16, "whiten", stats_of(x))
    assert torch.allclose(f.module(x), lin(x), atol=1e-4)
    assert f.warnings and "does not compress" in f.warnings[0]


def test_singular_covariance_is_handled_and_the_jitter_reported():
    torch.manual_seed(0)
    lin = nn.Linear(32, 32, bias=False)
    x = torch.randn(500, 4) @ torch.randn(4, 32)          # rank-4 inputs: singular covariance
    f = factorize(lin, 4, "whiten", stats_of(x))
    assert f.jitter > 0 and torch.isfinite(f.module.up.weight).all()
    # rank 4 suffices on rank-4 inputs
    assert output_mse(f.module, lin, x) < 1e-6 * float((lin(x).detach() ** 2).mean())


def test_fewer_tokens_than_the_rank_warns_of_the_exact_fit_trap():
    lin = nn.Linear(64, 64)
    f = factorize(lin, 12, "whiten", stats_of(torch.randn(8, 64)))
    assert any("exact-fit trap" in w for w in f.warnings)


def test_bad_inputs():
    lin = nn.Linear(8, 8)
    with pytest.raises(ValueError, match="unknown factorization method 'qr'"):
        factorize(lin, 2, "qr")
    with pytest.raises(ValueError, match="needs calibration statistics"):
        factorize(lin, 2, "whiten")
    with pytest.raises(ValueError, match=r"rank 9 is not allowed"):
        factorize(lin, 9, "svd")
    with pytest.raises(ValueError, match="unknown module"):
        Target(("attention", "ffn"), rank=4)
    with pytest.raises(ValueError, match="exactly one of rank or ratio"):
        Target(("mlp",))


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=50))


def test_calibrate_with_hooks_and_compress_a_model():
    model = tiny_llama()
    mods = find_linears(model, r"model\.layers\.\d+\.mlp\.\w+")
    batches = [{"input_ids": torch.randint(0, 50, (2, 16)), "attention_mask": torch.ones(2, 16, dtype=torch.long)}
               for _ in range(3)]
    stats = calibrate(model, batches, mods)
    assert all(s.n == 96 for s in stats.values()) and len(stats) == 9
    assert not any(m._forward_pre_hooks for m in mods.values())        # hooks removed
    out = compress_model(model, [Target(("mlp",), "1-2", rank=4)], "whiten", stats)
    assert set(out["ranks"]) == {f"model.layers.{i}.mlp.{p}" for i in (1, 2) for p in ("gate_proj", "up_proj",
                                                                                           "down_proj")}
    assert out["params_after"] == sum(p.numel() for p in model.parameters()) < out["params_before"]
    model(torch.randint(0, 50, (1, 8)))


def test_plans_naming_missing_layers_or_not_compressing_raise():
    model = tiny_llama()
    with pytest.raises(ValueError, match="layer index 3 .* out of range"):
        resolve_plan(model, [Target(("q",), "0-3", rank=2)])
    with pytest.raises(ValueError, match="does not compress"):
        resolve_plan(model, [Target(("gate",), rank=30)])
    with pytest.raises(ValueError, match="named twice"):
        resolve_plan(model, [Target(("q",), rank=2), Target(("q",), "0", rank=3)])
    ranks = resolve_plan(model, [Target(("up",), ratio=0.5)])
    assert set(ranks.values()) == {int(0.5 * 32 * 64 / 96)}


def test_mistral_budgets_of_the_notes():
    c = mistral_config()
    assert param_budget(c, [])["params_after"] == 7_241_748_480
    assert param_budget(c, [Target(("attention", "mlp", "lm_head"), rank=16)])["params_after"] == 173_867_040
    attn = Target(("attention",), "6-31", rank=16)
    assert param_budget(c, [attn])["params_after"] == 6_162_305_024
    assert param_budget(c, [attn, Target(("mlp",), "12-18", rank=16)])["params_after"] == 4_935_372_800
    assert param_budget(c, [Target(("mlp",), "17", rank=16)])["params_after"] == 7_066_472_448


@pytest.mark.parametrize("method", ["svd", "whiten", "scaled"])
def test_bases_truncation_equals_a_direct_factorization(method):
    from helpers.compression.factorize import Bases

    torch.manual_seed(0)
    lin = nn.Linear(48, 32)
    x = correlated_inputs()
    st = stats_of(x)
    made = Bases({"m": lin}, method, {"m": st})
    for r in (3, 10):
        direct = factorize(lin, r, method, st).module
        assert torch.allclose(made.module("m", r)(x), direct(x), rtol=1e-3, atol=1e-3 * lin(x).abs().mean().item())


def test_calibration_shares_statistics_of_modules_reading_the_same_input():
    model = tiny_llama()
    mods = find_linears(model, r"model\.layers\.\d+\.(self_attn|mlp)\.\w+")
    stats = calibrate(model, [{"input_ids": torch.randint(0, 50, (2, 8))}], mods)
    for i in range(3):
        q, k, v, o = (stats[f"model.layers.{i}.self_attn.{p}_proj"] for p in "qkvo")
        assert q is k is v and q is not o
        assert stats[f"model.layers.{i}.mlp.gate_proj"] is stats[f"model.layers.{i}.mlp.up_proj"]
    assert stats["model.layers.0.self_attn.q_proj"] is not stats["model.layers.1.self_attn.q_proj"]
    # the shared object holds what a hook on k alone would have seen
    alone = calibrate(model, [{"input_ids": torch.randint(0, 50, (2, 8))}],
                      {"k": mods["model.layers.1.self_attn.k_proj"]})
    assert alone["k"].n == stats["model.layers.1.self_attn.k_proj"].n


def test_swapped_restores_the_original_modules():
    from helpers.compression.factorize import swapped

    model = tiny_llama()
    before = model.model.layers[0].mlp.up_proj
    with swapped(model, {"model.layers.0.mlp.up_proj": nn.Identity()}):
        assert isinstance(model.model.layers[0].mlp.up_proj, nn.Identity)
    assert model.model.layers[0].mlp.up_proj is before


def test_non_finite_activations_in_calibration_name_the_module_and_the_batch():
    model = tiny_llama()
    mods = find_linears(model, r"model\.layers\.\d+\.mlp\.\w+")
    with torch.no_grad():
        model.model.layers[1].post_attention_layernorm.weight[0] = float("nan")   # poisons layer 1's MLP input
    batches = [{"input_ids": torch.randint(0, 50, (2, 8))} for _ in range(2)]
    with pytest.raises(ValueError, match=r"calibration batch 0: \d+ non-finite value\(s\) .* model\.layers\.1\.mlp"):
        calibrate(model, batches, mods)
    assert not any(m._forward_pre_hooks for m in mods.values())        # hooks removed even so


def test_statistics_fed_directly_refuse_non_finite_inputs_and_keep_what_they_had():
    """The clear error is at the source (InputStats.update), not only on calibrate()'s path: before, a NaN fed
    here ended in linalg.eigh failing to converge inside factorize."""
    st = InputStats(4, name="model.layers.0.self_attn.v_proj")
    st.update(torch.ones(3, 4))
    x = torch.ones(2, 4)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"1 non-finite value\(s\) .* model\.layers\.0\.self_attn\.v_proj"):
        st.update(x)
    assert st.n == 3 and torch.equal(st.total, torch.full((4,), 3.0, dtype=torch.float64))
    x[1, 2] = float("inf")
    masked = torch.tensor([1, 0])                      # a padded position is skipped, so it may hold anything
    st.update(x, masked)
    assert st.n == 4


@pytest.mark.parametrize("method", ["whiten", "scaled"])
def test_statistics_on_the_cpu_and_weights_on_another_device(method):
    """On CUDA the calibration statistics stay on the CPU (float64) while the weights live on the GPU; the
    factorization must compute on the weights' device. The meta device stands in for a second device here: every
    factor must come out on it (a CPU tensor anywhere in the arithmetic raises or leaks a CPU factor)."""
    torch.manual_seed(0)
    with torch.device("meta"):
        lin = nn.Linear(16, 12)
    stats = InputStats(16)
    stats.update(torch.randn(64, 16))
    made = Bases({"m": lin}, method, {"m": stats})
    low = made.module("m", 4)
    assert {p.device.type for p in low.parameters()} == {"meta"}
    assert low.down.weight.shape == (4, 16) and low.up.weight.shape == (12, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU machine)")
@pytest.mark.parametrize("method", ["svd", "whiten", "scaled"])
def test_calibrate_and_compress_on_cuda_match_the_cpu(method):
    """The real second device: calibration on CUDA (statistics gathered to the CPU), factorization on CUDA, and the
    compressed model's outputs equal to the same pipeline run on the CPU."""
    batches = [{"input_ids": torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(i))}
               for i in range(3)]
    outs = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = tiny_llama().to(device)
        mods = find_linears(model, r"model\.layers\.\d+\.(mlp|self_attn)\.\w+")
        # on CUDA: statistics on the GPU, one pass per layer (a 1-byte budget), moved to the CPU after each pass
        stats = calibrate(model, batches, mods, device, stats_budget=1 if device == "cuda" else None) \
            if method != "svd" else None
        assert stats is None or {st.outer.device.type for st in stats.values()} == {"cpu"}
        compress_model(model, [Target(("mlp", "attention"), "all", rank=4)], method, stats)
        assert {p.device.type for p in model.parameters()} == {torch.device(device).type}
        with torch.no_grad():
            outs.append(model(batches[0]["input_ids"].to(device)).logits.cpu())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-3, atol=1e-3)


def test_calibration_in_passes_of_layers_equals_one_pass():
    """On a GPU the statistics of a 7B model do not fit at once: calibration then runs in passes of whole layers.
    The passes must give the same statistics, shared between modules reading one input as in one pass."""
    from helpers.compression.calibrate import InputStats, _passes

    model = tiny_llama()
    mods = find_linears(model, r"model\.layers\.\d+\.(mlp|self_attn)\.\w+")
    batches = [{"input_ids": torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(i))}
               for i in range(3)]
    one = calibrate(model, batches, mods)
    per_layer = sum(InputStats.nbytes(mods[n].in_features) for n in mods if ".layers.0." in n)
    groups = _passes(mods, per_layer)
    assert len(groups) == 3 and all(len({n.split(".")[2] for n in g}) == 1 for g in groups)   # one layer each
    several = calibrate(model, batches, mods, stats_budget=per_layer)
    for name in mods:
        torch.testing.assert_close(several[name].outer, one[name].outer)
        assert several[name].n == one[name].n
    q, k = (f"model.layers.1.self_attn.{p}_proj" for p in "qk")
    assert several[q] is several[k] and one[q] is one[k]


def test_uncentred_whiten_is_svd_llms_optimum_and_adds_no_bias():
    """center=False minimises ||X W - X W*|| over the raw calibration inputs (SVD-LLM's objective): its error equals
    the tail of the singular values of the uncentred X W, no bias appears on a bias-free Linear, and the centred
    variant gains only an up bias (no dead down bias), counted in its parameters."""
    torch.manual_seed(0)
    lin = nn.Linear(48, 32, bias=False)
    x = correlated_inputs()
    st = stats_of(x)
    raw = factorize(lin, 6, "whiten", st, center=False).module
    s = torch.linalg.svdvals(x.double() @ lin.weight.double().T)
    assert output_mse(raw, lin, x) == pytest.approx((s[6:] ** 2).sum().item() / (x.shape[0] * 32), rel=1e-3)
    assert raw.up.bias is None and raw.down.bias is None
    centred = factorize(lin, 6, "whiten", st, center=True).module
    assert centred.down.bias is None and centred.up.bias is not None
    # the default (DEFAULT_CENTERING, "except-v", as Bases'): a lone Linear is no v_proj, so it is centred
    default = factorize(lin, 6, "whiten", st).module
    assert torch.equal(default(x), centred(x))
    assert sum(p.numel() for p in centred.parameters()) == 6 * (48 + 32) + 32
    # the centred factors minimise the error once the mean is free (its residual variance is below the raw
    # factors' on centred inputs)
    xc = x - x.mean(0)
    err_c = ((centred(x) - lin(x)) - (centred(x) - lin(x)).mean(0)).pow(2).mean()
    err_r = ((raw(xc) - lin(xc)) ** 2).mean()
    assert err_c <= err_r * 1.0001


def test_centring_policies_choose_per_linear_and_bad_ones_are_named():
    import inspect

    from helpers.compression.config import CompressionConfig
    from helpers.compression.factorize import CENTERINGS, DEFAULT_CENTERING, centers

    # one default: the lone Linear's, the bases' and the notebook's (the policy its records used)
    assert DEFAULT_CENTERING in CENTERINGS and CompressionConfig().whitening == DEFAULT_CENTERING
    assert {inspect.signature(f).parameters["center"].default for f in (factorize, Bases)} == {DEFAULT_CENTERING}

    assert [centers("except-v", f"model.layers.0.self_attn.{p}_proj") for p in "qkvo"] == [True, True, False, True]
    assert centers("except-v", "model.layers.0.mlp.down_proj") and centers("all", "x.v_proj")
    assert not centers("none", "model.layers.0.mlp.up_proj") and centers(True, "v_proj") and not centers(False, "q")
    with pytest.raises(ValueError, match="unknown centring 'mean'; allowed: " + ", ".join(CENTERINGS)):
        centers("mean", "q")
    model = tiny_llama()
    mods = find_linears(model, r"model\.layers\.\d+\.(self_attn|mlp)\.\w+")
    stats = calibrate(model, [{"input_ids": torch.randint(0, 50, (4, 16))}], mods)
    with pytest.raises(ValueError, match="unknown centring 'mean'"):
        Bases(mods, "whiten", stats, center="mean")
    made = {pol: Bases(mods, "whiten", stats, center=pol) for pol in CENTERINGS}
    for path in mods:
        biased = {pol: made[pol].module(path, 4).up.bias is not None for pol in CENTERINGS}
        assert biased == {"none": False, "all": True, "except-v": not path.endswith("v_proj")}, path
        # except-v is "all" on every other Linear and "none" on v_proj, module for module
        same = made["none" if path.endswith("v_proj") else "all"].module(path, 4)
        x = torch.randn(5, mods[path].in_features)
        assert torch.allclose(made["except-v"].module(path, 4)(x), same(x), atol=1e-5)
