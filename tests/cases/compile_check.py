"""Functions checked under torch.compile against eager (`--check compile`)."""

import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


class PrintsInForward(torch.autograd.Function):
    """Right, but print() breaks the graph: compared without fullgraph, and said so."""

    @staticmethod
    def forward(ctx, x):
        print("forward of PrintsInForward")
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return x.cos() * grad


class BackwardDiffersCompiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        # A code path only compiled code takes, with a wrong factor.
        factor = 2.5 if torch.compiler.is_compiling() else 2.0
        return factor * x * grad


class ForwardDiffersCompiled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        shift = 1.0 if torch.compiler.is_compiling() else 0.0
        return x * w + shift

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        # Compiled code takes other paths: a shift in forward, half w's gradient here.
        scale = 0.5 if torch.compiler.is_compiling() else 1.0
        return grad * w, grad * x * scale


class OnlyForwardDiffersCompiled(torch.autograd.Function):
    """Compiled, forward adds 1: the gradients stay the same, the outputs do not."""

    @staticmethod
    def forward(ctx, x):
        return x * 3 + (1.0 if torch.compiler.is_compiling() else 0.0)

    @staticmethod
    def backward(ctx, grad):
        return grad * 3
