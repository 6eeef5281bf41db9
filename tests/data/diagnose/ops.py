"""One deliberately broken Function per diagnosis kind, each next to its correct twin.

Used by tests/test_diagnose.py through tests/data/diagnose/ops.yaml.
"""
import torch
from torch.autograd import Function


# ------------------------------------------------------------------ swapped
class MulAdd(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return g * x, g * w, g


class MulAddSwapped(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return g * w, g * x, g  # the gradients of w and x in each other's place


# --------------------------------------------------------------------- sign
class Sine(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.cos(x) * g


class SineWrongSign(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return -torch.cos(x) * g


# -------------------------------------------------------------------- scale
class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class SquareMissingTwo(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g  # d(x²)/dx is 2x


# --------------------------------------------------------------- transposed
class RightMatMul(Function):
    """y = x @ W with a square W."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w.T, x.T @ g


class RightMatMulTransposed(Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w, x.T @ g  # g @ W where g @ W.T was meant


class SquareGradTransposed(Function):
    """y = x @ a with a square x, whose gradient comes back transposed."""

    @staticmethod
    def forward(ctx, x, a):
        ctx.save_for_backward(x, a)
        return x @ a

    @staticmethod
    def backward(ctx, g):
        x, a = ctx.saved_tensors
        return (g @ a.T).T, x.T @ g


class RightMatMulScaled(Function):
    """Wrong for x, but not by a transposition."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return 3 * (g @ w.T) + 0.1, x.T @ g


# --------------------------------------------------------------------- zero
class Mul(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y, g * x


class MulNoneForY(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        _, y = ctx.saved_tensors
        return g * y, None  # y requires grad


# ------------------------------------------------------------------ partial
class Leaky(Function):
    """Leaky ReLU with slope 0.1 below 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, 0.1 * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.where(x > 0, g, 0.1 * g)


LEAKY_THRESHOLD = 0.5


class LeakyMaskOff(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, 0.1 * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.where(x > LEAKY_THRESHOLD, g, 0.1 * g)  # the mask is off by a threshold


# --------------------------------------------------------- nondeterministic
class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


class CubeNoisy(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g + 1e-3 * torch.rand(x.shape, dtype=x.dtype) * g


# ------------------------------------------------------------- second-order
class CubeSavesInput(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g


class CubeSavesSquare(Function):
    @staticmethod
    def forward(ctx, x):
        square = x * x  # computed without autograd: backward cannot differentiate through it
        ctx.save_for_backward(square)
        return square * x

    @staticmethod
    def backward(ctx, g):
        (square,) = ctx.saved_tensors
        return 3 * square * g


# --------------------------------------------------------------------- kink
class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype)


# ---------------------------------------------------------------- precision
class FastSine(Function):
    """sin(30 x): right, but its third derivative (2.7e4) makes central differences coarse."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(30 * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 30 * torch.cos(30 * x) * g


# ------------------------------------------------------------------ unknown
class SquareExpGrad(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.exp(x) * g  # nothing like 2x, and no simple relation to it


# ---------------------------------------------------------- contract errors
class TwoGradsForOne(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2, g


class GradOfWrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return torch.ones(2, dtype=g.dtype)


class InplaceOnSaved(Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return y.mul_(g)


class LegacyForward(Function):
    def forward(self, x):
        return x * 2

    def backward(self, g):
        return g * 2


class SavesAFloat(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x, 2.0)
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2
