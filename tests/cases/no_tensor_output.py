"""Forwards with nothing to differentiate. torch's gradcheck returns True for every one of
them; nothing was compared, so none of them may pass."""

import torch


class ReturnsNone(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x.sum()
        return None

    @staticmethod
    def backward(ctx, grad):
        return grad


class ReturnsNumber(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return float(x.sum())

    @staticmethod
    def backward(ctx, grad):
        return grad


class ReturnsEmpty(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return ()

    @staticmethod
    def backward(ctx):
        return None


class ConstantMarked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = torch.ones_like(x)
        ctx.mark_non_differentiable(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        return torch.zeros_like(grad)


class IndexOnly(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.argmax(dim=-1)

    @staticmethod
    def backward(ctx, grad):
        return None


class MarkedButMoves(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = 2 * x
        ctx.mark_non_differentiable(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


class ForgotBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, grad):
        return None
