"""Looped transformer: each seed option's effect, tasks, curricula, baselines and bad input."""
import dataclasses

import numpy as np
import pytest
import torch

from helpers import parallel
from helpers.looped import tasks as icl
from helpers.looped.model import Block, LoopedConfig, LoopedTransformer, keep_mask
from helpers.looped.config import LoopedStudyConfig
from helpers.looped.training import ICLTrainConfig, fixed_test_set, train_model


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
    with pytest.raises(ValueError, match=r"moves away from end 5 \(start 9\)"):      # a start past its end
        icl.Schedule(9, 5, 1, 10)
    with pytest.raises(ValueError, match="never gets from 9 to 5"):
        icl.Schedule(9, 5, 0, 10)


def test_training_applies_the_first_increment_after_interval_steps(monkeypatch):
    """Steps count from 0 in the curriculum (Garg et al. update after each step): with interval 2 the first two
    optimizer steps see the start setting, the third the first increment."""
    from helpers.looped import training as icl_train

    seen = []
    real = icl.sample_xs
    monkeypatch.setattr(icl_train.icl, "sample_xs", lambda b, n, d, a, g: seen.append((n, a)) or real(b, n, d, a, g))
    tcfg = ICLTrainConfig(steps=5, batch_size=4, dims=icl.Schedule(2, 4, 1, 2), points=icl.Schedule(3, 7, 2, 2),
                          loops=icl.Schedule(2, 2, 0, 1), log_every=1)
    train_model(small(n_positions=7), tcfg, seed=0)
    assert seen == [(3, 2), (3, 2), (5, 3), (5, 3), (7, 4)]


def test_test_set_is_at_the_final_curriculum_setting():
    cfg = ICLTrainConfig(dims=icl.Schedule(2, 4, 1, 10), points=icl.Schedule(3, 7, 2, 10), test_prompts=5)
    xs, ys, active = fixed_test_set(cfg, n_dims=4)
    assert xs.shape == (5, 7, 4) and active == 4
    xs0, _, a0 = fixed_test_set(cfg, n_dims=4, at="start")
    assert xs0.shape == (5, 3, 4) and a0 == 2 and torch.all(xs0[..., 2:] == 0)


