"""Autograd Functions the scale benchmark checks: right ones, and sin with one wrong entry."""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd import Function


class Sin(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * x.cos()


class SinOneWrong(Function):
    """sin whose backward multiplies the derivative at flat element `index` by `factor`: a
    single wrong entry on the Jacobian's diagonal."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, index: int, factor: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.index = index
        ctx.factor = factor
        return x.sin()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        derivative = x.cos()
        derivative.view(-1)[ctx.index] *= ctx.factor
        return grad * derivative, None, None


class Tanh(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = x.tanh()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class MatMul(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, w = ctx.saved_tensors
        return grad @ w.T, x.T @ grad


class Softmax(Function):
    """Softmax over the last dimension."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.softmax(x, dim=-1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(dim=-1, keepdim=True))


class MulAddSin(Function):
    """a·b + sin(c), elementwise: three inputs, one output, a diagonal Jacobian per input."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a, b, c)
        return a * b + c.sin()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                        torch.Tensor]:
        a, b, c = ctx.saved_tensors
        return grad * b, grad * a, grad * c.cos()


class SinCosPair(Function):
    """Two outputs from one input: (sin x, cos x)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx: Any, grad_sin: torch.Tensor, grad_cos: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad_sin * x.cos() - grad_cos * x.sin()


class CosOneWrong(Function):
    """cos whose backward is wrong (× factor) at flat element `index`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, index: int, factor: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.index = index
        ctx.factor = factor
        return x.cos()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        derivative = -x.sin()
        derivative.view(-1)[ctx.index] *= ctx.factor
        return grad * derivative, None, None


class SinSecondOrderOneWrong(Function):
    """sin with a right backward whose own derivative is wrong at one element: backward
    computes cos through CosOneWrong, so only gradgradcheck can see the bug."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, index: int, factor: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.index = index
        ctx.factor = factor
        return x.sin()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad * CosOneWrong.apply(x, ctx.index, ctx.factor), None, None


class SinNearlyRight(Function):
    """sin whose backward is off by a relative 5e-4 everywhere: within the default rtol
    (1e-3), so right as far as gradcheck is concerned, yet visible to a precise probe."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * x.cos() * (1 + 5e-4)


class SinFloat32Backward(Function):
    """sin in float64 whose backward computes in float32: right to ~1e-7, relatively."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return (grad.float() * x.float().cos()).to(grad.dtype)
