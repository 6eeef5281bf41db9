"""A Function with a non-tensor argument: `dim` gets no gradient (None)."""

import torch


class LogSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim=-1):
        y = x - torch.logsumexp(x, dim=dim, keepdim=True)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        grad_x = grad_output - torch.exp(y) * grad_output.sum(dim=ctx.dim, keepdim=True)
        return grad_x, None
