"""Deliberately broken: y = w * x + b with the gradients of w and x swapped.

`gradcheck-cli specs/broken.yaml` shows what a failure looks like: w and x fail with
large errors, b passes.
"""

import torch


class MultiplyAddSwapped(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, grad_output):
        w, x = ctx.saved_tensors
        # Bug: d(w*x)/dw is x, not w. The two gradients are returned in each other's place.
        return grad_output * w, grad_output * x, grad_output
