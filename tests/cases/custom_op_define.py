"""Custom ops written the older way, torch.library.define + impl + register_autograd (and
register_fake), run with no spec: a correct one, and one whose registered backward forgets
a factor of 2; both named by their op name, as no Python name is bound to them."""

import torch

torch.library.define("gcc_define::square", "(Tensor x) -> Tensor")


@torch.library.impl("gcc_define::square", "cpu")
def _square_kernel(x):
    return x * x


@torch.library.register_fake("gcc_define::square")
def _(x):
    return torch.empty_like(x)


def _save_input(ctx, inputs, output):
    (x,) = inputs
    ctx.save_for_backward(x)


def _square_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return 2 * grad * x


torch.library.register_autograd("gcc_define::square", _square_backward,
                                setup_context=_save_input)

torch.library.define("gcc_define::halfsquare", "(Tensor x) -> Tensor")


@torch.library.impl("gcc_define::halfsquare", "cpu")
def _halfsquare_kernel(x):
    return x * x


@torch.library.register_fake("gcc_define::halfsquare")
def _(x):
    return torch.empty_like(x)


def _halfsquare_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return grad * x  # the factor 2 is missing


torch.library.register_autograd("gcc_define::halfsquare", _halfsquare_backward,
                                setup_context=_save_input)