def _task_errors(task, d=8, n=12, P=96, names=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = icl.sample_xs(P, n, d, d, g)
    ys = icl.sample_task(task, xs, d, g)
    assert ys.shape == (P, n) and torch.isfinite(ys).all()
    errs = {b: icl.normalized_sq_error(icl.BASELINES[b](xs, ys), ys, d).mean(0).numpy()
            for b in (names or icl.TASK_BASELINES[task])}
    errs["zero"] = icl.normalized_sq_error(torch.zeros_like(ys), ys, d).mean(0).numpy()
    return errs


def test_noisy_regression_leaves_least_squares_at_the_noise_floor():
    """y = <w, x> + N(0, 0.1^2) (the looped paper's code): least squares from k > d + 1 pairs has expected error
    0.01 (1 + d / (k - d - 1)) / d, not 0 (noise missing) and not the zero predictor's ~1."""
    assert icl.NOISE == 0.1
    e = _task_errors("noisy_linear_regression", d=4, n=14, P=4000, names=("least_squares",))
    k = 13
    expected = icl.NOISE ** 2 * (1 + 4 / (k - 4 - 1)) / 4
    assert e["least_squares"][k] == pytest.approx(expected, rel=0.15)


def test_each_task_is_normalized_by_its_own_scale():
    """The papers' plots: squared error / d for dense regression, / the sparsity for sparse regression, / 1 for
    trees; predicting zero then scores ~1 on (sparse) linear regression."""
    assert icl.error_scale("linear_regression", 8) == 8 and icl.error_scale("decision_tree", 8) == 1
    assert icl.error_scale("sparse_linear_regression", 8) == 3 and icl.error_scale("sparse_linear_regression", 2) == 2
    g = torch.Generator().manual_seed(0)
    xs = icl.sample_xs(4000, 5, 8, 8, g)
    ys = icl.sample_task("sparse_linear_regression", xs, 8, g)
    zero = icl.normalized_sq_error(torch.zeros_like(ys), ys, icl.error_scale("sparse_linear_regression", 8))
    assert float(zero.mean()) == pytest.approx(1.0, rel=0.1)


def test_each_task_has_the_baseline_its_structure_favours():
    """Sparse w (3 of 8): Lasso beats min-norm least squares before k = d; a depth-4 tree of signs: the greedy
    tree beats least squares; a random ReLU net (d = 2): the fitted ReLU net beats predicting 0 at k = 5-7."""
    sparse = _task_errors("sparse_linear_regression", names=("least_squares", "lasso"), n=6, P=128)
    assert sparse["lasso"][3:].mean() < 0.85 * sparse["least_squares"][3:].mean()
    tree = _task_errors("decision_tree", names=("least_squares", "greedy_tree"), d=2, n=21, P=64)
    assert tree["greedy_tree"][16:].mean() < tree["least_squares"][16:].mean()
    relu = _task_errors("relu_2nn", names=("relu_net",), d=2, n=8, P=32)
    assert relu["relu_net"][5:].mean() < 0.5 * relu["zero"][5:].mean()


def test_least_squares_is_exact_once_k_reaches_d():
    xs, ys = prompt(b=4, n=8, d=4)
    err = icl.normalized_sq_error(icl.least_squares(xs, ys), ys, 4)
    assert err[:, 5:].max() < 1e-8 and err[:, 1:4].mean() > 1e-3


def test_study_config_checks_positions():
    with pytest.raises(ValueError, match="the model holds 8 positions"):
        LoopedStudyConfig(model=small(), train=ICLTrainConfig(points=icl.Schedule(5, 11, 2, 10)))


def test_a_tiny_looped_model_learns_in_context():
    """d = 1: after a few hundred steps the prediction at k >= 1 uses the context (error far below predicting 0)."""
    from helpers.looped.training import errors_vs_k

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


def test_regime_search_trains_both_arms_on_validation_prompts_and_skips_recorded_points(results_root):
    from helpers.families import resolve
    from helpers.looped.study import at_dims, regime_search

    run = resolve("05_looped_transformer", "tiny", quiet=True)
    points = {"d=2": {}, "d=3": at_dims(run.cfg, 3)}
    out = regime_search(run, points, seeds=(100, 101))
    assert set(out) == {(n, s) for n in points for s in (100, 101)}
    assert out["d=2", 100]["metrics"]["d"] == 2 and out["d=3", 100]["metrics"]["d"] == 3
    for rec in out.values():
        m = rec["metrics"]
        assert m["looped.steps"] == m["standard.steps"] == run.cfg.train.steps
        for arm in ("looped", "standard"):
            assert m[f"{arm}.ratio_to_averaging"] == pytest.approx(m[f"{arm}.k=2d"] / m["averaging.k=2d"])
    # the denominator is averaging on the VALIDATION prompts (val_seed), recomputed here with plain numpy
    xs, ys, d = fixed_test_set(run.cfg.train, run.cfg.model.n_dims, seed=run.cfg.val_seed)
    xs, ys, k = xs.numpy().astype(float), ys.numpy().astype(float), 2 * d
    w = (ys[:, :k, None] * xs[:, :k]).mean(1)                                    # (P, dims)
    by_hand = (((xs[:, k] * w).sum(-1) - ys[:, k]) ** 2 / d).mean()
    assert out["d=2", 100]["metrics"]["averaging.k=2d"] == pytest.approx(by_hand, rel=1e-5)
    assert out["d=2", 100]["metrics"]["looped.k=2d"] != out["d=2", 101]["metrics"]["looped.k=2d"]
    again = regime_search(run, points, seeds=(100, 101))                  # recorded: loaded, not retrained
    assert {n: r["created"] for n, r in again.items()} == {n: r["created"] for n, r in out.items()}
    with pytest.raises(Exception, match="unknown setting"):
        regime_search(run, {"bad": {"model.depth": 3}})


# ------------------------------------------------------------------------------------------------ analytic baselines
def _big_prompts(P=40_000, n=7, d=3, seed=5):
    g = torch.Generator().manual_seed(seed)
    xs = icl.sample_xs(P, n, d, d, g)
    return xs, icl.sample_task("linear_regression", xs, d, g)


def _mean_and_se(err):
    return err.mean(0).numpy(), (err.std(0) / err.shape[0] ** 0.5).numpy()


def test_averaging_error_is_d_plus_1_over_k():
    """w_hat = mean y_i x_i: E error / d = (d + 1) / k for x, w ~ N(0, I) (a wrong 1/k, a sum instead of a
    mean, or an off-by-one in the pairs used would each miss it by far more than 4 s.e.)."""
    xs, ys = _big_prompts()
    mean, se = _mean_and_se(icl.normalized_sq_error(icl.averaging(xs, ys), ys, 3))
    for k in range(1, 7):
        expected = icl.expected_averaging_error(3, k)
        assert abs(mean[k] - expected) < 4 * se[k] + 1e-3, (k, mean[k], expected, se[k])
    with pytest.raises(ValueError, match="k >= 1"):
        icl.expected_averaging_error(3, 0)


def test_least_squares_below_d_is_the_unseen_share_of_w():
    """Minimum-norm least squares from k < d pairs recovers w's projection on their span: error / d = (d - k) / d."""
    xs, ys = _big_prompts()
    mean, se = _mean_and_se(icl.normalized_sq_error(icl.least_squares(xs, ys), ys, 3))
    for k in (1, 2):
        assert abs(mean[k] - (3 - k) / 3) < 4 * se[k] + 1e-3, (k, mean[k])
    assert abs(mean[0] - 1.0) < 4 * se[0]                 # nothing seen: predicts 0


def test_three_nn_with_at_most_three_pairs_averages_all_of_them():
    """With k <= 3 pairs every pair is a neighbour: the prediction is the mean of k independent y's, so
    E (y - mean)^2 / d = 1 + 1/k (k = 1: 2)."""
    xs, ys = _big_prompts()
    mean, se = _mean_and_se(icl.normalized_sq_error(icl.nearest_neighbours(xs, ys), ys, 3))
    for k in (1, 2, 3):
        assert abs(mean[k] - (1 + 1 / k)) < 4 * se[k] + 1e-3, (k, mean[k])
    # past 3 pairs it keeps the 3 nearest: better than averaging all the y's (which stays at 1 + 1/k)
    assert mean[6] < 1 + 1 / 6


def test_bootstrap_band_width_matches_the_known_standard_error():
    """Normal errors with sd 2 over P prompts: the 90% band is mean +- 1.645 * 2 / sqrt(P) (within 10%)."""
    rng = np.random.default_rng(1)
    P = 2000
    e = rng.normal(5.0, 2.0, size=(P, 4))
    mean, lo, hi = icl.bootstrap_band(e, n_boot=2000)
    half = 1.645 * e.std(0, ddof=1) / np.sqrt(P)
    assert np.allclose((hi - lo) / 2, half, rtol=0.1), ((hi - lo) / 2, half)
    assert np.allclose(mean, e.mean(0))


def test_ratio_interval_covers_the_true_ratio_and_is_exact_for_a_constant_ratio():
    from helpers.looped.verdicts import ratio_interval

    rng = np.random.default_rng(2)
    den = rng.exponential(size=500)
    exact = ratio_interval(np.stack([0.25 * den, 0.25 * den]), den)
    assert exact["ratio"] == pytest.approx(0.25) and exact["lo"] == pytest.approx(0.25)
    assert exact["hi"] == pytest.approx(0.25)
    # independent noisy seeds around 0.25 x the denominator: the interval holds 0.25 and widens with seed spread
    num = np.stack([0.25 * den * rng.lognormal(0, 0.3, 500) for _ in range(3)])
    r = ratio_interval(num, den)
    assert r["lo"] < 0.25 * np.exp(0.045) < r["hi"] and r["seeds"] == 3 and r["prompts"] == 500
    spread = ratio_interval(num * np.array([[0.5], [1.0], [1.5]]), den)
    assert spread["hi"] - spread["lo"] > r["hi"] - r["lo"]


# ------------------------------------------------------------------------------------------------ study sections
def _tiny_run(**over):
    from helpers.families import resolve

    return resolve("05_looped_transformer", "tiny", overrides=over, quiet=True)


def test_bad_study_settings_are_refused_naming_the_value():
    with pytest.raises(ValueError, match="test set's seed"):
        _tiny_run(val_seed=1234)
    with pytest.raises(ValueError, match="parity_margin must be > 0"):
        _tiny_run(parity_margin=0.0)
    with pytest.raises(ValueError, match="seeds must name at least one seed"):
        _tiny_run(seeds=())
    with pytest.raises(ValueError, match="unknown task"):
        _tiny_run(tasks=("sorting",))


def test_validation_prompts_differ_from_the_test_prompts():
    tcfg = _tiny_run().cfg.train
    xs_t, _, _ = fixed_test_set(tcfg, 2)
    xs_v, _, _ = fixed_test_set(tcfg, 2, seed=4321)
    assert xs_t.shape == xs_v.shape and not torch.allclose(xs_t, xs_v)


def test_headline_records_hold_what_later_sections_need_and_load_on_rerun(results_root, monkeypatch):
    """Every seed of both arms is trained once; its record holds the per-prompt test errors (all k) and, looped, the
    error against inference loops; a rerun loads them (no weights needed) with identical numbers."""
    from helpers.looped import study as S

    run = _tiny_run()
    calls = []
    real = S.train_model
    monkeypatch.setattr(S, "train_model", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    monkeypatch.setattr(parallel, "IN_PROCESS", True)           # the jobs here, where the counting stand-in is
    first = S.headline(run)
    assert sorted((r["experiment"], r["seed"]) for r in first.values()) == sorted(
        (arm, s) for arm in ("looped", "standard") for s in run.cfg.seeds)
    assert sorted(calls) == sorted(2 * list(run.cfg.seeds))
    rec = first["looped-linear_regression", 0]
    n_points = run.cfg.train.points.end
    assert len(rec["tables"]["test_errors"]) == n_points
    assert len(rec["tables"]["test_errors"][0]["errors"]) == run.cfg.train.test_prompts
    assert [r["loops"] for r in rec["tables"]["loops"]] == list(run.cfg.eval_loops)
    assert "loops" not in first["standard-linear_regression", 0]["tables"]
    mean_2d = np.mean(rec["tables"]["test_errors"][2 * rec["metrics"]["d"]]["errors"])
    assert mean_2d == pytest.approx(rec["metrics"]["err.k=2d"], rel=1e-5)
    again = S.headline(run)
    assert len(calls) == 2 * len(run.cfg.seeds)                              # loaded
    assert {k: r["created"] for k, r in again.items()} == {k: r["created"] for k, r in first.items()}


def test_a_run_cut_by_the_safety_budget_is_recorded_as_partial_and_trained_again(results_root, monkeypatch):
    import helpers.looped.study as S

    calls = []
    real = S.train_model
    monkeypatch.setattr(S, "train_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(parallel, "IN_PROCESS", True)           # the jobs here, where the counting stand-in is
    run = _tiny_run(**{"option_steps": 100_000, "train.time_budget_s": 0.0, "options": {}, "option_seeds": (0,)})
    rec = S.options(run, {})["plain", 0]
    assert rec["status"] == "partial" and rec["metrics"]["steps"] == 1
    S.options(run, {})                                                       # never loaded as the full run
    assert len(calls) == 2
    done = _tiny_run(**{"options": {}, "option_seeds": (0,)})               # no budget: a full run, then loaded
    assert S.options(done, {})["plain", 0]["status"] == "ok"
    S.options(done, {})
    assert len(calls) == 3


def test_options_at_the_headline_steps_reuse_the_headline_looped_runs(results_root):
    from helpers.looped import study as S

    run = _tiny_run(option_steps=None, options={})
    head = S.headline(run)
    out = S.options(run, head)
    assert out["plain", 0] is head["looped-linear_regression", 0] and ("plain", 1) in out


def test_a_shortened_run_reaches_the_prompts_it_is_scored_on():
    """Options and other tasks run fewer steps than the headline: their curricula reach the final dimension and
    prompt length (where every run is scored) within their steps; a curriculum that already does is left alone."""
    from helpers.looped import study as LS
    from helpers.looped.config import shortened, task_config

    for profile in ("full", "gpu-small"):
        cfg = LS.PROFILES[profile]
        t = LS.options_sweep(cfg).points[0].args[1]
        assert t.steps == cfg.option_steps < cfg.train.steps
        assert (t.dims(t.steps - 1), t.points(t.steps - 1)) == (cfg.train.dims.end, cfg.train.points.end)
        assert cfg.train.dims(t.steps - 1) < cfg.train.dims.end          # with the headline's intervals: short of it
        for task in cfg.tasks:
            _, tt = task_config(cfg, task)
            assert tt.dims(tt.steps - 1) == cfg.train.dims.end
    local = LS.PROFILES["local"]
    assert shortened(local.train, 600) == dataclasses.replace(local.train, steps=600)


def test_the_standard_arm_trains_at_its_own_lr_only_where_a_profile_sets_one():
    """gpu-small trains each arm at the lr its CPU probe found it learns at (standard_lr); elsewhere both arms share
    train.lr, and their run keys (the committed local records') do not change."""
    from helpers.looped import study as LS

    for cfg in LS.PROFILES.values():
        lrs = {p.experiment: p.args[1].lr for p in LS.headline_sweep(cfg).points}
        assert lrs == {"looped": cfg.train.lr, "standard": cfg.standard_lr or cfg.train.lr}
        assert {p.args[1].lr for p in LS.options_sweep(cfg).points + LS.tasks_sweep(cfg).points} == {cfg.train.lr}
    local = LS.PROFILES["local"]
    assert local.standard_lr is None and "standard_lr" not in LS.regime_key(local)
    own = dataclasses.replace(local, standard_lr=local.train.lr / 3)
    points = {p.experiment: p for p in LS.headline_sweep(own).points}
    same = {p.experiment: p for p in LS.headline_sweep(local).points}
    assert points["looped"].config == same["looped"].config and points["standard"].config != same["standard"].config
    assert LS.regime_key(own)["standard_lr"] == local.train.lr / 3
    with pytest.raises(ValueError, match="standard_lr must be > 0"):
        _tiny_run(standard_lr=0.0)
