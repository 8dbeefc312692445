"""Low-rank compression of a pretrained model's Linears (seed 001): the factorizations of one Linear and of a model.

The calibration statistics they read come from helpers.compression.calibrate.

Factorizations of nn.Linear(in, out) at rank r, each returning the shared LowRankLinear:
  svd     plain truncated SVD of the weight (ignores the data)
  whiten  the closed-form minimiser of the output error on the calibration inputs: with C the input second moment
          and S S^T = C, take V_r = top-r right singular vectors of S^T W (= those of X W), then W* = W V_r V_r^T.
          `center` picks, per Linear, which second moment: uncentred ("none": SVD-LLM's whitening, the optimum of
          ||X W - X W*||, no bias added) or centred (C the covariance; the mean's error goes into a bias
          b* = b + (W - W*)^T mu, which a bias-free Linear gains and the budget counts: the optimum of the error
          with a free bias, not SVD-LLM's). "all" centres every Linear; "except-v" every one but v_proj, whose
          centred factors lose at the first position of each sequence (an attention sink: notebook 04, section f,
          measures all three). No inverse is needed, so a singular C is fine; a relative ridge `jitter` is added
          and reported.
  scaled  ASVD-style: diagonal scaling s_i = E|x_i|^alpha, W* = S^-1 [S W]_r
Budgets: `param_budget` counts a plan on the `meta` device (no weights).

Conventions: math W is (in x out), torch stores weight = W^T (out x in); X is (n x in).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers import parse_layers
from ..lowrank import LowRankLinear, check_rank
from ..models import FACTORIZATIONS, LLAMA_GROUPS, LLAMA_LINEARS, count_params, from_config
from .calibrate import InputStats

METHODS = FACTORIZATIONS
# whiten's centring policies (module docstring); True / False are "all" / "none"
CENTERINGS = ("none", "all", "except-v")
# the one default of `factorize` and `Bases` (and of CompressionConfig.whitening): section f's choice, the policy
# every committed notebook-04 record used. A lone Linear (`factorize`) has no path, so it is never a v_proj: there
# "except-v" centres, as "all" (True) does
DEFAULT_CENTERING = "except-v"


def centers(policy: str | bool, path: str) -> bool:
    """Whether whiten centres the statistics of the Linear at `path` under `policy` (one of CENTERINGS)."""
    if policy is True or policy is False:
        return policy
    if policy not in CENTERINGS:
        raise ValueError(f"unknown centring '{policy}'; allowed: {', '.join(CENTERINGS)} (or True / False)")
    return policy == "all" or (policy == "except-v" and not path.endswith(LLAMA_LINEARS["v"]))


# ------------------------------------------------------------------------------------------------ factorizations
@dataclass
class Factorization:
    module: LowRankLinear
    method: str
    rank: int
    jitter: float = 0.0
    warnings: list = field(default_factory=list)


def _factors(linear: nn.Linear, down: torch.Tensor, up: torch.Tensor, bias: torch.Tensor | None,
             rank: int, method: str) -> LowRankLinear:
    """LowRankLinear with down.weight (r, in), up.weight (out, r), a bias on the up factor only (no down bias: it
    would stay zero and still count in the budget)."""
    w = linear.weight
    has_bias = bias is not None
    with torch.device(w.device):
        new = LowRankLinear(linear.in_features, linear.out_features, rank, bias=has_bias, down_bias=False).to(w.dtype)
    with torch.no_grad():
        new.down.weight.copy_(down.to(w.dtype))
        new.up.weight.copy_(up.to(w.dtype))
        if has_bias:
            new.up.bias.copy_(bias.to(w.dtype))
    return new


def factorize(linear: nn.Linear, rank: int, method: str = "svd", stats: InputStats | None = None,
              jitter: float = 1e-6, alpha: float = 0.5, center: str | bool = DEFAULT_CENTERING) -> Factorization:
    """Rank-`rank` LowRankLinear replacing `linear` by `method` (see module docstring), with warnings for a rank
    that does not compress and for fewer calibration tokens than the rank. One module's case of `Bases`; a lone
    Linear has no path, so a policy centres it unless it is "none" (True: centred, False: SVD-LLM's)."""
    if method not in METHODS:
        raise ValueError(f"unknown factorization method '{method}'; allowed: {', '.join(METHODS)}")
    d_in, d_out = linear.in_features, linear.out_features
    check_rank(rank, d_in, d_out, "this Linear")
    warnings = []
    if rank * (d_in + d_out) >= d_in * d_out:
        warnings.append(f"rank {rank} does not compress a {d_in}x{d_out} Linear: a rank-r factorization has "
                        f"r*(in+out) = {rank * (d_in + d_out):,} parameters >= in*out = {d_in * d_out:,} "
                        f"(compressing needs r < {d_in * d_out / (d_in + d_out):.1f})")
    if method != "svd" and (stats is None or stats.n == 0):
        raise ValueError(f"method '{method}' needs calibration statistics of this Linear's inputs")
    if stats is not None and 0 < stats.n < rank:
        warnings.append(f"only {stats.n} calibration tokens for rank {rank}: with fewer tokens than the rank the "
                        "calibration set is fitted exactly and says nothing about held-out inputs (the exact-fit "
                        "trap of seed 001's one-prompt experiment)")
    made = Bases({"m": linear}, method, {"m": stats}, jitter=jitter, alpha=alpha, center=center, dtype=torch.float64)
    return Factorization(made.module("m", rank), method, rank, made.jitter.get("m", 0.0), warnings)


def output_mse(linear: nn.Module, ref: nn.Linear, x: torch.Tensor) -> float:
    """Mean squared difference of the two modules' outputs on inputs x (n, in)."""
    with torch.no_grad():
        return float(((linear(x) - ref(x)) ** 2).mean())


# ------------------------------------------------------------------------------------------------ plans
MODULES, GROUPS = LLAMA_LINEARS, LLAMA_GROUPS


@dataclass(frozen=True)
class Target:
    """Which Linears to factorize, and how small: `rank`, or `ratio` = kept fraction of each matrix's parameters
    (rank = floor(ratio * in*out / (in+out)))."""

    modules: tuple = ("attention", "mlp")
    layers: str = "all"
    rank: int | None = None
    ratio: float | None = None

    def __post_init__(self):
        names = [m for g in self.modules for m in GROUPS.get(g, (g,))]
        bad = [m for m in names if m not in MODULES]
        if bad:
            raise ValueError(f"unknown module(s) {bad}; allowed: {', '.join(MODULES)} or groups "
                             f"{', '.join(GROUPS)}")
        if (self.rank is None) == (self.ratio is None):
            raise ValueError("give exactly one of rank or ratio")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise ValueError(f"ratio must be in (0, 1), got {self.ratio}")

    def names(self) -> list[str]:
        return [m for g in self.modules for m in GROUPS.get(g, (g,))]


def resolve_plan(model, plan: list[Target]) -> dict[str, int]:
    """{module path: rank} for a Llama/Mistral-style model; unknown layers or a non-compressing rank raise."""

    n_layers = model.config.num_hidden_layers
    out = {}
    for t in plan:
        for short in t.names():
            paths = ["lm_head"] if short == "lm_head" else [
                f"model.layers.{i}.{MODULES[short]}" for i in parse_layers(t.layers, n_layers)]
            for path in paths:
                lin = model.get_submodule(path)
                limit = lin.in_features * lin.out_features / (lin.in_features + lin.out_features)
                r = t.rank if t.rank is not None else int(t.ratio * limit)
                if r >= limit:
                    raise ValueError(f"rank {r} does not compress {path} ({lin.in_features}x{lin.out_features}): "
                                     f"it needs rank < {limit:.1f}")
                check_rank(r, lin.in_features, lin.out_features, path)
                if path in out:
                    raise ValueError(f"{path} is named twice in the plan")
                out[path] = r
    return out


def block_modules(model, groups=("attention", "mlp"), layers: str = "all") -> dict[str, nn.Linear]:
    """{path: Linear} of the block Linears of `groups` in `layers` (every one by default)."""
    return {p: model.get_submodule(p) for p in resolve_plan(model, [Target(tuple(groups), layers, rank=1)])}


def _set(model, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def compress_model(model, plan: list[Target], method: str = "svd", stats: dict | None = None, **kw) -> dict:
    """Replace every Linear the plan selects by its factorization (in place). Returns exact parameter counts before
    and after, the ranks, the ridge jitter used per module and any warnings."""
    ranks = resolve_plan(model, plan)
    before = count_params(model)
    jitter, warns = {}, []
    for path, r in ranks.items():
        lin = model.get_submodule(path)
        if lin.weight.device.type == "meta":
            with torch.device("meta"):
                new = LowRankLinear(lin.in_features, lin.out_features, r, bias=lin.bias is not None, down_bias=False)
            _set(model, path, new)
            continue
        f = factorize(lin, r, method, None if stats is None else stats.get(path), **kw)
        _set(model, path, f.module)
        jitter[path] = f.jitter
        warns += [f"{path}: {w}" for w in f.warnings]
    after = count_params(model)
    return {"params_before": before, "params_after": after, "ranks": ranks, "jitter": jitter, "warnings": warns}


def param_budget(config, plan: list[Target]) -> dict:
    """Exact parameter counts of a plan on a model built on the meta device (seconds, no memory)."""

    model = from_config(config, device="meta")
    return compress_model(model, plan)


# ------------------------------------------------------------------------------------------------ rank sweeps
class Bases:
    """Per-module decompositions computed once, so that any rank is a cheap truncation (sweeps over ranks and
    methods would otherwise redo an SVD per point). Decompositions run on the weights' device; with `offload`
    (default: when the weights are on a GPU) the kept factors move to the CPU, so a 7B model's bases (about 22 GB
    for whiten, 36 GB for svd/scaled in float32) do not sit beside the model on the GPU. Free it when a method is
    done."""

    def __init__(self, modules: dict[str, nn.Linear], method: str, stats: dict | None = None, jitter: float = 1e-6,
                 alpha: float = 0.5, center: str | bool = DEFAULT_CENTERING, dtype: torch.dtype = torch.float32,
                 offload: bool | None = None):
        if method not in METHODS:
            raise ValueError(f"unknown factorization method '{method}'; allowed: {', '.join(METHODS)}")
        centers(center, "")                                      # a bad policy fails before any decomposition
        self.method, self.modules, self.parts, self.jitter, self.dtype = method, modules, {}, {}, dtype
        cov_cache = {}
        for path, lin in modules.items():
            keep = (lambda t: t.cpu() if t is not None else None) if (
                offload if offload is not None else lin.weight.device.type == "cuda") else (lambda t: t)
            # float32 SVDs by default (3x faster than float64 for sweeps); covariances always in float64
            W = lin.weight.detach().to(dtype).T                               # (in, out)
            b = None if lin.bias is None else lin.bias.detach().to(dtype)
            if method == "svd":
                u, s, vh = torch.linalg.svd(W.T, full_matrices=False)
                self.parts[path] = ("svd", keep(u * s.sqrt()), keep(s.sqrt()[:, None] * vh), keep(b))
                continue
            st = (stats or {}).get(path)
            if st is None or st.n == 0:
                raise ValueError(f"method '{method}' needs calibration statistics for {path}")
            if method == "scaled":
                d = ((st.abs_total / st.n).clamp_min(1e-8) ** alpha).to(W.device, dtype)
                u, s, vh = torch.linalg.svd((d[:, None] * W).T, full_matrices=False)
                self.parts[path] = ("svd", keep(u), keep(s[:, None] * vh / d[None, :]), keep(b))
                continue
            centred = centers(center, path)
            key = (id(st), centred)          # q/k/v (and gate/up) share one input: one eigendecomposition
            if key not in cov_cache:
                # statistics live on the CPU (float64), the weights on the model's device: decompose there
                C = st.covariance(centered=centred)
                ridge = jitter * torch.trace(C).item() / C.shape[0]
                C = C.to(W.device)
                evals, Q = torch.linalg.eigh(C + ridge * torch.eye(C.shape[0], dtype=C.dtype, device=C.device))
                cov_cache[key] = (Q * evals.clamp_min(0).sqrt(), ridge)
            S, ridge = cov_cache[key]
            _, _, vh = torch.linalg.svd(S.T.to(dtype) @ W, full_matrices=False)
            # the weight itself is not kept (it is the module's): V and the bias parts are all a rank needs
            self.parts[path] = ("whiten", None, keep(vh.T), (keep(b), keep(st.mean.to(W.device, dtype))
                                                              if centred else None))
            self.jitter[path] = ridge

    def module(self, path: str, rank: int) -> LowRankLinear:
        lin = self.modules[path]
        kind, a, c, extra = self.parts[path]
        if kind == "svd":                      # a: (out, k) left factor, c: (k, in) right factor
            return _factors(lin, c[:rank], a[:, :rank], extra, rank, self.method)
        V = c[:, :rank]                        # V (out, r); W (in, out) read from the module, where V lives
        W = lin.weight.detach().to(V.device, self.dtype).T
        b, mu = extra
        bias = b
        if mu is not None:
            bias = (bias if bias is not None else W.new_zeros(W.shape[1])) + (W - W @ V @ V.T).T @ mu
        return _factors(lin, (W @ V).T, V, bias, rank, self.method)


def replace(model, replacements: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Put modules in place of a model's submodules (by path); returns the modules taken out."""
    old = {path: model.get_submodule(path) for path in replacements}
    for path, new in replacements.items():
        _set(model, path, new)
    return old


class swapped:
    """Context manager: `replace` on entry, the originals restored on exit."""

    def __init__(self, model, replacements: dict[str, nn.Module]):
        self.model, self.replacements, self.saved = model, replacements, {}

    def __enter__(self):
        self.saved = replace(self.model, self.replacements)
        return self.model

    def __exit__(self, *exc):
        replace(self.model, self.saved)
        return False

# ------------------------------------------------------------------------------------------------ the Adam fit
def fit_adam(linear: nn.Linear, x: torch.Tensor, rank: int, steps: int = 10_000, lr: float = 1e-3,
             report_at: tuple = (), seed: int = 0, held_out: torch.Tensor | None = None) -> dict:
    """Seed 001's gradient fit, kept for comparison: a rank-r LowRankLinear (random init, N(0, 0.02)) trained by Adam
    on the MSE to the layer's outputs over the captured inputs x (full batch). Returns the module, the wall time and,
    at each step in report_at, the calibration and held-out MSE with the wall time so far."""

    torch.manual_seed(seed)
    low = LowRankLinear.from_linear(linear, rank, bias=linear.bias is not None)
    target = linear(x).detach()
    opt = torch.optim.Adam(low.parameters(), lr=lr)
    marks, t0 = {}, time.perf_counter()
    for step in range(1, steps + 1):
        loss = ((low(x) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in report_at:
            marks[step] = {"wall_s": time.perf_counter() - t0, "calib_mse": loss.item(),
                           "heldout_mse": output_mse(low, linear, held_out) if held_out is not None else None}
    return {"module": low, "wall_s": time.perf_counter() - t0, "marks": marks}
