"""Ops whose arguments a spec gives by name (`kwargs:`) or as lists (`{list: [...]}`)."""

import torch


class ScaleShift(torch.autograd.Function):
    """A float and a tensor by keyword; bias is checked, scale is passed as is."""

    @staticmethod
    def forward(ctx, x, scale=1.0, bias=None):
        ctx.scale = scale
        return x * scale + bias

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None, grad


class ScaleShiftTwice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale=1.0, bias=None):
        ctx.scale = scale
        return x * scale + bias

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad * ctx.scale, None, grad  # a factor 2 too many in x's gradient


def weighted_sum(xs, *, weights):
    """A plain function: a list positional, a keyword-only list."""
    return sum(x * w for x, w in zip(xs, weights))


class _Pair(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        return a * 2 + b * 3

    @staticmethod
    def backward(ctx, grad):
        return grad * 2, grad * 2  # b's gradient is a's


def pair_of_list(xs):
    """A list's second tensor with the wrong gradient: reported as `xs[1]`."""
    return _Pair.apply(xs[0], xs[1])


def sines(*tensors):
    """*args: the inputs fill it, named after it."""
    return sum(t.sin() for t in tensors)


@torch.library.custom_op("gcc_kwcases::mix", mutates_args=())
def mix(xs: list[torch.Tensor], *, alpha: float = 1.0) -> torch.Tensor:
    return xs[0] * alpha + xs[1].sin()


@mix.register_fake
def _(xs, *, alpha=1.0):
    return torch.empty_like(xs[0])


def _setup(ctx, inputs, keyword_only_inputs, output):
    ctx.save_for_backward(*inputs[0])
    ctx.alpha = keyword_only_inputs["alpha"]


def _backward(ctx, grad):
    _, b = ctx.saved_tensors
    return [grad * ctx.alpha, -grad * b.cos()]  # the sign of xs[1]'s gradient is wrong


mix.register_autograd(_backward, setup_context=_setup)
