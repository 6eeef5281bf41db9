"""3x + z whose backward returns None, or zeros, for x."""

import torch


class NoneGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, z):
        return x * 3 + z

    @staticmethod
    def backward(ctx, g):
        return None, g


class ZeroGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, z):
        return x * 3 + z

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g), g
