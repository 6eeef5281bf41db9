"""In-place forwards: declared with ctx.mark_dirty (checked on clones, so a right one
passes and a wrong backward is found), and undeclared (an error naming the input and the
line, not a 'kink' of error 1e5), one beside a declared input."""

import torch


class ScaleInPlace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return 2 * g


class ScaleInPlaceWrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return 3 * g


class ZeroFirst(torch.autograd.Function):
    """x * w with x's first element zeroed in place, undeclared."""

    @staticmethod
    def forward(ctx, x, w):
        x[0] = 0.0
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, g * x


class DirtyAndMore(torch.autograd.Function):
    """Declares x dirty, and also adds into w in place."""

    @staticmethod
    def forward(ctx, x, w):
        w += 1
        x.mul_(2)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return 2 * g, None
