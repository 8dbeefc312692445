"""Notebook 04, section f: whiten's centring policies measured over calibration draws (torch side).

One method, three policies (factorize.CENTERINGS): "none" is SVD-LLM's whitening (the uncentred second moment, no
bias added), "all" centres every Linear's statistics and puts the mean's error into a bias (which bias-free Linears
gain and the budget counts), "except-v" centres every Linear but v_proj. For each calibration draw (disjoint sets
of training blocks; draw 0 is the notebook's own calibration set) every policy compresses every targeted block
Linear at each reduction, and is scored on both held-out sets (English blocks, WordNet chats) against the teacher
and, paired on the same sequences, against "none". `v_positions` looks for where centring v_proj loses: its
relative output error at the first position of each held-out block against the other positions, that position's
input norm, and the attention the later positions put on it (an attention sink, if most of it: then that one value
vector's error reaches every later position).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from ..data import lm_blocks
from ..models import count_params
from ..stats import paired_bootstrap
from ..train import lm_collator
from . import factorize as C
from .calibrate import calibrate

REFERENCE = "none"        # SVD-LLM's whitening: every other policy is compared with it
# the CompressionConfig fields section f's records depend on (not `whitening`: the default they choose)
DETERMINED_BY = ("model", "teacher_layers", "calib_corpus", "calib_blocks", "block", "eval_corpus", "eval_blocks",
                 "chats", "openorca_rows", "layers", "center_policies", "center_reductions")


def ranks_at(model, layers: str, reduction: float) -> dict[str, int]:
    """{path: rank} keeping 1 - reduction of every targeted block Linear's parameters."""
    return C.resolve_plan(model, [C.Target(("attention", "mlp"), layers, ratio=1 - reduction)])


def batches_of(blocks, size: int = 4) -> list[dict]:
    return [lm_collator([blocks[j] for j in range(i, min(i + size, len(blocks)))]) for i in range(0, len(blocks), size)]


def draw_stats(model, modules: dict, data: dict, cfg, draw: int, device: str = "cpu") -> dict:
    """Calibration statistics of `modules` on draw `draw`: the calibration split's blocks [draw * n, (draw + 1) * n),
    n = cfg.calib_blocks (disjoint from every other draw's; draw 0 is the notebook's own calibration set)."""
    n, block = cfg.calib_blocks, cfg.block
    blocks = lm_blocks(data["calib_split"], data["tok"], block, max_blocks=(draw + 1) * n)
    if len(blocks) < (draw + 1) * n:
        raise ValueError(f"calibration draw {draw} needs {(draw + 1) * n} training blocks of {block} tokens; the "
                         f"split has {len(blocks)}: lower center_draws or calib_blocks")
    return calibrate(model, batches_of(blocks.select(range(draw * n, (draw + 1) * n))), modules, device)


class Recalibrated(Mapping):
    """The notebook's own calibration statistics (draw 0) after release_calibration: computed again, exactly as
    prepare computed them (the same batches, modules and device), on first use; nothing is held until then."""

    def __init__(self, model, batches, device: str):
        self._args, self._stats = (model, batches, device), None

    @property
    def stats(self) -> dict:
        if self._stats is None:
            model, batches, device = self._args
            self._stats = calibrate(model, batches, C.block_modules(model), device)
        return self._stats

    def __getitem__(self, key):
        return self.stats[key]

    def __iter__(self):
        return iter(self.stats)

    def __len__(self):
        return len(self.stats)


def release_calibration(data: dict, device: str = "cpu") -> None:
    """Free the notebook's own float64 statistics (data["stats"]: 61 GiB for Mistral-7B) so that another draw's can
    take their place: a later reader gets them recomputed (Recalibrated). Section f is the notebook's last reader."""
    if not isinstance(data.get("stats"), Recalibrated):
        data["stats"] = Recalibrated(data["model"], data["calib_batches"], device)


def measure_draw(data: dict, cfg, draw: int, evaluate, device: str = "cpu") -> dict:
    """Section f's result for calibration draw `draw` (data: the notebook's prepared teacher, sets and statistics).
    One draw's statistics in host memory at a time: a draw after the first releases the notebook's own (draw 0's,
    measured first) before computing its own, and frees those when it returns (compression.plan counts one draw)."""
    model = data["model"]
    if draw == 0:
        stats = data["stats"]
    else:
        release_calibration(data, device)
        stats = draw_stats(model, C.block_modules(model), data, cfg, draw, device)
    res = measure(model, C.block_modules(model, layers=cfg.layers), stats, cfg, data, evaluate)
    del stats
    return {**res, "metrics": {"draw": draw, **res["metrics"]}}


def measure(model, modules: dict, stats: dict, cfg, data: dict, evaluate) -> dict:
    """Section f's result for one draw: the policies' rows (policy_rows) and v_proj's per-position errors at the
    first reduction (v_positions)."""
    measured = measure_policies(model, modules, stats, cfg.center_policies, cfg.center_reductions, cfg.layers,
                                evaluate)
    red = cfg.center_reductions[0]
    pos = v_positions(model, modules, stats, ranks_at(model, cfg.layers, red), batches_of(data["held"]))
    return {"metrics": {"calib_tokens": next(iter(stats.values())).n, "v_positions_reduction": red},
            "tables": {"policies": policy_rows(measured, data["teacher"]), "v_positions": pos}}


