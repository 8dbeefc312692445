"""Seed 002: looped transformers learning in context (Yang et al. 2023, on Garg et al. 2022), with the seed's options.

Prompt: x_1, y_1, x_2, y_2, ... as 2n tokens. token_format "paper": tokens of dimension d, y as [y, 0, ..., 0] (a y
token looks like an x with one non-zero coordinate: only the position tells them apart); "extra_dim": tokens of
dimension d + 1, x as [x, 0] and y as [0, ..., 0, y], so x and y never share an input coordinate (on a CPU budget
this decides whether d = 5 is learned at all: benchmarks/looped_regime.py). read_in Linear(-> width), a pre-LN
GPT-2-style block (causal self-attention + GELU MLP, learned positions added at the backbone input, final LayerNorm),
read_out Linear(width -> 1); predictions are read at the x positions.

Looped model: e = read_in(prompt), z_0 = 0, z_{t+1} = backbone(z_t + e). The first b - T loops run without gradient,
the loss averages the predictions of the last T loops; inference may run any number of loops.
Standard model: the same prompt format through an L-block backbone once.

Seed options (typed, validated in LoopedConfig):
  save_n_tokens    mask the carried state per token before each loop: N >= 1 keeps the last N tokens, 0 < N < 1
                   keeps that fraction (a fraction that rounds to 0 tokens raises), N < 0 zeroes the first |N|,
                   0 keeps all
  feed_block       L blocks, one applied per loop in turn (cycling), with injection before each; the no-grad
                   horizon b - T counts block applications
  use_ssm          a selective state-space block (plain PyTorch, sizes from the width) instead of attention
  skip_connection  inject z_t + e + z_{t-1}
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import LoopedConfig  # noqa: F401  (the config lives with the other model configs)


def keep_mask(n_tokens: int, save_n_tokens: float) -> torch.Tensor | None:
    """Per-token mask (n_tokens,) of the carried state, or None to keep everything (save_n_tokens == 0)."""
    s = save_n_tokens
    if s == 0:
        return None
    mask = torch.zeros(n_tokens)
    if s >= 1:
        mask[-int(s):] = 1
    elif s > 0:
        k = round(s * n_tokens)
        if k == 0:
            raise ValueError(f"save_n_tokens={s} keeps round({s} * {n_tokens}) = 0 of {n_tokens} tokens; this would "
                             "silently keep everything in the original code: use a larger fraction or 0")
        mask[-k:] = 1
    else:
        mask[int(-s):] = 1
    return mask


class SelectiveSSM(nn.Module):
    """A Mamba-style selective state-space mixer in plain PyTorch (a sequential scan; fine for prompts of ~80 tokens).

    x (B, L, w) -> in_proj -> (u, gate) each (B, L, 2w) -> causal depthwise conv on u -> SiLU ->
    input-dependent dt (B, L, 2w), B_t, C_t (B, L, N) -> h_t = exp(dt A) h_{t-1} + dt B_t u_t; y_t = C_t h_t + D u_t
    -> y * SiLU(gate) -> out_proj (B, L, w). Inner width 2w, state N = max(4, w / 16), dt rank max(1, w / 16)."""

    def __init__(self, width: int, conv: int = 4):
        super().__init__()
        inner, self.n = 2 * width, max(4, width // 16)
        dt_rank = max(1, width // 16)
        self.in_proj = nn.Linear(width, 2 * inner)
        self.conv = nn.Conv1d(inner, inner, conv, groups=inner, padding=conv - 1)
        self.x_proj = nn.Linear(inner, dt_rank + 2 * self.n, bias=False)
        self.dt_proj = nn.Linear(dt_rank, inner)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, self.n + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, width)
        self.dt_rank = dt_rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        u, gate = self.in_proj(x).chunk(2, dim=-1)                              # (B, L, inner) each
        u = F.silu(self.conv(u.transpose(1, 2))[..., :L].transpose(1, 2))        # causal: drop the right padding
        dt, b, c = self.x_proj(u).split([self.dt_rank, self.n, self.n], dim=-1)
        dt = F.softplus(self.dt_proj(dt))                                        # (B, L, inner)
        A = -torch.exp(self.A_log)                                               # (inner, N)
        h = x.new_zeros(B, u.shape[-1], self.n)
        ys = []
        for t in range(L):
            h = torch.exp(dt[:, t, :, None] * A) * h + dt[:, t, :, None] * b[:, t, None, :] * u[:, t, :, None]
            ys.append((h * c[:, t, None, :]).sum(-1))                            # (B, inner)
        y = torch.stack(ys, 1) + u * self.D
        return self.out_proj(y * F.silu(gate))


class Block(nn.Module):
    """Pre-LN transformer block: x + mix(LN x), then x + MLP(LN x); mix = causal attention or a selective SSM."""

    def __init__(self, width: int, n_head: int, ssm: bool = False):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.n_head, self.ssm = n_head, ssm
        if ssm:
            self.mix = SelectiveSSM(width)
        else:
            self.qkv = nn.Linear(width, 3 * width)
            self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        B, L, W = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.n_head, W // self.n_head).permute(2, 0, 3, 1, 4)  # (B, H, L, W/H)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, L, W))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + (self.mix(h) if self.ssm else self.attention(h))
        return x + self.mlp(self.ln2(x))


class LoopedTransformer(nn.Module):
    def __init__(self, cfg: LoopedConfig):
        super().__init__()
        self.cfg = cfg
        self.read_in = nn.Linear(cfg.n_dims + (cfg.token_format == "extra_dim"), cfg.width)
        self.wpe = nn.Embedding(2 * cfg.n_positions, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.n_head, cfg.use_ssm) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.width)
        self.read_out = nn.Linear(cfg.width, 1)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    @staticmethod
    def interleave(xs: torch.Tensor, ys: torch.Tensor, token_format: str = "paper") -> torch.Tensor:
        """xs (B, n, d), ys (B, n) -> prompt (B, 2n, d) x_1, [y_1, 0...], x_2, ... ("paper"), or (B, 2n, d + 1)
        [x_1, 0], [0..., y_1], ... ("extra_dim")."""
        B, n, d = xs.shape
        if token_format == "extra_dim":
            xs = torch.cat([xs, xs.new_zeros(B, n, 1)], dim=-1)
            y_tok = torch.cat([xs.new_zeros(B, n, d), ys[..., None]], dim=-1)
        else:
            y_tok = torch.cat([ys[..., None], xs.new_zeros(B, n, d - 1)], dim=-1)
        return torch.stack([xs, y_tok], dim=2).reshape(B, 2 * n, xs.shape[-1])

    def backbone(self, h: torch.Tensor, blocks) -> torch.Tensor:
        h = h + self.wpe.weight[: h.shape[1]]
        for blk in blocks:
            h = blk(h)
        return self.ln_f(h)

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return self.read_out(z)[:, ::2, 0]                                      # (B, n) at the x positions

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, loops: int | None = None,
                window: int | None = None) -> list[torch.Tensor]:
        """Predictions (B, n) of the last `window` loops (looped) or the single pass (standard), as a list."""
        cfg = self.cfg
        if xs.shape[1] > cfg.n_positions:
            raise ValueError(f"n_points {xs.shape[1]} is larger than the model's n_positions {cfg.n_positions}")
        if xs.shape[2] != cfg.n_dims:
            raise ValueError(f"prompt dimension {xs.shape[2]} differs from the model's n_dims {cfg.n_dims}")
        e = self.read_in(self.interleave(xs, ys, cfg.token_format))             # (B, 2n, width)
        if not cfg.looped:
            return [self.predict(self.backbone(e, self.blocks))]
        b = cfg.loops if loops is None else loops
        T = cfg.window if window is None else window
        if b < 1:
            raise ValueError(f"inference loops must be >= 1, got {b}")
        T = min(T, b)
        mask = keep_mask(e.shape[1], cfg.save_n_tokens)
        mask = None if mask is None else mask.to(e)[None, :, None]
        z, z_prev, out = torch.zeros_like(e), torch.zeros_like(e), []
        for t in range(b):
            grad = t >= b - T
            with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
                if mask is not None:
                    z = z * mask
                inp = z + e + (z_prev if cfg.skip_connection else 0)
                blocks = [self.blocks[t % cfg.n_layer]] if cfg.feed_block else self.blocks
                z, z_prev = self.backbone(inp, blocks), z
                if grad:
                    out.append(self.predict(z))
        return out

    def loss(self, xs, ys) -> torch.Tensor:
        preds = self(xs, ys)
        return sum(F.mse_loss(p, ys) for p in preds) / len(preds)
