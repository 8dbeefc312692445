"""The measurements behind notebook 04's sections a-e (torch): each section's result on the prepared teacher, and
the held-out losses against the teacher they share. helpers.compression.study records them; section f's are
helpers.compression.whitening.

  a. measure_exp3         one middle layer's MLP at rank exp3_rank by plain SVD, teacher vs student per set
  b. measure_sweep        every (method, group, reduction) on held-out English
  c. measure_fitting      closed form vs the seed's Adam fit on captured inputs; the one-prompt trap
  d. measure_sensitivity  one layer's attention or MLP at a time, plain SVD
  e. measure_healing      a short fine-tune of the compressed model's factors (or the teacher's, the control)
"""
from __future__ import annotations

import copy
import time

import torch

from ..data import lm_blocks
from ..evaluate import lm_loss
from ..layers import parse_layers
from ..models import count_params
from ..stats import paired_bootstrap
from ..train import train_causal_lm
from . import factorize as C
from .calibrate import InputStats, capture_inputs
from .config import CompressionConfig
from .data import OPENORCA_SET


block_modules = C.block_modules        # the study's sections select their Linears by it (as section f does)


def bases(data, cfg: CompressionConfig, method: str, stats: dict | None = None) -> "C.Bases":
    """Decompositions of the block Linears in cfg.layers, computed once per method and kept in `data` (svd and
    whiten are reused by several sections; others are built on demand and not kept)."""

    memo = data.setdefault("bases", {})
    if method in memo:
        return memo[method]
    made = C.Bases(block_modules(data["model"], layers=cfg.layers), method, stats, center=cfg.whitening)
    if method in ("svd", "whiten"):
        memo[method] = made
    return made


def middle_layer(model, cfg: CompressionConfig) -> int:
    n = model.config.num_hidden_layers
    return cfg.exp3_layer if cfg.exp3_layer is not None else round(17 / 32 * n)


def heldout_losses(model, data, n_blocks: int | None = None, device: str = "cpu") -> dict:
    held = data["held"] if n_blocks is None else data["held"].select(range(min(n_blocks, len(data["held"]))))
    out = {"english": lm_loss(model, held, batch_size=4, device=device, per_sequence=True)}
    if data["chats"] and n_blocks is None:
        out["chats"] = lm_loss(model, data["chats"], batch_size=8, device=device, per_sequence=True)
    if data.get("openorca") and n_blocks is None:
        out[OPENORCA_SET] = lm_loss(model, data["openorca"], batch_size=4, device=device, per_sequence=True)
    return out


def teacher_eval(data, n_blocks: int, device: str = "cpu") -> dict:
    """The teacher's English evaluation (loss and per-sequence sums) on the first n_blocks held-out blocks, computed
    once per size and kept in `data` (the sweep, the sensitivity map and the healing all compare against it)."""
    memo = data.setdefault("teacher_eval", {})
    if n_blocks not in memo:
        memo[n_blocks] = heldout_losses(data["model"], data, n_blocks, device)["english"]
    return memo[n_blocks]


def teacher_loss(data, n_blocks: int, device: str = "cpu") -> float:
    return teacher_eval(data, n_blocks, device)["loss"]


def versus_teacher(data, model, n_blocks: int, device: str = "cpu") -> dict:
    """A student's held-out English loss against the teacher's on the same blocks: the difference with a paired
    bootstrap interval over sequences (delta, lo, hi) and "tie" when the interval contains 0."""

    student = heldout_losses(model, data, n_blocks, device)["english"]
    b = paired_bootstrap(teacher_eval(data, n_blocks, device), student)
    return {"loss": student["loss"], "delta": b["delta"], "lo": b["lo"], "hi": b["hi"],
            "tie": bool(b["lo"] <= 0 <= b["hi"])}


def compare(teacher: dict, student: dict) -> dict:
    """Teacher vs student per evaluation set: losses, perplexities and the bootstrap CI of the difference."""

    out = {}
    for name in teacher:
        b = paired_bootstrap(teacher[name], student[name])
        out[name] = {"teacher_loss": teacher[name]["loss"], "student_loss": student[name]["loss"],
                     "teacher_ppl": teacher[name]["ppl"], "student_ppl": student[name]["ppl"], **b}
    return out


