"""x * x whose backward adds a little noise: two runs on the same input differ."""

import torch


class RandomBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g + 1e-7 * torch.rand(x.shape, dtype=x.dtype)
