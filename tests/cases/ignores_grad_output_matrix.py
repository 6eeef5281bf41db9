"""Backwards that ignore grad_output (wholly or in one term) at matrix shapes, beside their
correct twins: at (3, 4) no pattern of the Jacobian shows it, backward's own answer does."""

import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x


class SquareIgnoresGradOutput(Square):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x


class Mul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y, g * x


class MulIgnoresGradOutput(Mul):
    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return y, x


class MulAddX(torch.autograd.Function):
    # x * y + x
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y + x

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y + g, g * x


class MulAddXOneTermBare(MulAddX):
    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y + 1, g * x


class RowSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sum(dim=1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g[:, None].expand_as(x).clone()


class RowSumIgnoresGradOutput(RowSum):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.ones_like(x)


class SquareHalved(Square):
    # linear in grad_output but wrong: a scale, not this bug
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x