def measure_policies(model, modules: dict, stats: dict, policies, reductions, layers: str, evaluate) -> dict:
    """{(policy, reduction): {"sets": {set name: lm_loss per-sequence dict}, "params": model parameters,
    "bias_params": biases the factors added}} for one calibration draw. `evaluate(model)` scores the model on the
    held-out sets."""
    out = {}
    for policy in policies:
        made = C.Bases(modules, "whiten", stats, center=policy)
        for red in reductions:
            new = {p: made.module(p, r) for p, r in ranks_at(model, layers, red).items()}
            added = sum(m.up.bias.numel() for p, m in new.items() if m.up.bias is not None and modules[p].bias is None)
            with C.swapped(model, new):
                out[(policy, red)] = {"sets": evaluate(model), "params": count_params(model), "bias_params": added}
        del made
    return out


def policy_rows(measured: dict, teacher: dict) -> list[dict]:
    """One row per (policy, reduction, held-out set): loss, the increase over the teacher and the difference from
    "none" on the same sequences, each with its 95% paired bootstrap interval over sequences."""
    rows = []
    for (policy, red), m in measured.items():
        ref = measured.get((REFERENCE, red))
        for name, res in m["sets"].items():
            t = paired_bootstrap(teacher[name], res)
            d = paired_bootstrap(ref["sets"][name], res) if ref is not None else None
            rows.append({"policy": policy, "reduction": red, "set": name, "loss": res["loss"],
                         "teacher_loss": teacher[name]["loss"], "delta": t["delta"], "lo": t["lo"], "hi": t["hi"],
                         "vs_none": d and d["delta"], "vs_none_lo": d and d["lo"], "vs_none_hi": d and d["hi"],
                         "sequences": t["sequences"], "tokens": t["tokens"], "params": m["params"],
                         "bias_params": m["bias_params"]})
    return rows


def v_positions(model, modules: dict, stats: dict, ranks: dict, batches, policies=("none", "all")) -> list[dict]:
    """Per layer: v_proj's relative output error sum ||f(x) - W x||^2 / sum ||W x||^2 at the first position of each
    held-out block and at the others, for each policy's factors at `ranks`; the first position's mean input norm
    over the others'; and the attention mass the later queries put on the first position (mean over heads and
    queries; `uniform_mass` is what attending uniformly over the causal prefix would give). One teacher pass with
    eager attention (its probabilities are returned only there); the factors are evaluated beside it in hooks."""
    vs = {p: m for p, m in modules.items() if p.endswith(C.MODULES["v"])}
    made = {pol: C.Bases(vs, "whiten", {p: stats[p] for p in vs}, center=pol) for pol in policies}
    facs = {pol: {p: b.module(p, ranks[p]) for p in vs} for pol, b in made.items()}
    z = lambda: torch.zeros(2, dtype=torch.float64)  # noqa: E731  (first position, the rest)
    acc = {p: {"sig": z(), "norm": z(), "n": z(), "mass": z(), **{pol: z() for pol in policies}} for p in vs}

    def v_hook(path):
        def fn(mod, args, out):
            x, y = args[0].float(), out.float()                          # (B, T, in), (B, T, out)
            a = acc[path]
            for i, sl in enumerate((slice(0, 1), slice(1, None))):
                a["sig"][i] += float((y[:, sl] ** 2).sum())
                a["norm"][i] += float(x[:, sl].norm(dim=-1).sum())
                a["n"][i] += x.shape[0] * x[:, sl].shape[1]
                for pol in policies:
                    a[pol][i] += float(((facs[pol][path](x[:, sl]) - y[:, sl]) ** 2).sum())
        return fn

    def attn_hook(path):
        def fn(mod, args, out):
            probs = out[1]                                               # (B, heads, T, T), eager attention
            if probs is not None:
                acc[path]["mass"] += torch.tensor([float(probs[:, :, 1:, 0].mean()), 1.0], dtype=torch.float64)
        return fn

    attn_of = {p: model.get_submodule(p.rsplit(".", 1)[0]) for p in vs}   # the v_proj's attention module
    handles = [m.register_forward_hook(v_hook(p)) for p, m in vs.items()]
    handles += [m.register_forward_hook(attn_hook(p)) for p, m in attn_of.items()]
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    tokens = 0
    try:
        with torch.no_grad():
            for batch in batches:
                ids = batch["input_ids"]
                tokens = ids.shape[1]
                model(input_ids=ids.to(next(model.parameters()).device))
    finally:
        model.set_attn_implementation(before)
        for h in handles:
            h.remove()
    uniform = sum(1 / (t + 1) for t in range(1, tokens)) / max(tokens - 1, 1)
    rows = []
    for path, a in acc.items():
        mean_norm = a["norm"] / a["n"]
        row = {"layer": int(path.split(".layers.")[1].split(".")[0]),
               "first_norm_over_rest": float(mean_norm[0] / mean_norm[1]),
               "first_position_mass": float(a["mass"][0] / a["mass"][1]) if a["mass"][1] else None,
               "uniform_mass": uniform}
        for pol in policies:
            row[f"{pol}_first"] = float(a[pol][0] / a["sig"][0])
            row[f"{pol}_rest"] = float(a[pol][1] / a["sig"][1])
        rows.append(row)
    return rows
