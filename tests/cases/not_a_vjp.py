"""Backwards whose Jacobian rows are right (one-hot grad_outputs) but that are not linear
in grad_output: a guided-backprop ReLU, one that squares grad_output, one that keeps only
its largest entry; and correct ones."""

import torch


class GuidedReLU(torch.autograd.Function):
    """Guided backprop (as in widely used saliency libraries): also zeroes negative
    grad_output. Every one-hot row is right, so gradcheck passes it in exact mode."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * (x > 0).to(g.dtype)


class SquaredGrad(torch.autograd.Function):
    """tanh whose backward multiplies by grad_output twice (g * |g|): right for 0 and 1."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * g.abs() * (1 - y * y)


class LargestOnly(torch.autograd.Function):
    """Scale by w, keeping only the largest |grad_output| entry (a misplaced max mask)."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        kept = g * (g.abs() == g.abs().max()).to(g.dtype)
        return kept * w, g * x


class ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype)


class TwoOutputs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w, (x * w).sum(-1)

    @staticmethod
    def backward(ctx, g1, g2):
        x, w = ctx.saved_tensors
        both = g1 + g2[:, None]
        return both * w, both * x
