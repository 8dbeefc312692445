"""In-context learning tasks, curricula and baselines (Garg et al. 2022), for the looped-transformer family.

Every task draws a fresh function per prompt: xs (B, n, d) ~ N(0, I) with the coordinates beyond the curriculum's
active dimensions set to zero, ys (B, n) = f(xs). Errors are squared errors divided by each task's own normalizer,
as the papers plot them (`error_scale`): the active dimensions for (noisy) linear regression and the 2-layer ReLU
net (predicting 0 scores ~1 on linear regression), the sparsity (3) for sparse linear regression, 1 for decision
trees. Noisy linear regression adds N(0, 0.1^2) noise, as the looped-transformer paper's code does.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import Lasso
from sklearn.tree import DecisionTreeRegressor

TASKS = ("linear_regression", "noisy_linear_regression", "sparse_linear_regression", "relu_2nn", "decision_tree")


def sample_xs(b: int, n: int, d: int, active: int, g: torch.Generator) -> torch.Tensor:
    xs = torch.randn(b, n, d, generator=g)
    xs[..., active:] = 0
    return xs


SPARSITY = 3
NOISE = 0.1


def error_scale(task: str, active: int) -> float:
    """What a task's squared error is divided by (the papers' plots): active dims; sparsity; 1 for trees."""
    return {"sparse_linear_regression": min(SPARSITY, active), "decision_tree": 1}.get(task, active)


def sample_task(task: str, xs: torch.Tensor, active: int, g: torch.Generator, noise: float = NOISE,
                sparsity: int = SPARSITY, hidden: int = 100, depth: int = 4) -> torch.Tensor:
    """ys (B, n) for a fresh random function per prompt."""

    if task not in TASKS:
        raise ValueError(f"unknown task '{task}'; allowed: {', '.join(TASKS)}")
    B, n, d = xs.shape
    if task in ("linear_regression", "noisy_linear_regression", "sparse_linear_regression"):
        w = torch.randn(B, d, 1, generator=g)
        w[:, active:] = 0
        if task == "sparse_linear_regression":
            keep = torch.zeros(B, d, 1)
            for i in range(B):
                keep[i, torch.randperm(active, generator=g)[: min(sparsity, active)]] = 1
            w = w * keep
        ys = (xs @ w)[..., 0]
        if task == "noisy_linear_regression":
            ys = ys + noise * torch.randn(B, n, generator=g)
        return ys
    if task == "relu_2nn":
        w1 = torch.randn(B, d, hidden, generator=g)
        w2 = torch.randn(B, hidden, 1, generator=g) * (2 / hidden) ** 0.5
        return (torch.relu(xs @ w1) @ w2)[..., 0]
    # decision tree of the given depth: node i tests coordinate feat[i] > 0, leaves hold N(0, 1) values
    n_nodes = 2 ** depth - 1
    feat = torch.randint(0, active, (B, n_nodes), generator=g)
    leaves = torch.randn(B, 2 ** depth, generator=g)
    idx = torch.zeros(B, n, dtype=torch.long)
    for _ in range(depth):
        go_right = torch.gather(xs, 2, torch.gather(feat, 1, idx)[..., None])[..., 0] > 0
        idx = 2 * idx + 1 + go_right.long()
    return torch.gather(leaves, 1, idx - n_nodes)


@dataclass
class Schedule:
    """start -> end by `inc` every `interval` steps: value(step) = min(end, start + inc * (step // interval)) for the
    0-based step (or max(...) for a decreasing schedule): the first increment applies at step `interval`, as in Garg
    et al.'s curriculum, which updates after each step."""

    start: int
    end: int
    inc: int = 1
    interval: int = 1000

    def __post_init__(self):
        if self.interval < 1:
            raise ValueError(f"curriculum interval must be >= 1, got {self.interval}")
        if self.inc == 0 and self.start != self.end:
            raise ValueError(f"curriculum inc 0 never gets from {self.start} to {self.end}")
        if self.inc and (self.end - self.start) * self.inc < 0:
            raise ValueError(f"curriculum inc {self.inc} moves away from end {self.end} (start {self.start})")

    def __call__(self, step: int) -> int:
        v = self.start + self.inc * (step // self.interval)
        return min(self.end, v) if self.inc >= 0 else max(self.end, v)

    @property
    def reached_at(self) -> int:
        """The first 0-based step at the end value."""
        return 0 if self.start == self.end else -(-(self.end - self.start) // self.inc) * self.interval

    def scaled(self, factor: float) -> "Schedule":
        """The same steps of value, `factor` times as often apart (at least every step)."""
        return dataclasses.replace(self, interval=max(1, round(self.interval * factor)))


def normalized_sq_error(pred: torch.Tensor, ys: torch.Tensor, scale: float) -> torch.Tensor:
    """Squared error divided by the task's scale (error_scale)."""
    return (pred - ys) ** 2 / scale


# ------------------------------------------------------------------------------------------------ baselines
def expected_averaging_error(d: int, k: int) -> float:
    """E[(x.(w_hat - w))^2] / d of averaging (w_hat = mean of y_i x_i over k pairs) for noise-free linear regression
    with x, w ~ N(0, I_d): E||w_hat - w||^2 = (E[y^2 |x|^2] - E|w|^2) / k = ((d + 2) d - d) / k, so (d + 1) / k."""
    if k < 1 or d < 1:
        raise ValueError(f"need k >= 1 and d >= 1, got k = {k}, d = {d}")
    return (d + 1) / k


def least_squares(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Prediction at each position k from the first k pairs by the minimum-norm least-squares fit (0 at k = 0)."""

    B, n, d = xs.shape
    preds = torch.zeros(B, n)
    for k in range(1, n):
        w = torch.linalg.pinv(xs[:, :k].double()) @ ys[:, :k, None].double()       # (B, d, 1)
        preds[:, k] = (xs[:, k:k + 1].double() @ w)[:, 0, 0].float()
    return preds


def averaging(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """w = mean_i y_i x_i over the first k pairs (a one-step gradient estimate)."""

    B, n, d = xs.shape
    cum = torch.cumsum(ys[..., None] * xs, dim=1)                                   # (B, n, d)
    preds = torch.zeros(B, n)
    for k in range(1, n):
        preds[:, k] = (xs[:, k] * cum[:, k - 1] / k).sum(-1)
    return preds


def nearest_neighbours(xs: torch.Tensor, ys: torch.Tensor, k_nn: int = 3) -> torch.Tensor:
    B, n, d = xs.shape
    preds = torch.zeros(B, n)
    for k in range(1, n):
        dist = ((xs[:, :k] - xs[:, k:k + 1]) ** 2).sum(-1)                          # (B, k)
        idx = dist.topk(min(k_nn, k), largest=False).indices
        preds[:, k] = torch.gather(ys[:, :k], 1, idx).mean(1)
    return preds


def _per_prompt(fit_predict, xs, ys, start: int = 1):
    B, n, _ = xs.shape
    preds = torch.zeros(B, n)
    for i in range(B):
        x, y = xs[i].numpy(), ys[i].numpy()
        for k in range(start, n):
            preds[i, k] = float(fit_predict(x[:k], y[:k], x[k:k + 1]))
    return preds


def lasso(xs, ys, alpha: float = 0.01):
    # max_iter as in the papers' code (scikit-learn stops silently at its limit otherwise)
    return _per_prompt(lambda x, y, q: Lasso(alpha=alpha, fit_intercept=False, max_iter=100_000).fit(x, y)
                       .predict(q)[0], xs, ys)


def greedy_tree(xs, ys, max_depth: int = 4):
    """A greedy regression tree per prompt, seeded (its random feature order breaks ties): reproducible."""
    return _per_prompt(lambda x, y, q: DecisionTreeRegressor(max_depth=max_depth, random_state=0).fit(x, y)
                       .predict(q)[0], xs, ys)


def relu_net(xs, ys, hidden: int = 100, steps: int = 300, lr: float = 5e-3):
    """A 2-layer ReLU net fitted by Adam to the first k pairs of each prompt (all k in one batched fit)."""

    B, n, d = xs.shape
    preds = torch.zeros(B, n)
    g = torch.Generator().manual_seed(0)
    for k in range(1, n):
        w1 = (torch.randn(B, d, hidden, generator=g) / d ** 0.5).requires_grad_()
        w2 = (torch.randn(B, hidden, 1, generator=g) / hidden ** 0.5).requires_grad_()
        opt = torch.optim.Adam([w1, w2], lr=lr)
        for _ in range(steps):
            loss = ((torch.relu(xs[:, :k] @ w1) @ w2)[..., 0] - ys[:, :k]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            preds[:, k] = (torch.relu(xs[:, k:k + 1] @ w1) @ w2)[:, 0, 0]
    return preds


BASELINES = {"least_squares": least_squares, "averaging": averaging, "3-nn": nearest_neighbours,
             "lasso": lasso, "greedy_tree": greedy_tree, "relu_net": relu_net}
TASK_BASELINES = {
    "linear_regression": ("least_squares", "averaging", "3-nn"),
    "noisy_linear_regression": ("least_squares", "averaging", "3-nn"),
    "sparse_linear_regression": ("least_squares", "averaging", "3-nn", "lasso"),
    "relu_2nn": ("least_squares", "3-nn", "relu_net"),
    "decision_tree": ("least_squares", "3-nn", "greedy_tree"),
}


def bootstrap_band(errors: np.ndarray, n_boot: int = 1000, level: float = 0.90, seed: int = 0):
    """Mean with a bootstrap `level` band, per position: (mean, lo, hi), each (n,).

    errors (P, n): one model over P test prompts; resampled over prompts.
    errors (S, P, n): S training seeds on the same P prompts; each replicate resamples the seeds and the prompts, so
    the band holds both the training-seed and the test-prompt variation."""

    rng = np.random.default_rng(seed)
    if errors.ndim == 2:
        errors = errors[None]
    S, P, _ = errors.shape
    per_seed = np.empty((n_boot, S, errors.shape[2]))
    for b in range(n_boot):
        idx = rng.integers(0, P, size=P)
        per_seed[b] = errors[:, idx].mean(1)                                        # (S, n)
    seeds = rng.integers(0, S, size=(n_boot, S))
    boots = np.take_along_axis(per_seed, seeds[..., None], axis=1).mean(1)          # (n_boot, n)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    return errors.mean((0, 1)), lo, hi
