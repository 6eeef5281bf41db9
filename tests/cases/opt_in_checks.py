"""A correct Function, also under the opt-in checks: float32 and capabilities."""

import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class SquareAgain(Square):
    """The same Function under another name, for a second set of checks."""
