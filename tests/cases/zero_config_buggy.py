"""The ordinary ops of zero_config_correct with planted bugs, run with no spec: each one is
failed with the right input named, on inputs inferred from forward."""

import torch
import torch.nn.functional as F
from torch.autograd import Function


class BiasMean(Function):
    """The bias gradient averaged over the batch where it must be summed."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        return g @ weight, g.t() @ x, g.mean(0)


class TanhSign(Function):
    """A sign error: the whole derivative negated."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return -g * (1 - y * y)


class BatchedMatMulHalf(Function):
    """A wrong factor on one gradient of a batched matmul."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return torch.einsum("bij,bjk->bik", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return 0.5 * torch.einsum("bik,bjk->bij", g, b), torch.einsum("bij,bik->bjk", a, g)


class ScaleByForgotten(Function):
    """backward forgets the Python-float factor forward multiplied by."""

    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x * factor

    @staticmethod
    def backward(ctx, g):
        return g, None
