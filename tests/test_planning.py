"""Memory plans, full-run estimates, the cell timeout derived from them, and the GPU benchmark's no-CUDA path."""
import subprocess
import sys

import pytest
import torch

from helpers import families as F
from helpers import planning as P
from helpers.memory import GiB, MemoryPlan, check_fits, counts, training_plan
from helpers.models import mistral_config, pythia_config, smollm2_config
from helpers.paths import REPO_ROOT
from helpers.results import save_run


def test_weights_gradients_and_adam_follow_the_meta_device_counts():
    conf = pythia_config("410m")
    n = counts(conf)["total"]
    assert n == 405_334_016                                   # the real Pythia-410m
    p = training_plan("410m", conf, 8, 1024, "bf16-autocast")
    assert (p.weights, p.grads, p.optimizer) == (4 * n, 4 * n, 8 * n)    # fp32 master, fp32 grads, two Adam moments
    pure = training_plan("410m", conf, 8, 1024, "pure-bf16")
    assert (pure.weights, pure.grads, pure.optimizer) == (2 * n, 2 * n, 4 * n)
    lora = training_plan("smol", smollm2_config(), 8, 1024, "bf16-frozen", trainable=1_000_000)
    assert lora.grads == 4 * 1_000_000 and lora.optimizer == 8 * 1_000_000
    # activations: grow linearly in the batch, and checkpointing keeps far less
    a1, a2 = (training_plan("x", conf, b, 1024).activations for b in (1, 2))
    assert a2 == pytest.approx(2 * a1)
    assert training_plan("x", conf, 8, 1024, checkpointing=True).activations < 0.5 * p.activations
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        training_plan("x", conf, 1, 8, "fp8")


def test_the_plans_say_what_fits_one_80gb_gpu():
    assert training_plan("2.8b", pythia_config("2.8b"), 2, 1024).fits(80)
    # Mistral-7B trained in full with fp32 AdamW is ~116 GB of states alone: it must be called out
    big = training_plan("7b", mistral_config(), 1, 1024, "bf16-autocast")
    assert big.total > 100 * GiB and not big.fits(80) and "does NOT fit" in big.line()


def test_too_little_gpu_memory_stops_with_what_is_needed_and_the_override(monkeypatch):
    plan = MemoryPlan("demo", 1, 1, weights=30 * GiB, setting="bf16-autocast, batch 8 x 1024")
    check_fits(plan, "cpu", "x")                          # only CUDA is checked
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: type("P", (), {"total_memory": 16 * GiB}))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "Tesla T4")
    with pytest.raises(MemoryError, match=r"needs about 30.0 GiB .* Tesla T4 has 16.0 GiB. Lower it with OVR"):
        check_fits(plan, "cuda", "OVR")


def _bench_record(tokens_per_s=10_000.0, flops=1e14):
    row = {"tokens_per_s": tokens_per_s, "flops_per_s": flops, "step_s": 0.1}
    cases = ["pythia-410m train sdpa", "pythia-410m train sdpa, notebook batch 2",
             "pythia-2.8b train sdpa, notebook batch 2", "07 pretraining LM train, batch 8",
             "04 Mistral-7B forward, batch 1", "06 SmolLM2-360M LoRA SFT step, batch 8"]
    rows = [{"case": c, **row} for c in cases]
    rows.append({"case": "04 Mistral-7B layer: statistics and bases", "stats_s_per_layer_block": 0.5,
                 "block_tokens": 1024, "whiten_bases_s_per_layer": 2.0, "svd_bases_s_per_layer": 1.0})
    rows.append({"case": "05 looped d=20", "looped_steps_per_s": 20.0, "standard_steps_per_s": 40.0})
    return {"notebook": "benchmarks", "experiment": "bench_gpu", "status": "ok", "created": "2026-11-23",
            "config": {"gpu": "Test GPU"}, "tables": {"cases": rows}}


