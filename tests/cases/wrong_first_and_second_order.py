"""x ** 3 whose backward is wrong at first order (2x² for 3x²) and half detached: both checks
fail, and the second-order diagnosis says to fix first order first without calling it right."""

import torch


class CubeWrongAndHalfDetached(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x.detach() * x
