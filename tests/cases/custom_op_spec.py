"""The custom ops of custom_ops.py, run with a spec naming them by their Python names: the
keyword-only argument and the list's tensors are given in the flat `inputs` list."""

import torch
from torch import Tensor


@torch.library.custom_op("gcc_spec::mysin", mutates_args=())
def mysin(x: Tensor) -> Tensor:
    return torch.sin(x)


@mysin.register_fake
def _(x):
    return torch.empty_like(x)


def _save_input(ctx, inputs, output):
    (x,) = inputs
    ctx.save_for_backward(x)


def _mysin_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return grad * x.cos()


mysin.register_autograd(_mysin_backward, setup_context=_save_input)


@torch.library.custom_op("gcc_spec::mytanh", mutates_args=())
def mytanh(x: Tensor) -> Tensor:
    return torch.tanh(x)


@mytanh.register_fake
def _(x):
    return torch.empty_like(x)


def _mytanh_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return -grad * (1 - torch.tanh(x) ** 2)  # the sign is wrong


mytanh.register_autograd(_mytanh_backward, setup_context=_save_input)


@torch.library.custom_op("gcc_spec::rowsum", mutates_args=())
def rowsum(x: Tensor) -> Tensor:
    return x.sum(dim=0)


@rowsum.register_fake
def _(x):
    return torch.empty_like(x)  # wrong: the op returns one row, not x's shape


def _save_shape(ctx, inputs, output):
    ctx.shape = inputs[0].shape


def _rowsum_backward(ctx, grad):
    return grad.expand(ctx.shape)


rowsum.register_autograd(_rowsum_backward, setup_context=_save_shape)


@torch.library.custom_op("gcc_spec::scaled", mutates_args=())
def scaled(x: Tensor, *, alpha: float) -> Tensor:
    return x * alpha


@scaled.register_fake
def _(x, *, alpha):
    return torch.empty_like(x)


def _save_alpha(ctx, inputs, keyword_only_inputs, output):
    ctx.alpha = keyword_only_inputs["alpha"]


def _scaled_backward(ctx, grad):
    return grad * ctx.alpha


scaled.register_autograd(_scaled_backward, setup_context=_save_alpha)


@torch.library.custom_op("gcc_spec::sum_of_squares", mutates_args=())
def sum_of_squares(xs: list[Tensor]) -> Tensor:
    return torch.stack([x * x for x in xs]).sum(dim=0)


@sum_of_squares.register_fake
def _(xs):
    return torch.empty_like(xs[0])


def _save_list(ctx, inputs, output):
    ctx.save_for_backward(*inputs[0])


def _sum_of_squares_backward(ctx, grad):
    return [2 * grad * x for x in ctx.saved_tensors]


sum_of_squares.register_autograd(_sum_of_squares_backward, setup_context=_save_list)


@torch.library.custom_op("gcc_spec::mycube", mutates_args=())
def mycube(x: Tensor) -> Tensor:
    return x ** 3


@mycube.register_fake
def _(x):
    return torch.empty_like(x)
