"""Low-rank building blocks shared by the Pythia surgery (seed 000) and the compression family (seed 001).

LowRankLinear(in, out, r) = Linear(in, r) -> [activation] -> Linear(r, out): a rank-r replacement of an
nn.Linear(in, out). Built fresh (the model's initializer: weights N(0, 0.02), biases 0, as the seed's LinearLora)
or from an existing Linear by truncated SVD (W = U S V^T ~ (U_r S_r^1/2)(S_r^1/2 V_r^T)).
"""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


def check_rank(rank: int, in_features: int, out_features: int, what: str = "layer") -> None:
    limit = min(in_features, out_features)
    if not isinstance(rank, int) or rank < 1 or rank > limit:
        raise ValueError(f"rank {rank!r} is not allowed for {what} ({in_features} -> {out_features}): "
                         f"use 1 <= rank <= min(in, out) = {limit}")


class LowRankLinear(nn.Module):
    """x (..., in) -> down (..., r) -> act -> up (..., out). `bias` applies to both factors (the seed's LinearLora
    has two biases; a bias-free source Linear gives two bias-free factors); `down_bias=False` keeps the up factor's
    only (without an activation a down bias is redundant: up.W @ b_down folds into the up bias, so a factorization
    that would leave it at zero should not carry, or count, it)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True,
                 activation: str | None = None, down_bias: bool | None = None):
        super().__init__()
        check_rank(rank, in_features, out_features)
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; allowed: None, {', '.join(ACTIVATIONS)}")
        self.in_features, self.out_features, self.rank, self.activation = in_features, out_features, rank, activation
        self.down = nn.Linear(in_features, rank, bias=bias if down_bias is None else down_bias)
        self.act = ACTIVATIONS[activation]() if activation else nn.Identity()
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))

    def reset_parameters(self, std: float = 0.02) -> None:
        for lin in (self.down, self.up):
            nn.init.normal_(lin.weight, mean=0.0, std=std)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    @property
    def weight(self) -> torch.Tensor:
        """The (out, in) product up.W @ down.W (meaningful without an activation)."""
        return self.up.weight @ self.down.weight

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, rank={self.rank}, activation={self.activation}"

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int, init: str = "random", activation: str | None = None,
                    std: float = 0.02, bias: bool | None = None) -> "LowRankLinear":
        """A rank-`rank` replacement of `linear` on the same device and dtype.

        init="random": the model's initializer (N(0, std), zero biases). init="svd": truncated SVD of the weight,
        the source bias kept on the up factor; at full rank it reproduces the layer exactly (no activation).
        """
        if init not in ("random", "svd"):
            raise ValueError(f"unknown init '{init}'; allowed: random, svd")
        if init == "svd" and activation is not None:
            raise ValueError("init='svd' factorizes a linear map; it cannot be combined with an activation")
        w = linear.weight
        bias = linear.bias is not None if bias is None else bias
        with torch.device(w.device):
            new = cls(linear.in_features, linear.out_features, rank, bias=bias, activation=activation).to(w.dtype)
        if w.device.type == "meta":
            return new
        if init == "random":
            new.reset_parameters(std)
            return new
        with torch.no_grad():
            u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)          # w: (out, in)
            root = s[:rank].sqrt()
            new.up.weight.copy_((u[:, :rank] * root).to(w.dtype))              # (out, r)
            new.down.weight.copy_((root[:, None] * vh[:rank]).to(w.dtype))     # (r, in)
            if bias:
                new.down.bias.zero_()
                new.up.bias.copy_(linear.bias if linear.bias is not None else torch.zeros_like(new.up.bias))
        return new


class FactorizedEmbedding(nn.Module):
    """Embedding(V, d) as (V x r) @ (r x d): an Embedding(V, r) followed by a bias-free Linear(r, d)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int, std: float = 0.02):
        super().__init__()
        check_rank(rank, num_embeddings, embedding_dim, "embedding")
        self.num_embeddings, self.embedding_dim, self.rank = num_embeddings, embedding_dim, rank
        self.inner = nn.Embedding(num_embeddings, rank)
        self.proj = nn.Linear(rank, embedding_dim, bias=False)
        if self.inner.weight.device.type != "meta":
            nn.init.normal_(self.inner.weight, std=std)
            nn.init.normal_(self.proj.weight, std=std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.inner(ids))   # (B, T) -> (B, T, r) -> (B, T, d)


class NoAttention(nn.Module):
    """Stands in for a removed attention block: contributes zero to the (parallel) residual stream."""

    def forward(self, hidden_states, *args, **kwargs):
        return torch.zeros_like(hidden_states), None
