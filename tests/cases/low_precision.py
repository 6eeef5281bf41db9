"""Ops with bfloat16 / float16 inputs: right ones, a 16-bit accumulation, a missing upcast."""

import torch


class Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad * w, (grad * x).sum(0)


class ScaleAccumulates16(torch.autograd.Function):
    """The gradient of w summed row by row in the input dtype: 16-bit accumulation."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        acc = torch.zeros_like(w)
        for row in grad * x:
            acc = acc + row
        return grad * w, acc


def _wide(t):
    """Compute in float32 at least: 16-bit tensors are upcast."""
    return t.float() if t.element_size() < 4 else t


class Variance(torch.autograd.Function):
    """Var of rows; 16-bit inputs are computed in float32."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _wide(x).var(-1, unbiased=False).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xf = _wide(x)
        n = x.shape[-1]
        out = 2.0 / n * (xf - xf.mean(-1, keepdim=True)) * _wide(grad)[..., None]
        return out.to(x.dtype)


class VarianceNoUpcast(torch.autograd.Function):
    """Its backward's mean is a running sum in the input dtype: no upcast."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _wide(x).var(-1, unbiased=False).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        n = x.shape[-1]
        acc = torch.zeros_like(x[..., :1])
        for k in range(n):
            acc = acc + x[..., k:k + 1]
        mean = acc / n   # a 16-bit running sum
        return 2.0 / n * (x - mean) * grad[..., None]
