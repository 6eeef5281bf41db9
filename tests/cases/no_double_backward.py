"""Backwards right at first order that autograd cannot differentiate: a kernel launch (as a
Triton one), torch.no_grad, .detach(), NumPy. Their gradgradcheck is skipped with the
reason (failed when asked for explicitly); a differentiable backward is still checked."""

import numpy as np
import torch


class _Kernel:
    """Stands for a Triton kernel: `kernel[grid](g, x, out)` writes `out` outside autograd."""

    def __getitem__(self, grid):
        def launch(g, x, out):
            with torch.no_grad():
                out.copy_(2 * x * g)

        return launch


square_backward_kernel = _Kernel()


class KernelSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        out = torch.empty_like(x)
        square_backward_kernel[(x.numel(),)](g, x, out)
        return out


class NoGradSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        with torch.no_grad():
            return 2 * x * g


class DetachedMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return (g * w).detach(), g * x


class NumpySin(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.from_numpy(np.cos(x.detach().numpy()) * g.detach().numpy())


class KernelSquareAsked(KernelSquare):
    """The same kernel, gradgradcheck asked for explicitly: it fails, saying why."""


class Differentiable(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g