def test_estimates_follow_the_benchmark_and_the_timeout_follows_the_estimate():
    fast, slow = [_bench_record(flops=2e14)], [_bench_record(flops=1e14)]
    a, b = F.plan("01_attention_lowrank", fast), F.plan("01_attention_lowrank", slow)
    assert b.estimate_s == pytest.approx(2 * a.estimate_s)             # half the FLOP/s, twice the time
    # 6 N T / rate for 10 runs x 10 epochs of WikiText-2
    n = counts(pythia_config("410m"))["total"]
    assert b.estimate_s == pytest.approx(6 * n * 10 * 10 * P.WIKITEXT2_TRAIN_TOKENS / 1e14)
    assert b.timeout_s() == max(P.MIN_TIMEOUT_S, int(P.TIMEOUT_FACTOR * b.estimate_s))
    for nb, p in zip(F.NOTEBOOKS, F.all_plans(slow)):
        assert p.notebook == nb and p.estimate_s is not None and p.estimate_s > 0, nb
        assert p.timeout_s() >= p.estimate_s
    assert F.plan("04_lowrank_compression", []).estimate_s is None             # no benchmark: unknown, not a guess
    assert F.plan("04_lowrank_compression", []).timeout_s() == P.MIN_TIMEOUT_S


def test_cell_timeout_is_an_hour_outside_full(results_root):
    assert F.cell_timeout("03_partial_layers", "local") == P.MIN_TIMEOUT_S
    rec = _bench_record(flops=1e13)
    save_run("benchmarks", "bench_gpu", "throughput", rec["config"], {}, profile="full", seed=0,
             tables=rec["tables"])
    assert F.cell_timeout("03_partial_layers", "full") > 10 * 3600           # ~ days at 10 TFLOP/s: not 1 hour
    with pytest.raises(ValueError, match="unknown notebook '99_x'"):
        F.plan("99_x")


def test_every_notebook_has_a_plan_that_fits_one_80gb_gpu():
    """The profiles apply what makes each plan fit (micro-batches, bf16 teacher, checkpointed healing)."""
    rows = P.table(F.all_plans([]))
    assert {r["notebook"] for r in rows} >= {"00_data_and_baselines", "01_attention_lowrank", "02_mlp_lowrank",
                                             "03_partial_layers", "04_lowrank_compression", "05_looped_transformer",
                                             "07_pretraining"}
    assert all(r["fits_80gb"] for r in rows), rows


def test_bench_gpu_says_so_and_exits_0_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the benchmark would run")
    out = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "bench_gpu.py")], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0
    assert out.stdout.strip().splitlines() == ["bench_gpu: no CUDA device here; nothing measured (run it on a GPU "
                                               "machine)"]


def test_the_docs_tables_are_the_generated_plans():
    """docs/profiles.md's plan tables are `python -m helpers plan --markdown` (full profile) and `plan --profile
    gpu-small --device t4 --markdown` of the committed benchmark record: regenerate them when a profile or the
    record changes. The P100 has no table there: torch 2.13's CUDA 12.8+ wheels have no sm_60 kernels (the page
    says so, and a run on one stops at its start: families.check_gpu)."""
    readme = (REPO_ROOT / "docs" / "profiles.md").read_text()
    assert P.markdown(F.all_plans()) in readme
    assert P.markdown([p.on(P.CARDS["t4"]) for p in F.all_plans(profile="gpu-small")]) in readme
    assert "est. time on NVIDIA P100" not in readme and "P100 is not supported by this torch" in readme
    # Kaggle's two T4s (plan --profile gpu-small --device t4 --markdown --gpus 2): no packed columns, none packs
    two = P.spread_markdown([p.on(P.CARDS["t4"]) for p in F.all_plans(profile="gpu-small")], 2, packed=False)
    assert two in readme and "| notebook | 1 GPU (NVIDIA T4), as planned | 2 GPUs |" in two


