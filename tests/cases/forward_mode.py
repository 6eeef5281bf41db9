"""Functions with a jvp (forward mode): a factor-2 bug, a sign bug, a jvp that forgets the
second input's tangent; right ones (old style, setup_context with save_for_forward); one
without a jvp (n/a)."""

import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return 2 * x * t


class SquareTwiceJvp(Square):
    """backward right, jvp off by a factor 2."""

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return 4 * x * t


class SinSignJvp(torch.autograd.Function):
    """jvp of sin with the wrong sign: -cos(x) t."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.cos(x)

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return -torch.cos(x) * t


class MulForgetsTangent(torch.autograd.Function):
    """x * w whose jvp forgets w's tangent: the derivative along w is zero."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        ctx.save_for_forward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, g * x

    @staticmethod
    def jvp(ctx, tx, tw):
        _, w = ctx.saved_tensors
        return tx * w


class MulNewStyle(torch.autograd.Function):
    """setup_context style, tangents saved with save_for_forward: right."""

    @staticmethod
    def forward(x, w):
        return x * w

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w = inputs
        ctx.save_for_backward(x, w)
        ctx.save_for_forward(x, w)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, g * x

    @staticmethod
    def jvp(ctx, tx, tw):
        x, w = ctx.saved_tensors
        return tx * w + x * tw


class NoJvp(torch.autograd.Function):
    """No jvp, but asked for in the spec: n/a."""

    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return 3 * g


class JvpWithoutAutograd(torch.autograd.Function):
    """A right jvp computed outside autograd (as a kernel call would be): checked one
    column at a time."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_forward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        raise NotImplementedError("forward mode only")

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        with torch.no_grad():
            return (3 * x * x * t).detach()


def uses_no_jvp(x):
    """A composite through a Function without jvp: forward mode is n/a for it."""
    return NoJvp.apply(x) + x