# ------------------------------------------------------------------------------------------------ a. exp 3
def measure_exp3(data, cfg: CompressionConfig, teacher: dict, device: str = "cpu") -> dict:
    model = data["model"]
    layer = middle_layer(model, cfg)
    mods = block_modules(model, ("mlp",), str(layer))
    bases = C.Bases(mods, "svd")
    with C.swapped(model, {p: bases.module(p, cfg.exp3_rank) for p in mods}):
        n_params = count_params(model)
        student = heldout_losses(model, data, device=device)
    res = compare(teacher, student)
    metrics = {f"{k}.{m}": v for k, d in res.items() for m, v in d.items()}
    metrics.update(layer=layer, rank=cfg.exp3_rank, params_after=n_params)
    return {"metrics": metrics, "table": res, "params": {"total_after": n_params}}


# ------------------------------------------------------------------------------------------------ b. sweep
def measure_sweep(data, cfg: CompressionConfig, stats: dict, device: str = "cpu") -> dict:
    """Loss on held-out English for every (method, group, reduction); the reduction is of the targeted block
    Linears' parameters (each matrix keeps 1 - reduction of its parameters)."""

    model = data["model"]
    base = teacher_loss(data, cfg.sweep_eval_blocks, device)
    total = count_params(model)
    rows = []
    mods = block_modules(model, layers=cfg.layers)
    for method in cfg.methods:
        made = bases(data, cfg, method, stats)
        for group in cfg.groups:
            names = ("attention", "mlp") if group == "both" else (group,)
            for red in cfg.reductions:
                ranks = C.resolve_plan(model, [C.Target(names, cfg.layers, ratio=1 - red)])
                new = {p: made.module(p, r) for p, r in ranks.items()}
                removed = sum(mods[p].weight.numel() - count_params(new[p]) for p in new)
                with C.swapped(model, new):
                    v = versus_teacher(data, model, cfg.sweep_eval_blocks, device)
                rows.append({"method": method, "group": group, "reduction": red, "params": total - removed,
                             "params_removed": removed, **v})
    return {"rows": rows, "teacher_loss": base, "teacher_params": total}


# ------------------------------------------------------------------------------------------------ c. fitting
def measure_fitting(data, cfg: CompressionConfig, device: str = "cpu") -> dict:
    """Closed form (whiten) vs the seed's Adam fit on the same captured inputs of one middle-layer Linear, at the
    same rank: held-out MSE and wall time; then the one-prompt trap (rank above the number of tokens)."""

    model = data["model"]
    layer = middle_layer(model, cfg)
    path = f"model.layers.{layer}.{C.MODULES[cfg.fit_module]}"
    lin = model.get_submodule(path)
    x_cal = capture_inputs(model, data["calib_batches"], path, cfg.fit_tokens, device).to(torch.float32)
    held_batches = [{"input_ids": torch.tensor([data["held"][i]["input_ids"]])} for i in range(len(data["held"]))]
    x_held = capture_inputs(model, held_batches, path, cfg.fit_tokens, device)
    lin32 = torch.nn.Linear(lin.in_features, lin.out_features, bias=lin.bias is not None)
    lin32.load_state_dict({k: v.float() for k, v in lin.state_dict().items()})
    stats = InputStats(lin.in_features)
    stats.update(x_cal)
    t0 = time.perf_counter()
    closed = C.factorize(lin32, cfg.fit_rank, "whiten", stats, center=C.centers(cfg.whitening, path))
    closed_s = time.perf_counter() - t0
    adam = C.fit_adam(lin32, x_cal, cfg.fit_rank, steps=max(cfg.fit_steps), lr=cfg.fit_lr,
                      report_at=tuple(cfg.fit_steps), held_out=x_held)
    svd = C.factorize(lin32, cfg.fit_rank, "svd")
    out = {"path": path, "rank": cfg.fit_rank, "calib_tokens": x_cal.shape[0], "heldout_tokens": x_held.shape[0],
           "closed_form": {"wall_s": closed_s, "calib_mse": C.output_mse(closed.module, lin32, x_cal),
                           "heldout_mse": C.output_mse(closed.module, lin32, x_held)},
           "svd": {"calib_mse": C.output_mse(svd.module, lin32, x_cal),
                   "heldout_mse": C.output_mse(svd.module, lin32, x_held)},
           "adam": adam["marks"], "adam_wall_s": adam["wall_s"]}
    # the trap: fit on one short "prompt" with a rank above its token count
    x_trap = x_cal[: cfg.trap_tokens]
    st = InputStats(lin.in_features)
    st.update(x_trap)
    trap = C.factorize(lin32, cfg.trap_rank, "whiten", st, center=False)
    full = C.factorize(lin32, cfg.trap_rank, "whiten", stats, center=C.centers(cfg.whitening, path))
    out["trap"] = {"tokens": cfg.trap_tokens, "rank": cfg.trap_rank, "warnings": trap.warnings,
                   "calib_mse": C.output_mse(trap.module, lin32, x_trap),
                   "heldout_mse": C.output_mse(trap.module, lin32, x_held),
                   "full_calib_heldout_mse": C.output_mse(full.module, lin32, x_held),
                   "signal": float((lin32(x_held).detach() ** 2).mean())}
    return out


