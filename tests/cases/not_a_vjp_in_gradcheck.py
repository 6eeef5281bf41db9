"""The default run: gradcheck's Jacobians of a guided-backprop ReLU agree (one-hot
grad_outputs are positive), and its linearity test fails it; a plain ReLU passes."""

import torch


class GuidedReLU(torch.autograd.Function):
    """Guided backprop, as saliency libraries write it: negative grad_output zeroed too."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * (x > 0).to(g.dtype)


class SquaredGradOutput(torch.autograd.Function):
    """3 * x whose backward uses grad_output squared, sign kept (right for one-hot rows)."""

    @staticmethod
    def forward(ctx, x):
        return 3 * x

    @staticmethod
    def backward(ctx, g):
        return 3 * g * g.abs()


class ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype)
