"""A backward whose gradient is summed to a scalar: the wrong shape for its input."""

import torch


class WrongShape(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return (g * 2).sum()