# ------------------------------------------------------------------------------------------------ d. sensitivity
def measure_sensitivity(data, cfg: CompressionConfig, device: str = "cpu") -> dict:
    """Loss increase on held-out English when one layer's attention (q, k, v, o) or MLP (gate, up, down) alone is
    replaced by plain-SVD factors of rank sens_rank (the notes' method and rank)."""

    model = data["model"]
    base = teacher_loss(data, cfg.sens_eval_blocks, device)

    made = bases(data, cfg, "svd")
    grid = {"attention": [], "mlp": []}
    layers = parse_layers(cfg.layers, model.config.num_hidden_layers)
    for group in grid:
        for layer in layers:
            mods = block_modules(model, (group,), str(layer))
            with C.swapped(model, {p: made.module(p, cfg.sens_rank) for p in mods}):
                grid[group].append(versus_teacher(data, model, cfg.sens_eval_blocks, device))
    return {"delta": grid, "layers": layers, "teacher_loss": base, "rank": cfg.sens_rank}


# ------------------------------------------------------------------------------------------------ e. healing
def measure_healing(data, cfg: CompressionConfig, stats: dict, device: str = "cpu", seed: int = 0,
                    control: bool = False) -> dict:
    """Compress every block Linear by heal_reduction with heal_method, then fine-tune only the low-rank factors on
    the calibration (train) text for a few steps: how much of the loss increase comes back?

    control=True is the control arm: the uncompressed teacher, the same Linears made trainable (full rank), the same
    tokens, steps and seed. Its gain is what fine-tuning on this text does without any compression (domain
    adaptation), so only the student's gain beyond it counts as recovery."""
    base = teacher_loss(data, cfg.sweep_eval_blocks, device)
    student = copy.deepcopy(data["model"])
    ranks = C.resolve_plan(student, [C.Target(("attention", "mlp"), cfg.layers, ratio=1 - cfg.heal_reduction)])
    params_before = count_params(student)
    if control:
        for path in ranks:
            student.get_submodule(path).weight.requires_grad_(True)
    else:
        made = bases(data, cfg, cfg.heal_method, stats)
        C.replace(student, {p: made.module(p, r) for p, r in ranks.items()})
    params_after = count_params(student)
    # the control starts as the teacher itself: its loss is the teacher's, already evaluated
    before = base if control else heldout_losses(student, data, cfg.sweep_eval_blocks, device)["english"]["loss"]
    train = lm_blocks(data["calib_split"], data["tok"], cfg.heal_block,
                      max_blocks=cfg.heal.max_steps * cfg.heal.batch_size * cfg.heal.grad_accum)
    teacher = data["model"]
    if str(device).startswith("cuda"):      # the teacher is not needed while healing: give its GPU memory to AdamW
        teacher.to("cpu")
    try:
        res = train_causal_lm(student, train, None, cfg.heal, device=device, seed=seed)
    finally:
        teacher.to(device)
    after = heldout_losses(res["model"], data, cfg.sweep_eval_blocks, device)["english"]["loss"]
    trainable = count_params(student, trainable_only=True)
    return {"metrics": {"teacher_loss": base, "compressed_loss": before, "healed_loss": after,
                        "recovered_fraction": (before - after) / max(before - base, 1e-9) if not control else None,
                        "control": control, "params_before": params_before, "params_after": params_after,
                        "trainable": trainable, "steps": res["metrics"]["steps"],
                        "tokens": res["metrics"]["tokens"]},
            "curves": {"train_loss": res["curves"]["train_loss"]}, "provenance": res["provenance"]}
