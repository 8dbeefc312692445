"""Looped transformer: each seed option's effect, tasks, curricula, baselines and bad input."""
import numpy as np
import pytest
import torch

from helpers import icl
from helpers.looped import Block, LoopedConfig, LoopedTransformer, keep_mask
from helpers.icl_train import ICLTrainConfig, fixed_test_set, train_model
from helpers.looped_study import LoopedStudyConfig, seed_rows


def small(**kw):
    base = dict(n_dims=4, n_positions=8, width=16, n_head=2, n_layer=1, loops=3, window=2)
    return LoopedConfig(**{**base, **kw})


def prompt(b=3, n=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = icl.sample_xs(b, n, d, d, g)
    return xs, icl.sample_task("linear_regression", xs, d, g)


def test_one_loop_equals_one_block_application():
    torch.manual_seed(0)
    m = LoopedTransformer(small(loops=1, window=1))
    xs, ys = prompt()
    e = m.read_in(m.interleave(xs, ys))
    # z_0 = 0, so the single loop is the backbone on e alone
    expect = m.read_out(m.ln_f(m.blocks[0](e + m.wpe.weight[:10])))[:, ::2, 0]
    assert torch.allclose(m(xs, ys)[0], expect, atol=1e-6)


def test_interleaving_puts_y_in_the_first_coordinate():
    xs, ys = prompt(1, 2)
    p = LoopedTransformer.interleave(xs, ys)
    assert torch.equal(p[0, 0], xs[0, 0]) and p[0, 1, 0] == ys[0, 0] and torch.all(p[0, 1, 1:] == 0)


def test_extra_dim_format_keeps_x_and_y_in_separate_coordinates():
    xs, ys = prompt(1, 2)
    p = LoopedTransformer.interleave(xs, ys, "extra_dim")                   # (1, 4, d + 1)
    assert p.shape == (1, 4, 5)
    assert torch.equal(p[0, 0, :4], xs[0, 0]) and p[0, 0, 4] == 0
    assert torch.all(p[0, 1, :4] == 0) and p[0, 1, 4] == ys[0, 0]
    m = LoopedTransformer(small(token_format="extra_dim"))
    assert m.read_in.in_features == 5 and m(*prompt())[0].shape == (3, 5)


def test_loss_uses_the_last_window_loops_only_with_gradients():
    torch.manual_seed(0)
    m = LoopedTransformer(small(loops=5, window=2))
    xs, ys = prompt()
    out = m(xs, ys)
    assert len(out) == 2 and all(o.requires_grad for o in out)
    assert len(m(xs, ys, loops=9, window=1)) == 1     # inference with any number of loops
    # the window's predictions are the last 2 of the 5 loops' (same forward values as predicting at every loop)
    every = m(xs, ys, window=5)
    assert torch.allclose(out[0], every[3]) and torch.allclose(out[1], every[4])
    # and the gradient is truncated: loops before the window get none, so the last loop's gradient differs from
    # the one that flows back through all five loops
    g_window = torch.autograd.grad(out[-1].sum(), m.read_in.weight)[0]
    g_all = torch.autograd.grad(every[-1].sum(), m.read_in.weight)[0]
    assert not torch.allclose(g_window, g_all)
    last = m(xs, ys, window=1)[0]                     # window 1: only the last loop's own path
    g_last = torch.autograd.grad(last.sum(), m.read_in.weight)[0]
    assert not torch.allclose(g_last, g_window) and torch.allclose(last, out[1])


def test_save_n_tokens_zeroes_the_masked_states_before_the_block():
    seen = []
    torch.manual_seed(0)
    m = LoopedTransformer(small(loops=3, window=3, save_n_tokens=4))
    m.blocks[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    xs, ys = prompt(n=5)                                               # 10 tokens
    e = m.read_in(m.interleave(xs, ys)) + m.wpe.weight[:10]
    m(xs, ys)
    # loops 2 and 3: block input = masked z + e + positions; tokens 0-5 of z are zeroed, so the input there is e
    for x in seen[1:]:
        assert torch.allclose(x[:, :6], e[:, :6], atol=1e-6)
        assert not torch.allclose(x[:, 6:], e[:, 6:], atol=1e-3)


@pytest.mark.parametrize("s, kept", [(0, None), (3, [0] * 7 + [1] * 3), (0.5, [0] * 5 + [1] * 5),
                                     (-4, [0] * 4 + [1] * 6)])
def test_keep_mask_forms(s, kept):
    m = keep_mask(10, s)
    assert (m is None and kept is None) or m.tolist() == kept


def test_a_fraction_that_rounds_to_zero_raises():
    with pytest.raises(ValueError, match=r"keeps round\(0.01 \* 10\) = 0 of 10 tokens"):
        keep_mask(10, 0.01)


def test_feed_block_cycles_the_blocks():
    torch.manual_seed(0)
    m = LoopedTransformer(small(n_layer=2, feed_block=True, loops=4, window=4))
    calls = []
    for i, blk in enumerate(m.blocks):
        blk.register_forward_hook(lambda mod, a, o, i=i: calls.append(i))
    m(*prompt())
    assert calls == [0, 1, 0, 1]


def test_skip_connection_injects_the_previous_state():
    torch.manual_seed(0)
    base = LoopedTransformer(small(loops=3, window=1))
    skip = LoopedTransformer(small(loops=3, window=1, skip_connection=True))
    skip.load_state_dict(base.state_dict())
    xs, ys = prompt()
    # loops 1 and 2 see z_{-1} = 0 and z_0 = 0, so the first two states agree; loop 3 adds z_1 and differs
    assert torch.allclose(base(xs, ys, loops=2)[0], skip(xs, ys, loops=2)[0], atol=1e-6)
    assert not torch.allclose(base(xs, ys)[0], skip(xs, ys)[0], atol=1e-4)


def test_ssm_block_is_causal_and_sized_by_the_width():
    torch.manual_seed(0)
    blk = Block(32, 2, ssm=True)
    assert blk.mix.in_proj.out_features == 4 * 32 and blk.mix.n == 4
    x = torch.randn(2, 7, 32)
    y1 = blk(x)
    x2 = x.clone()
    x2[:, 5:] += 1.0
    y2 = blk(x2)
    assert torch.allclose(y1[:, :5], y2[:, :5], atol=1e-5) and not torch.allclose(y1[:, 5:], y2[:, 5:])


@pytest.mark.parametrize("kw, match", [
    (dict(window=5, loops=3), "loop window T=5 is larger than the number of loops b=3"),
    (dict(save_n_tokens="half"), "save_n_tokens must be a number"),
    (dict(save_n_tokens=2.5), "integer count"),
    (dict(save_n_tokens=-0.5), "use an integer < 0"),
    (dict(width=30, n_head=4), "not divisible"),
    (dict(feed_block=True, looped=False), "needs looped=True"),
    (dict(token_format="xy"), "unknown token_format 'xy'; allowed: paper, extra_dim"),
])
def test_bad_model_config(kw, match):
    with pytest.raises(ValueError, match=match):
        small(**kw)


def test_bad_inputs_at_run_time():
    m = LoopedTransformer(small())
    xs, ys = prompt(n=9)
    with pytest.raises(ValueError, match="n_points 9 is larger than the model's n_positions 8"):
        m(xs, ys)
    with pytest.raises(ValueError, match="inference loops must be >= 1, got 0"):
        m(*prompt(), loops=0)
    with pytest.raises(ValueError, match="unknown task 'sorting'"):
        ICLTrainConfig(task="sorting")


def test_placeholder_loop_schedule_warns():
    with pytest.warns(UserWarning, match="placeholder"):
        ICLTrainConfig(loops=icl.Schedule(20, 350, 2, 500))


def test_curriculum_schedule_semantics():
    s = icl.Schedule(5, 20, 1, 5000)
    assert [s(t) for t in (0, 4999, 5000, 74_999, 75_000, 10**6)] == [5, 5, 6, 19, 20, 20]
    with pytest.raises(ValueError, match="moves away"):
        icl.Schedule(5, 20, -1, 10)


def test_test_set_is_at_the_final_curriculum_setting():
    cfg = ICLTrainConfig(dims=icl.Schedule(2, 4, 1, 10), points=icl.Schedule(3, 7, 2, 10), test_prompts=5)
    xs, ys, active = fixed_test_set(cfg, n_dims=4)
    assert xs.shape == (5, 7, 4) and active == 4
    xs0, _, a0 = fixed_test_set(cfg, n_dims=4, at="start")
    assert xs0.shape == (5, 3, 4) and a0 == 2 and torch.all(xs0[..., 2:] == 0)


@pytest.mark.parametrize("task", icl.TASKS)
def test_tasks_sample_and_have_a_baseline_that_beats_zero(task):
    g = torch.Generator().manual_seed(0)
    xs = icl.sample_xs(64, 12, 3, 3, g)
    ys = icl.sample_task(task, xs, 3, g)
    assert ys.shape == (64, 12) and torch.isfinite(ys).all()
    best = min(float(icl.normalized_sq_error(icl.BASELINES[b](xs[:16], ys[:16]), ys[:16], 3)[:, 8:].mean())
               for b in icl.TASK_BASELINES[task])
    zero = float(icl.normalized_sq_error(torch.zeros(16, 12), ys[:16], 3)[:, 8:].mean())
    assert best < zero


def test_least_squares_is_exact_once_k_reaches_d():
    xs, ys = prompt(b=4, n=8, d=4)
    err = icl.normalized_sq_error(icl.least_squares(xs, ys), ys, 4)
    assert err[:, 5:].max() < 1e-8 and err[:, 1:4].mean() > 1e-3


def test_study_config_checks_positions():
    with pytest.raises(ValueError, match="the model holds 8 positions"):
        LoopedStudyConfig(model=small(), train=ICLTrainConfig(points=icl.Schedule(5, 11, 2, 10)))


def test_a_tiny_looped_model_learns_in_context():
    """d = 1: after a few hundred steps the prediction at k >= 1 uses the context (error far below predicting 0)."""
    from helpers.icl_train import errors_vs_k

    cfg = LoopedConfig(n_dims=1, n_positions=4, width=32, n_head=2, loops=2, window=2)
    tcfg = ICLTrainConfig(steps=600, batch_size=128, lr=3e-3, warmup=20, dims=icl.Schedule(1, 1, 0, 1),
                          points=icl.Schedule(4, 4, 0, 1), loops=icl.Schedule(2, 2, 0, 1), log_every=100,
                          test_prompts=512)
    xs, ys, active = fixed_test_set(tcfg, 1)
    zero = icl.normalized_sq_error(torch.zeros_like(ys), ys, active).mean(0)
    res = train_model(cfg, tcfg, seed=0)
    err = errors_vs_k(res["model"], xs, ys, active).mean(0)
    assert (err[1:] < 0.4 * zero[1:].numpy()).all(), (err, zero)


def test_bootstrap_band_over_seeds_holds_the_seed_spread():
    """(S, P, n): seeds that disagree widen the band beyond the prompt-only band of their average."""
    rng = np.random.default_rng(0)
    e = rng.exponential(size=(400, 3))
    mean2, lo2, hi2 = icl.bootstrap_band(e)
    assert np.allclose(mean2, e.mean(0)) and (lo2 < mean2).all() and (mean2 < hi2).all()
    spread = np.stack([e, 2 * e, 3 * e])                                    # three seeds, 1x / 2x / 3x the error
    mean3, lo3, hi3 = icl.bootstrap_band(spread)
    _, lo_avg, hi_avg = icl.bootstrap_band(spread.mean(0))
    assert np.allclose(mean3, 2 * e.mean(0))
    assert ((hi3 - lo3) > 2 * (hi_avg - lo_avg)).all()


def test_seed_rows_mean_and_spread_over_seeds():
    e = np.zeros((2, 4, 5))
    e[0, :, 2], e[1, :, 2] = 1.0, 3.0                                        # k = d = 2: seeds at 1 and 3
    e[:, :, 4] = 0.5
    looped, zero = seed_rows({"looped": e, "zero": np.ones((4, 5))}, active=2, extra={"looped": {"params": 7}})
    assert looped["k=d"] == 2.0 and np.isclose(looped["k=d sd"], np.sqrt(2))
    assert looped["k=2d"] == 0.5 and looped["k=2d sd"] == 0
    assert looped["seeds"] == 2 and looped["params"] == 7 and looped["model"] == "looped"
    assert zero["k=d"] == 1 and zero["k=d sd"] is None                       # one seed: no spread


def test_regime_search_scores_each_variant_at_its_own_dimension_and_skips_recorded_points(results_root):
    from helpers.looped_study import PROFILES, at_dims, regime_search
    from helpers.profiles import resolve

    run = resolve("05_looped_transformer", PROFILES, "tiny", quiet=True)
    points = {"d=2": {}, "d=3 extra_dim": {**at_dims(run.cfg, 3), "model.token_format": "extra_dim"}}
    out = regime_search(run, points)
    assert out["d=2"]["metrics"]["d"] == 2 and out["d=3 extra_dim"]["metrics"]["d"] == 3
    for rec in out.values():
        m = rec["metrics"]
        assert m["steps"] == run.cfg.train.steps and m["least_squares.k=2d"] < 1e-6
        assert m["ratio_to_averaging.k=2d"] == m["looped.k=2d"] / m["averaging.k=2d"]
    again = regime_search(run, points)                      # recorded: loaded, not retrained
    assert {n: r["created"] for n, r in again.items()} == {n: r["created"] for n, r in out.items()}
    assert {n: r["metrics"] for n, r in again.items()} == {n: r["metrics"] for n, r in out.items()}
    with pytest.raises(Exception, match="unknown setting"):
        regime_search(run, {"bad": {"model.depth": 3}})


def test_rows_from_records_mean_and_sd_over_seeds_and_bands_from_curves():
    from helpers.looped_study import bands_from_curves, rows_from_records

    recs = [{"variant": "looped-lr", "seed": s, "metrics": {"err.k=d": e, "err.k=2d": e / 2, "steps": 10,
                                                             "steps_per_s": 5.0}, "params": {"total": 100}}
            for s, e in enumerate([1.0, 3.0, 5.0])]
    (row,) = rows_from_records(recs)
    assert row["seeds"] == 3 and row["k=d"] == 3.0 and row["k=d sd"] == 2.0 and row["k=2d"] == 1.5
    curves = {"looped": {"1": 0.5, "0": 1.0, "10": 0.1}, "looped.lo": {"0": 0.9, "1": 0.4, "10": 0.05},
              "looped.hi": {"0": 1.1, "1": 0.6, "10": 0.2}}
    assert bands_from_curves(curves) == {"looped": {"mean": [1.0, 0.5, 0.1], "lo": [0.9, 0.4, 0.05],
                                                    "hi": [1.1, 0.6, 0.2]}}
