"""Elementwise Functions with one planted bug each, for any input size (reference mode at 10⁶)."""

import torch

WRONG = 123_457  # the flat index of OneWrongElement's wrong element (inputs of >= 10⁶)


class Right(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.cos(x) * g


class OneWrongElement(Right):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        grad = torch.cos(x) * g
        grad.view(-1)[WRONG % x.numel()] *= 2
        return grad


class Sign(Right):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return -torch.cos(x) * g


class Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g


class Swapped(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return g * w, g * x, g


class Transposed(torch.autograd.Function):
    """x * c for a square x: backward returns the gradient transposed."""

    @staticmethod
    def forward(ctx, x, c):
        ctx.save_for_backward(c)
        return x * c

    @staticmethod
    def backward(ctx, g):
        (c,) = ctx.saved_tensors
        return (g * c).T, None


class PartialMask(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0.5)


class SecondOrderOnly(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x.detach() ** 2 * g