def test_gpu_small_plans_each_notebook_under_an_hour_on_a_t4_within_its_memory_and_colabs_ram():
    """The gpu-small profile's target, by the committed benchmark record: every notebook <= 1 h on a T4, its largest
    step within the T4's 15 GiB, its host memory within Colab's 12.7 GB; each plan is of that profile's own config
    (stand-ins, SmolLM2-360M, d = 10), with fp32 weights (no bf16 on the card)."""
    t4 = P.CARDS["t4"]
    plans = {p.notebook: p.on(t4) for p in F.all_plans(profile="gpu-small")}
    assert set(plans) == set(F.NOTEBOOKS)
    for nb, p in plans.items():
        assert p.profile == "gpu-small" and "(gpu-small profile)" in p.text()
        assert p.estimate_s is not None and p.estimate_s <= 3600, (nb, p.estimate_s)
        assert all(m.fits(t4.memory_gib) for m in p.memory), nb
        assert max(m.host for m in p.memory) <= t4.host_gib * GiB, nb
        assert p.estimate_s < F.plan(nb).on(t4).estimate_s, nb            # less work than the full profile
    assert plans["01_attention_lowrank"].peak.name == "pythia-410m stand-in 512 x 6"
    assert plans["05_looped_transformer"].peak.name == "looped d=10"
    heal = plans["04_lowrank_compression"].memory[1]
    assert "fp16-amp" in heal.setting and heal.params < 400e6                 # SmolLM2-360M's student, fp32 weights
    with pytest.raises(ValueError, match="plans exist for the GPU profiles only"):
        F.plan("01_attention_lowrank", profile="local")
    out = subprocess.run([sys.executable, "-m", "helpers", "plan", "--profile", "gpu-small", "--device", "t4"],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.count("(gpu-small profile) on NVIDIA T4") == len(F.NOTEBOOKS)


def test_plans_on_another_card_scale_compute_keep_budgets_and_judge_its_memory():
    """On a T4: compute-bound work takes (H100 peak / T4 peak) times as long as on the benchmark's H100, a
    wall-clock budget (07's grid) as long as there, and "fits" is judged against 15 GiB and Colab's host RAM."""
    rec = {**_bench_record(flops=1e14), "config": {"gpu": "NVIDIA H100 80GB HBM3"}}
    t4, h100 = P.CARDS["t4"], P.CARDS["h100"]
    factor = h100.peak_tflops / t4.peak_tflops
    base = F.plan("01_attention_lowrank", [rec])
    on = base.on(t4)
    assert on.estimate_s == pytest.approx(factor * base.estimate_s) and on.gpu == "NVIDIA T4"
    pre = F.plan("07_pretraining", [rec])
    (prep, s_prep), (timed, s_timed), (stepped, s_stepped) = pre.work       # data preparation runs on the CPU
    assert prep.startswith("data preparation on the CPU")
    assert dict(pre.on(t4).work) == {prep: s_prep, timed: s_timed, stepped: pytest.approx(factor * s_stepped)}
    rows = {r["notebook"]: r for r in P.table([F.plan(nb, [rec]).on(t4) for nb in F.NOTEBOOKS])}
    assert not rows["03_partial_layers"]["fits_80gb"] and rows["05_looped_transformer"]["fits_80gb"]
    assert not rows["04_lowrank_compression"]["host_fits"] and rows["01_attention_lowrank"]["host_fits"]
    table = P.markdown([F.plan(nb, [rec]).on(t4) for nb in F.NOTEBOOKS])
    assert "| fits 15 GiB | est. time on NVIDIA T4 |" in table and "(more than the host has)" in table
    assert "host memory 81.2 GiB does NOT fit the 12.7 GB of Colab (free)" in F.plan(
        "04_lowrank_compression", [rec]).on(t4).text()
    assert P.card_of("Tesla T4") is t4 and P.card_of("NVIDIA H100 80GB HBM3") is h100 and P.card_of("x") is None
    out = subprocess.run([sys.executable, "-m", "helpers", "plan", "--device", "v100"], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 2 and f"unknown device 'v100'; allowed: {', '.join(P.CARDS)}" in out.stderr
    assert {"h100", "a100", "t4", "p100", "h100 pcie"} <= set(P.CARDS)


def test_each_step_is_scaled_by_the_peaks_of_the_precision_it_runs_in():
    """05's looped models train in fp32 (no autocast): scaled by fp32 peaks, not the 16-bit tensor peaks; 04's
    float64 statistics by float64 peaks (a T4's are 1/32 of its fp32); its forward passes and healing in 16-bit;
    the P100's 16-bit steps at its fp32 rate (PyTorch's fp16 matmuls accumulate in fp32, which it has no faster
    path for). The plan text marks the steps not in 16-bit; an unknown precision is refused by name."""
    t4, p100, h100 = P.CARDS["t4"], P.CARDS["p100"], P.CARDS["h100"]
    looped = F.plan("05_looped_transformer", profile="gpu-small")
    for (what, s), (_, s4), (_, s100) in zip(looped.work, looped.on(t4).work, looped.on(p100).work):
        assert s4 == pytest.approx(s * 66.9 / 8.1) and s100 == pytest.approx(s * 66.9 / 9.3), what
    assert "[fp32]:" in looped.on(t4).text()
    comp = F.plan("04_lowrank_compression", profile="gpu-small")
    on = dict(comp.on(t4).work)
    for what, s in comp.work:
        want = {"calibration statistics": 66.9 / 0.25, "bases": 66.9 / 8.1}.get(what.split(" (")[0], 989.4 / 65)
        assert on[what] == pytest.approx(s * want), what
    sft = F.plan("06_sft_dpo", profile="gpu-small")
    assert sft.on(p100).estimate_s == pytest.approx(sft.on(t4).estimate_s * 65 / 9.3)
    assert (h100.tflops("16-bit"), p100.tflops("16-bit"), t4.tflops("fp64")) == (989.4, 9.3, 0.25)
    with pytest.raises(ValueError, match="unknown precision 'fp8'; allowed: 16-bit, fp32, fp64"):
        t4.tflops("fp8")


def _fake_gpu(monkeypatch, gib: float, name: str, capability: tuple[int, int] = (7, 5)):
    """torch.cuda on a machine with this card (a T4's capability unless told), driven by this torch's CUDA 12.8+ build;
    is_bf16_supported() says True everywhere, as its emulation-inclusive default does on a T4."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda d: type("P", (), {"total_memory": gib * GiB, "name": name}))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: name)


def test_auto_runs_full_where_the_gpu_holds_its_plan_else_gpu_small_else_local_and_says_why(monkeypatch, capsys):
    from helpers import precision as T

    monkeypatch.delenv("NB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert F.auto_profile("05_looped_transformer") == ("local", "no CUDA GPU")
    _fake_gpu(monkeypatch, 15.0, "Tesla T4")                # no bf16 (7.5), whatever is_bf16_supported() says
    # 01's Pythia-410m plans 15.9 GiB: more than a T4 holds, so gpu-small (its 70m-shaped stand-in, 5.6 GiB);
    # 05's looped model (3 GiB) fits, but its full plan is weeks on a T4, far past gpu-small's hour: gpu-small too
    profile, why = F.auto_profile("01_attention_lowrank")
    assert profile == "gpu-small" and "needs 15.9 GiB, more than this Tesla T4 (15.0 GiB) holds" in why
    assert "gpu-small's largest step (pythia-410m stand-in 512 x 6) needs 5.6 GiB" in why
    looped, looped_why = F.auto_profile("05_looped_transformer")
    t4_hours = F.plan("05_looped_transformer").on(P.CARDS["t4"]).wall_s() / 3600
    assert looped == "gpu-small" and t4_hours > 12
    assert f"(this Tesla T4 has 15.0 GiB), but it plans {t4_hours:.1f} h on this card, more than the 1 h per " \
           "notebook gpu-small promises on a card with sessions of at most 12 h (Colab (free))" in looped_why
    # the same memory on a card with no known session limit: full, by memory alone
    _fake_gpu(monkeypatch, 15.0, "a 15 GB workstation card")
    assert F.auto_profile("05_looped_transformer")[0] == "full"
    # the runner's cell timeouts and the printed plan are this card's: a P100 plans 06's gpu-small at ~6 hours
    _fake_gpu(monkeypatch, 16.0, "Tesla P100-PCIE-16GB", (6, 0))
    p100 = F.plan("06_sft_dpo", profile="gpu-small").on(P.CARDS["p100"])
    assert F.cell_timeout("06_sft_dpo", "gpu-small") == p100.timeout_s() > 2 * 3600
    assert "more than the 1 h per notebook gpu-small is sized for on a T4" in p100.text()
    assert "sized for" not in F.plan("06_sft_dpo", profile="gpu-small").on(P.CARDS["t4"]).text()
    _fake_gpu(monkeypatch, 15.0, "Tesla T4")
    # the notebook runner's cell timeouts follow the same decision as the notebook's start
    assert F.profile_for("01_attention_lowrank", "auto") == (profile, why)
    assert F.profile_for("01_attention_lowrank", "tiny") == ("tiny", None)
    assert F.cell_timeout("01_attention_lowrank", "gpu-small") == F.plan(
        "01_attention_lowrank", profile="gpu-small").on(P.CARDS["t4"]).timeout_s()
    run = F.resolve("01_attention_lowrank", "auto", check_hub=False, quiet=False, overrides={})
    assert run.profile == "gpu-small" and run.device == "cuda" and run.cfg.sizes["410m"]["hidden"] == 512
    out = capsys.readouterr().out
    assert "profile auto -> gpu-small: the full plan's largest step" in out
    assert "(gpu-small profile) on NVIDIA T4 (15 GiB; times scaled" in out        # the plan on the card in use
    # there it trains in fp16 mixed precision (the Trainer's loss scaler), not in fp32
    assert T.effective_precision(run.cfg.train.precision, run.device) == "fp16-amp"
    assert T.trainer_precision(run.device)["fp16"] and not T.trainer_precision(run.device)["bf16"]
    # a GPU too small even for gpu-small's plan: local, saying so
    _fake_gpu(monkeypatch, 4.0, "a 4 GB card")
    profile, why = F.auto_profile("01_attention_lowrank")
    assert profile == "local" and "and so does gpu-small's (pythia-410m stand-in 512 x 6, 5.6 GiB)" in why
    # PROFILE=full on a T4 stops at once, naming the profile that fits
    _fake_gpu(monkeypatch, 15.0, "Tesla T4")
    with pytest.raises(MemoryError, match="PROFILE='gpu-small'"):
        F.resolve("01_attention_lowrank", "full", check_hub=False, quiet=True)
    # and a plan's host memory is held against this machine's RAM (a 16 GiB machine here): 04's full plan stops
    _fake_gpu(monkeypatch, 80.0, "NVIDIA H100 80GB HBM3", (9, 0))
    monkeypatch.setattr(P.os, "sysconf", lambda k: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 16 * GiB // 4096}[k])
    with pytest.raises(MemoryError, match=r"plans 81.2 GiB of host memory .* this machine has 16.0 GiB. Use "
                                          r"PROFILE='gpu-small'"):
        P.check(F.plan("04_lowrank_compression"), "cuda")
    P.check(F.plan("04_lowrank_compression", profile="gpu-small"), "cuda")      # 5.4 GiB: fits
    # auto weighs the host too: an H100 in a 16 GiB machine runs 04 at gpu-small's scale, saying why
    profile, why = F.auto_profile("04_lowrank_compression")
    assert profile == "gpu-small" and "but its 81.2 GiB of host memory is more than this machine's 16.0 GiB" in why
    _fake_gpu(monkeypatch, 80.0, "NVIDIA H100 80GB HBM3", (9, 0))
    assert F.auto_profile("03_partial_layers") == ("full", "the full plan's largest step (pythia-2.8b) needs 47.3 GiB; "
                                                           "this NVIDIA H100 80GB HBM3 has 80.0 GiB")


def test_the_largest_micro_batch_is_the_last_candidate_whose_step_fits():
    from helpers.memory import largest_micro_batch, training_plan
    from helpers.models import pythia_config

    conf = pythia_config("410m")
    big = largest_micro_batch("410m", conf, 1024, "bf16-autocast", 80.0)
    assert big == 32
    assert training_plan("410m", conf, 32, 1024).fits(80.0) and not training_plan("410m", conf, 64, 1024).fits(80.0)
    assert largest_micro_batch("2.8b", pythia_config("2.8b"), 1024, "bf16-autocast", 15.0) is None


def test_the_gpu_benchmark_reads_the_planners_card_table():
    """One card table: benchmarks/bench_gpu.py's MFU denominator is planning.CARDS' peak, matched most specific
    first (an H100 PCIe is not the SXM's 989.4), and the planner knows every card the benchmark's old table had."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", REPO_ROOT / "benchmarks" / "bench_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert not hasattr(bench, "PEAK_BF16_TFLOPS")
    assert bench.peak_flops("NVIDIA H100 PCIe") == P.card_of("NVIDIA H100 PCIe").peak_tflops * 1e12 == 756e12
    old = {"NVIDIA H200": 989.4, "NVIDIA H100 PCIe": 756.0, "NVIDIA H100 NVL": 835.0, "NVIDIA H100 80GB HBM3": 989.4,
           "NVIDIA GH200 480GB": 989.4, "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA L40S": 362.1, "NVIDIA L4": 121.0,
           "NVIDIA A10G": 70.0, "NVIDIA GeForce RTX 4090": 165.2}
    for name, tflops in old.items():
        assert bench.peak_flops(name) == pytest.approx(tflops * 1e12, rel=1e-3), name
    assert P.card_of("NVIDIA H100 PCIe") is P.CARDS["h100 pcie"] and P.card_of("NVIDIA GH200") is P.CARDS["gh200"]
    assert P.card_of("NVIDIA L40") is P.CARDS["l40"] and P.card_of("NVIDIA A10") is None
    assert bench.peak_flops("Tesla T4") is None                     # no bf16: no bf16 MFU, as before
    for card in P.CARDS.values():                                   # every card can show any plan
        assert all(card.tflops(p) > 0 for p in P.PRECISIONS)

