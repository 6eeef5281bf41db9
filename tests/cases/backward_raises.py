"""A backward that raises: an error in both checks, located at the raise."""

import torch


class BackwardRaises(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        raise ValueError("not implemented yet")
