"""Forwards that hide their dependence on x from autograd (a .detach(), torch.no_grad(), .data,
a NumPy round trip), each with a right and a wrong backward: autograd through forward is no
reference for them, and the finite differences decide."""

import numpy as np
import torch


class DetachRight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x.detach()  # autograd sees x, not x²

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class DetachWrong(DetachRight):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g  # what the broken graph says, and wrong


class NoGradRight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with torch.no_grad():
            shift = torch.sin(x)
        return x + shift

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (1 + torch.cos(x))


class NoGradWrong(NoGradRight):
    @staticmethod
    def backward(ctx, g):
        return g


class DataRight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x.data)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.exp(x)


class DataWrong(DataRight):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return -g * torch.exp(x)


class NumpyRight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return torch.from_numpy(np.tanh(x.detach().numpy())) * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        t = torch.tanh(x)
        return g * y * (1 - t * t), g * t


class NumpyWrong(NumpyRight):
    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        t = torch.tanh(x)
        return g * y * (1 - t * t), g * x
