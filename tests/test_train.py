import math

import pytest
import torch

from helpers.evaluate import lm_loss
from helpers.train import TrainConfig, lm_collator, lr_lambda, train_causal_lm


def cfg(**kw):
    base = dict(max_steps=20, batch_size=8, lr=3e-3, log_every=5, progress=False)
    return TrainConfig(**{**base, **kw})


def test_tiny_model_learns(tiny_model, tiny_blocks):
    train, val = tiny_blocks
    model = tiny_model()
    before = lm_loss(model, val)["loss"]
    res = train_causal_lm(model, train, val, cfg(max_steps=60, eval_every=30), seed=0)
    m = res["metrics"]
    assert m["eval_loss"] < before - 1.0, (before, m["eval_loss"])
    assert set(res["curves"]["eval_loss"]) == {30, 60}
    assert m["steps"] == 60 and m["tokens"] == 60 * 8 * 32 and m["tokens_per_s"] > 0
    assert res["provenance"]["peak_mem_mb"] > 0


def test_grad_accumulation_matches_the_big_batch(tiny_model, tiny_blocks):
    train, _ = tiny_blocks
    a = train_causal_lm(tiny_model(), train, None, cfg(max_steps=1, batch_size=8, grad_accum=1), seed=0)["model"]
    b = train_causal_lm(tiny_model(), train, None, cfg(max_steps=1, batch_size=4, grad_accum=2), seed=0)["model"]
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-5), n


def test_step_and_triangular_schedules():
    f = lr_lambda(TrainConfig(scheduler="step", step_every=10, step_gamma=0.5, warmup_steps=4))
    assert [round(f(s), 3) for s in (0, 3, 4, 13, 14, 24)] == [0.25, 1.0, 1.0, 1.0, 0.5, 0.25]
    g = lr_lambda(TrainConfig(scheduler="triangular", cycle_steps=10, min_lr_ratio=0.2))
    vals = [g(s) for s in range(40)]
    assert min(vals) == pytest.approx(0.2) and max(vals) == pytest.approx(1.0)
    assert vals[10] == pytest.approx(1.0) and vals[20] == pytest.approx(0.2) and vals[30] == pytest.approx(1.0)


def test_triangular_does_not_cycle_adam_beta1(tiny_model, tiny_blocks, monkeypatch):
    """The lr cycles while AdamW's beta1 stays at its setting at every optimizer step (torch's CyclicLR would cycle
    it unless cycle_momentum=False)."""
    import torch

    seen, step = [], torch.optim.AdamW.step

    def spy(self, *a, **kw):
        seen.append((self.param_groups[0]["lr"], self.param_groups[0]["betas"][0]))
        return step(self, *a, **kw)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    train, _ = tiny_blocks
    res = train_causal_lm(tiny_model(), train, None, cfg(scheduler="triangular", cycle_steps=3, max_steps=9,
                                                         log_every=1, adam_beta1=0.85), seed=0)
    lrs = list(res["curves"]["lr"].values())
    assert max(lrs) > 2 * min(lrs)  # the lr really cycles
    assert len(seen) == 9 and max(lr for lr, _ in seen) > 2 * min(lr for lr, _ in seen)
    assert {b for _, b in seen} == {0.85}


def test_plateau_cuts_the_lr(tiny_model, tiny_blocks):
    train, val = tiny_blocks
    res = train_causal_lm(tiny_model(), train, val, cfg(scheduler="plateau", eval_every=2, plateau_patience=0,
                                                        plateau_factor=0.1, max_steps=30, lr=0.5, log_every=2), seed=0)
    lrs = list(res["curves"]["lr"].values())
    assert min(lrs) < 0.5 * lrs[0]


def test_time_budget_stops_and_evaluates(tiny_model, tiny_blocks):
    train, val = tiny_blocks
    res = train_causal_lm(tiny_model(), train, val, cfg(max_steps=100_000, time_budget_s=1.0), seed=0)
    m = res["metrics"]
    assert m["stopped_by_budget"] and m["steps"] < 100_000 and "eval_loss" in m


def test_pure_bf16_keeps_weights_in_bf16(tiny_model, tiny_blocks):
    train, _ = tiny_blocks
    res = train_causal_lm(tiny_model(), train, None, cfg(max_steps=2, precision="pure-bf16"), seed=0)
    assert all(p.dtype == torch.bfloat16 for p in res["model"].parameters())
    assert res["provenance"]["pure_bf16"]


