"""The in-context-learning training loop (seed 002's family, usable by any model with the looped interface):
a typed training config with curricula, fresh prompts every step, the fixed test set at the final curriculum
setting, and the evaluation of a trained model (error per prompt and k, error against inference loops) and of the
task's baselines on the same prompts.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import torch

from ..models import LoopedConfig, count_params
from . import tasks as icl
from .model import LoopedTransformer


def fixed(v: int) -> icl.Schedule:
    """A curriculum that stays at v."""
    return icl.Schedule(v, v, 0, 1)


@dataclass
class ICLTrainConfig:
    task: str = "linear_regression"
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-4
    warmup: int = 0
    time_budget_s: float | None = None
    dims: icl.Schedule = field(default_factory=lambda: icl.Schedule(5, 20, 1, 5000))
    points: icl.Schedule = field(default_factory=lambda: icl.Schedule(11, 41, 2, 5000))
    loops: icl.Schedule = field(default_factory=lambda: icl.Schedule(15, 30, 2, 500))
    test_prompts: int = 1280
    log_every: int = 50

    def __post_init__(self):
        for name in ("dims", "points", "loops"):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, icl.Schedule(**getattr(self, name)))
        if self.task not in icl.TASKS:
            raise ValueError(f"unknown task '{self.task}'; allowed: {', '.join(icl.TASKS)}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        if self.loops.end > 100 and self.loops.start == 20:
            warnings.warn(f"loops {self.loops.start} -> {self.loops.end}: the seed config's placeholder, which both "
                          "original run scripts override (b = 30 for linear regression)", stacklevel=2)


TEST_SEED = 1234        # the reported test prompts; a validation set for choosing settings is drawn with another


def fixed_test_set(cfg: ICLTrainConfig, n_dims: int, at: str = "final", seed: int = TEST_SEED):
    """A fixed test set (xs, ys, active dims) at the curriculum's final (or, labelled, start) setting; another
    `seed` draws a validation set of the same task and size."""

    g = torch.Generator().manual_seed(seed)
    active = cfg.dims.end if at == "final" else cfg.dims.start
    n = cfg.points.end if at == "final" else cfg.points.start
    xs = icl.sample_xs(cfg.test_prompts, n, n_dims, active, g)
    return xs, icl.sample_task(cfg.task, xs, active, g), active


def train_model(mcfg: LoopedConfig, tcfg: ICLTrainConfig, seed: int = 0, device: str = "cpu") -> dict:
    """Adam on fresh prompts every step with the curricula; returns the model, curves, steps/s and wall time.
    A run is defined by tcfg.steps; tcfg.time_budget_s is a safety stop, and a run it cut short says so
    (stopped_by_budget: True; a study records it as partial)."""

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = LoopedTransformer(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(tcfg.warmup, 1)))
    curve, t0, step, cut = {}, time.perf_counter(), 0, False
    for step in range(1, tcfg.steps + 1):
        active, n = tcfg.dims(step - 1), tcfg.points(step - 1)           # curricula count steps from 0
        scale = icl.error_scale(tcfg.task, active)
        xs = icl.sample_xs(tcfg.batch_size, n, mcfg.n_dims, active, g)
        ys = icl.sample_task(tcfg.task, xs, active, g)
        b = tcfg.loops(step - 1) if mcfg.looped else 1
        preds = model(xs.to(device), ys.to(device), loops=b, window=min(mcfg.window, b))
        loss = sum(((p - ys.to(device)) ** 2).mean() for p in preds) / len(preds) / scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % tcfg.log_every == 0 or step == 1:
            curve[step] = loss.item()
        if tcfg.time_budget_s is not None and time.perf_counter() - t0 >= tcfg.time_budget_s:
            cut = step < tcfg.steps
            break
    wall = time.perf_counter() - t0
    return {"model": model, "curve": curve, "steps": step, "wall_s": wall, "steps_per_s": step / wall,
            "params": count_params(model), "stopped_by_budget": cut}


def errors_vs_k(model, xs, ys, scale: float, loops: int | None = None):
    """Normalized squared error per prompt and position (P, n), numpy, of the model's last-loop prediction (scale:
    icl.error_scale of the task)."""

    model.eval()
    device = next(model.parameters()).device          # test prompts are made on the CPU; the model may be on a GPU
    with torch.no_grad():
        pred = model(xs.to(device), ys.to(device), loops=loops, window=1)[-1].cpu()
    return icl.normalized_sq_error(pred, ys.cpu(), scale).numpy()


def baseline_errors(task: str, xs, ys, active: int, n_prompts: int) -> dict:
    """{baseline: errors (P, n)} of the task's baselines and of predicting zero, on the first n_prompts prompts."""
    out, scale = {}, icl.error_scale(task, active)
    for name in icl.TASK_BASELINES[task]:
        pred = icl.BASELINES[name](xs[:n_prompts], ys[:n_prompts])
        out[name] = icl.normalized_sq_error(pred, ys[:n_prompts], scale).numpy()
    out["zero"] = icl.normalized_sq_error(torch.zeros_like(ys[:n_prompts]), ys[:n_prompts], scale).numpy()
    return out


def errors_vs_loops(model, xs, ys, scale: float, loops: tuple, k: int) -> dict:
    """Error at k in-context examples against the number of inference loops: does the loop reach a fixed point?"""
    return {L: float(errors_vs_k(model, xs, ys, scale, loops=L)[:, k].mean()) for L in loops}
