"""Ten realistic mid-size autograd Functions with hand-written backwards, all right.

The corpus of `bench_reference.py`'s comparison with a one-process loop of
torch.autograd.gradcheck + gradgradcheck: linear, layernorm, softmax, GELU, attention,
conv1d, logsumexp, RMSNorm, SiLU, bilinear. Every backward is written in differentiable
torch ops, as such backwards usually are, so gradgradcheck applies to each. SHAPES gives
the input shapes the benchmark uses (batch 16, features 32, as a unit test would).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd import Function

SHAPES: dict[str, list[list[int]]] = {
    "Linear": [[16, 32], [24, 32], [24]],
    "LayerNorm": [[16, 32], [32], [32]],
    "Softmax": [[16, 32]],
    "Gelu": [[16, 32]],
    "Attention": [[12, 16], [12, 16], [12, 16]],
    "Conv1d": [[2, 4, 24], [6, 4, 3]],
    "LogSumExp": [[16, 32]],
    "RMSNorm": [[16, 32], [32]],
    "SiLU": [[16, 32]],
    "Bilinear": [[8, 8], [8, 6], [4, 8, 6], [4]],
}


class Linear(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        return x @ w.T + b

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, w = ctx.saved_tensors
        return g @ w, g.T @ x, g.sum(0)


class LayerNorm(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
                ) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        inv = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
        ctx.save_for_backward(x, weight)
        return (x - mean) * inv * weight + bias

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, weight = ctx.saved_tensors
        # Recomputed from x (not saved from forward), so that backward is differentiable.
        mean = x.mean(-1, keepdim=True)
        inv = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)
        xhat = (x - mean) * inv
        gx = g * weight
        dx = inv * (gx - gx.mean(-1, keepdim=True) - xhat * (gx * xhat).mean(-1, keepdim=True))
        return dx, (g * xhat).sum(0), g.sum(0)


class Softmax(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.softmax(x, dim=-1)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        y = torch.softmax(x, dim=-1)
        return y * (g - (g * y).sum(-1, keepdim=True))


class Gelu(Function):
    """The exact (erf) GELU."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return g * (cdf + x * pdf)


class Attention(Function):
    """One head: softmax(q kᵀ / √d) v."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(q, k, v)
        p = torch.softmax(q @ k.T / math.sqrt(q.shape[-1]), dim=-1)
        return p @ v

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, v = ctx.saved_tensors
        scale = 1 / math.sqrt(q.shape[-1])
        p = torch.softmax(q @ k.T * scale, dim=-1)
        dp = g @ v.T
        ds = p * (dp - (dp * p).sum(-1, keepdim=True)) * scale
        return ds @ k, ds.T @ q, p.T @ g


class Conv1d(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        return F.conv1d(x, w, padding=1)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, w = ctx.saved_tensors
        dx = F.conv_transpose1d(g, w, padding=1)
        dw = F.conv1d(x.transpose(0, 1), g.transpose(0, 1), padding=1).transpose(0, 1)
        return dx, dw


class LogSumExp(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.logsumexp(x, dim=-1)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return g[:, None] * torch.softmax(x, dim=-1)


class RMSNorm(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * weight

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x, weight = ctx.saved_tensors
        inv = torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6)
        gw = g * weight
        dx = inv * gw - x * inv ** 3 * (gw * x).mean(-1, keepdim=True)
        return dx, (g * x * inv).sum(0)


class SiLU(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return g * s * (1 + x * (1 - s))


class Bilinear(Function):
    @staticmethod
    def forward(ctx: Any, x1: torch.Tensor, x2: torch.Tensor, w: torch.Tensor,
                b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x1, x2, w)
        return torch.einsum("bi,oij,bj->bo", x1, w, x2) + b

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x1, x2, w = ctx.saved_tensors
        return (torch.einsum("bo,oij,bj->bi", g, w, x2), torch.einsum("bo,oij,bi->bj", g, w, x1),
                torch.einsum("bo,bi,bj->oij", g, x1, x2), g.sum(0))
