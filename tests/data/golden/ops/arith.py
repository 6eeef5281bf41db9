"""Functions for the golden table tests: only + and *, so the numbers are the same on every CPU."""

from torch.autograd import Function
from torch.autograd.function import once_differentiable


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class ScaleBy(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x * alpha

    @staticmethod
    def backward(ctx, g):
        return g * ctx.alpha, None


class SquareAndTriple(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x, x * 3

    @staticmethod
    def backward(ctx, g_square, g_triple):
        (x,) = ctx.saved_tensors
        return 2 * x * g_square + 3 * g_triple


class OnceSquare(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class MulAddSwapped(Function):
    """y = w * x + b, with the gradients of w and x in each other's place."""

    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return g * w, g * x, g


class HalfSquare(Function):
    """y = x * x + z; the gradient of x misses its factor 2."""

    @staticmethod
    def forward(ctx, x, z):
        ctx.save_for_backward(x)
        return x * x + z

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x, g


class ShortBackward(Function):
    """Two inputs, but backward returns one gradient."""

    @staticmethod
    def forward(ctx, a, b):
        return a * 3 + b

    @staticmethod
    def backward(ctx, g):
        return 3 * g
