"""A two-layer fully connected network built from two custom Functions.

`two_layer_net` composes them, so checking it checks how gradients flow through
both layers: the chain rule across Function boundaries, not just each Function alone.
"""

import torch


class Linear(torch.autograd.Function):
    """y = x @ W.T + b, as torch.nn.functional.linear."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_x = grad_output @ weight
        grad_weight = grad_output.T @ x
        grad_bias = grad_output.sum(dim=0)
        return grad_x, grad_weight, grad_bias


class Tanh(torch.autograd.Function):
    """y = tanh(x); the derivative 1 - y² uses the saved output, so it is twice differentiable."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * (1 - y * y)


def two_layer_net(x, w1, b1, w2, b2):
    """x -> Linear -> Tanh -> Linear."""
    hidden = Tanh.apply(Linear.apply(x, w1, b1))
    return Linear.apply(hidden, w2, b2)
