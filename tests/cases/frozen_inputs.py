"""Backwards that read ctx.needs_input_grad: two read the wrong index, one leaves a term out
when an input is frozen; the others are right (one with a non-tensor argument between its
tensors), and one that never reads it gets no frozen check by default."""

import torch


class MixedUp(torch.autograd.Function):
    """The classic: each gradient guarded by the other input's flag."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[1]:
            gx = g * w
        if ctx.needs_input_grad[0]:
            gw = g * x
        return gx, gw


class BiasFlag(torch.autograd.Function):
    """The bias's gradient guarded by the weight's flag: frozen weights lose it."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return x * w + b

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g * w
        if ctx.needs_input_grad[1]:
            gw = g * x
            gb = g
        return gx, gw, gb


class TermLeftOut(torch.autograd.Function):
    """x * w + x: the x * w term of x's gradient is added only when w needs a gradient."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w + x

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gx, gw = g, None
        if ctx.needs_input_grad[1]:
            gw = g * x
            gx = gx + g * w
        return gx, gw


class Right(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return x * w + b

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g * w
        if ctx.needs_input_grad[1]:
            gw = g * x
        if ctx.needs_input_grad[2]:
            gb = g
        return gx, gw, gb


class RightWithScale(torch.autograd.Function):
    """needs_input_grad counts every argument of forward: w is index 2."""

    @staticmethod
    def forward(ctx, x, scale: float, w):
        ctx.save_for_backward(x, w)
        ctx.scale = scale
        return scale * x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = ctx.scale * g * w
        if ctx.needs_input_grad[2]:
            gw = ctx.scale * g * x
        return gx, None, gw


class Plain(torch.autograd.Function):
    """Never reads needs_input_grad: frozen is not one of its default checks."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, g * x