@pytest.mark.parametrize("bad, match", [
    (dict(scheduler="warp"), "unknown scheduler 'warp'"),
    (dict(precision="fp8"), "unknown precision 'fp8'"),
    (dict(max_steps=0), "max_steps must be >= 1"),
    (dict(scheduler="step"), "step_every"),
    (dict(scheduler="plateau"), "eval_every"),
    (dict(time_budget_s=0), "time_budget_s"),
])
def test_bad_train_config(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


@pytest.mark.parametrize("labelled_only", [False, True])
def test_lm_loss_is_token_weighted(tiny_model, labelled_only):
    """Both paths (every position's cross-entropy masked, or the labelled positions' alone) give the by-hand loss
    and per-row sums, padding and a masked prompt included."""
    model = tiny_model()
    rows = [{"input_ids": list(range(10))}, {"input_ids": list(range(30))},
            {"input_ids": list(range(8)), "labels": [-100] * 4 + list(range(4, 8))}]
    out = lm_loss(model, rows, batch_size=2, per_sequence=True, labelled_only=labelled_only)
    sums, counts = [], []
    with torch.no_grad():
        for r in rows:
            batch = lm_collator([r])
            logits = model(input_ids=batch["input_ids"]).logits[0, :-1]
            labels = batch["labels"][0, 1:]
            keep = labels != -100
            sums.append(torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum").item())
            counts.append(int(keep.sum()))
    total, count = sum(sums), sum(counts)
    assert out["tokens"] == count == 9 + 29 + 4 and out["seq_tokens"] == counts
    assert out["seq_loss_sum"] == pytest.approx(sums, rel=1e-5)
    assert out["loss"] == pytest.approx(total / count, rel=1e-5)
    assert out["ppl"] == pytest.approx(math.exp(total / count), rel=1e-5)


def test_wandb_offline_run(tiny_model, tiny_blocks, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    train, _ = tiny_blocks
    res = train_causal_lm(tiny_model(), train, None, cfg(max_steps=3, wandb=True), seed=0)
    assert res["metrics"]["steps"] == 3
    assert list(tmp_path.glob("wandb/offline-run-*")), "no offline wandb run folder was written"


def test_no_scratch_folder_is_left_behind(tiny_model, tiny_blocks, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    train, _ = tiny_blocks
    train_causal_lm(tiny_model(), train, None, TrainConfig(max_steps=2, batch_size=4, progress=False))
    assert not list(tmp_path.glob("lab-train-*"))


def test_the_same_profile_and_seed_give_identical_metrics():
    """Bitwise on one machine: the tiny from-scratch run of notebook 00, twice."""
    from helpers.baselines.study import PROFILES
    from helpers.pretrain import pretrain

    a, b = (pretrain(PROFILES["tiny"].lm, seed=0) for _ in range(2))
    keys = ("eval_loss", "test_loss", "train_loss", "steps", "tokens")
    assert {k: a["metrics"][k] for k in keys} == {k: b["metrics"][k] for k in keys}
    assert a["curves"]["eval_loss"] == b["curves"]["eval_loss"]


def test_bf16_on_a_device_without_bf16_falls_back_to_fp32_with_a_warning(tiny_model, tiny_blocks, monkeypatch):
    """A T4 or V100 has no bf16: an explicit bf16 request trains in fp32 and says so (instead of failing in step 1).
    Simulated by telling the training core that this CPU lacks bf16."""
    import helpers.precision as T

    monkeypatch.setattr(T, "bf16_available", lambda device: False)
    train, _ = tiny_blocks
    with pytest.warns(UserWarning, match="no bf16 support: training in fp32"):     # a CPU: fp32
        res = train_causal_lm(tiny_model(), train, None, cfg(max_steps=2, precision="pure-bf16"), seed=0)
    assert all(p.dtype == torch.float32 for p in res["model"].parameters())
    assert not res["provenance"]["pure_bf16"] and not res["provenance"]["bf16_autocast"]
    assert T.effective_precision("auto", "cpu") == "fp32"


def _fake_cuda(monkeypatch, capability):
    """torch.cuda on a card of this compute capability; is_bf16_supported() says True, as its emulation-inclusive
    default does on a T4 or V100 (helpers.precision must go by the capability)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


def test_a_gpu_without_bf16_gets_fp16_mixed_precision(monkeypatch):
    """A T4 / P100 / V100 (no bf16): auto and an explicit bf16 request get fp16 mixed precision with the Trainer's
    loss scaler and fp32 master weights, not an fp32 fallback; TRL's and the Trainer's flags say the same; off
    CUDA fp16 is refused for fp32. Simulated at torch.cuda: a T4's compute capability 7.5."""
    import helpers.precision as T

    _fake_cuda(monkeypatch, (7, 5))
    assert T.effective_precision("auto", "cuda") == "fp16-amp"
    with pytest.warns(UserWarning, match="no bf16 support: training in fp16 mixed precision"):
        assert T.effective_precision("pure-bf16", "cuda:0") == "fp16-amp"
    with pytest.warns(UserWarning, match="needs a CUDA device"):
        assert T.effective_precision("fp16-amp", "cpu") == "fp32"
    assert T.trainer_precision("cuda") == {"bf16": False, "fp16": True, "use_cpu": False,
                                           "gradient_checkpointing": False}
    assert T.model_dtype("cuda") == torch.float32                 # fp16 master weights would not train
    _fake_cuda(monkeypatch, (8, 0))                                # an A100
    assert T.effective_precision("auto", "cuda") == "bf16-autocast" and T.trainer_precision("cuda")["bf16"]


def test_forward_passes_on_a_gpu_without_bf16_run_in_fp16_autocast(monkeypatch, tiny_model, tiny_blocks):
    """Evaluation, calibration and generation on a T4 / P100 (fp32 weights there) run their matmuls in fp16 autocast,
    as training does (else at the fp32 rate, 1/8 of a T4's); on a GPU with bf16 (bf16 weights) and on a CPU,
    nothing (the card faked at torch.cuda). The loss scorer enters that context: simulated on the CPU by recording
    which device it is asked for."""
    import contextlib

    import helpers.evaluate as E
    import helpers.precision as T

    _fake_cuda(monkeypatch, (7, 5))                                # a T4
    ctx = T.inference_autocast("cuda:0")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.float16 and ctx.device == "cuda"
    assert isinstance(T.inference_autocast("cpu"), contextlib.nullcontext)
    _fake_cuda(monkeypatch, (9, 0))                                # an H100
    assert isinstance(T.inference_autocast("cuda"), contextlib.nullcontext)
    asked = []
    monkeypatch.setattr(E, "inference_autocast", lambda device: asked.append(device) or contextlib.nullcontext())
    _, evals = tiny_blocks
    E.lm_loss(tiny_model(), evals, batch_size=4)
    assert asked and set(asked) == {"cpu"}


def test_gradient_checkpointing_gives_the_same_training(tiny_model, tiny_blocks):
    """Recomputing activations in backward changes memory, not the result."""
    train, _ = tiny_blocks
    a = train_causal_lm(tiny_model(), train, None, cfg(max_steps=3), seed=0)
    b = train_causal_lm(tiny_model(), train, None, cfg(max_steps=3, gradient_checkpointing=True), seed=0)
    assert b["model"].is_activation_checkpointing
    assert a["metrics"]["train_loss"] == pytest.approx(b["metrics"]["train_loss"], rel=1e-5)


def test_the_gpu_levers_compile_a_surgery_model_and_train_it_as_eager_does(tiny_blocks):
    """torch.compile (the Trainer's) works with the surgery modules (low-rank qkv, removed dense, bottleneck MLP) and
    changes the speed, not the training; the for-each AdamW trains as the fused one does (TF32: CUDA only)."""
    from helpers.models import from_config, pythia_config
    from helpers.surgery.experiments import EXPERIMENTS
    from helpers.surgery.ops import apply_surgery

    train, val = tiny_blocks

    def run(**levers):
        torch.manual_seed(0)
        model = from_config(pythia_config("410m", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                          intermediate_size=128, vocab_size=64, max_position_embeddings=64))
        apply_surgery(model, EXPERIMENTS[10].ops, rank_factor=32 / 1024)
        return train_causal_lm(model, train, val, cfg(max_steps=3, **levers), seed=0)

    eager, foreach = run(), run(fused_adamw=False)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled = run(compile=True, tf32=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs       # the compiled run did compile
    for other in (compiled, foreach):
        assert other["metrics"]["eval_loss"] == pytest.approx(eager["metrics"]["eval_loss"], rel=1e-4)


_CHILD = r"""
import os, sys, torch
from datasets import Dataset
from transformers import TrainerCallback
from helpers.models import NeoXSize, from_config, neox_config
from helpers.train import TrainConfig, train_causal_lm

g = torch.Generator().manual_seed(0)
starts = torch.randint(0, 64, (96,), generator=g)
rows = [{"input_ids": [(int(s) + i) % 64 for i in range(32)]} for s in starts]
train, val = Dataset.from_list(rows[:80]), Dataset.from_list(rows[80:])
torch.manual_seed(0)
model = from_config(neox_config(NeoXSize(hidden=32, layers=2, heads=2), vocab_size=64))


class Crash(TrainerCallback):            # the machine dies during step 7: no clean shutdown, no finally blocks
    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == int(os.environ["DIE_AT"]):
            os._exit(9)


cfg = TrainConfig(max_steps=10, batch_size=8, lr=3e-3, log_every=1, eval_every=5, progress=False,
                  checkpoint_every_s=1e-6)
die = [Crash()] if os.environ.get("DIE_AT") else []
res = train_causal_lm(model, train, val, cfg, seed=0, checkpoint_dir=sys.argv[1], callbacks=die)
print(repr({"eval_loss": res["metrics"]["eval_loss"], "train_loss": res["curves"]["train_loss"],
            "eval": res["curves"]["eval_loss"], "resumed": res["provenance"]["resumed_from_step"]}))
"""


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(tmp_path):
    """Kill a training process during step 7 (checkpoints saved every step), start the same run again: it resumes
    from step 6 and ends with the uninterrupted run's curves and final evaluation (same weights, optimizer state,
    scheduler, RNG and data position); the folder is gone once the run has finished."""
    import ast
    import os
    import subprocess
    import sys

    from helpers.paths import REPO_ROOT

    def child(folder, die_at=None):
        env = {k: v for k, v in os.environ.items() if k != "DIE_AT"}
        env["PYTHONPATH"] = str(REPO_ROOT)
        if die_at is not None:
            env["DIE_AT"] = str(die_at)
        return subprocess.run([sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True, env=env,
                              timeout=300)

    whole = child(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    crashed = child(tmp_path / "run", die_at=6)
    assert crashed.returncode == 9 and sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint-6"]
    resumed = child(tmp_path / "run")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = (ast.literal_eval(r.stdout.strip().splitlines()[-1]) for r in (whole, resumed))
    assert a["resumed"] is None and b["resumed"] == 6
    assert sorted(b["train_loss"]) == list(range(1, 11)) and sorted(b["eval"]) == [5, 10]
    for step in a["train_loss"]:
        assert b["train_loss"][step] == pytest.approx(a["train_loss"][step], rel=1e-5), step
    assert b["eval_loss"] == pytest.approx(a["eval_loss"], rel=1e-5)
    assert not (tmp_path / "run").exists() and not (tmp_path / "whole").exists()


def test_there_is_one_precision_rule_and_the_trainer_and_the_plan_follow_it(monkeypatch, tiny_model, tiny_blocks):
    """fp16 vs bf16 is decided by helpers.precision.precision_for only: the planner's old twin is gone, the training
    core has no rule of its own, and on a card with and without bf16 the Trainer's flags and the plan's precision
    are the same choice."""
    import helpers.planning as P
    import helpers.precision as PR
    import helpers.train as T
    from helpers import families as F

    assert not hasattr(P, "mixed_precision")
    assert not any(hasattr(T, name) for name in ("bf16_available", "trainer_precision", "model_dtype",
                                                 "inference_autocast")) and T.PRECISIONS is PR.PRECISIONS
    assert T.effective_precision is PR.effective_precision          # the trainer calls the policy, defines none
    for bf16, planned in ((True, "full"), (False, "gpu-small")):   # gpu-small is planned for cards without bf16
        _fake_cuda(monkeypatch, (9, 0) if bf16 else (7, 5))          # an H100, a T4
        mode = PR.effective_precision("auto", "cuda")
        flags = PR.trainer_precision("cuda")
        plan = F.plan("00_data_and_baselines", profile=planned)
        assert mode == PR.precision_for("auto", cuda=True, bf16=bf16) == ("bf16-autocast" if bf16 else "fp16-amp")
        assert plan.peak.setting.startswith(mode + ",") and flags["bf16"] == bf16 and flags["fp16"] == (not bf16)
    assert PR.precision_for("auto", cuda=False, bf16=True) == "fp32"

