"""sin whose backward is wrong at one element only (element 3, twice the right value)."""

import torch


class OneWrongElement(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        grad = torch.cos(x) * g
        grad.view(-1)[3] *= 2
        return grad
