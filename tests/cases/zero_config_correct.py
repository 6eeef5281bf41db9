"""Ordinary correct ops as people write them, run with no spec: every one must be checked
and pass (inputs inferred from forward: related shapes, domains, index tensors, plain
numbers, an nn.Module built on a custom Function)."""

import torch
import torch.nn.functional as F
from torch.autograd import Function


class FLinear(Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        return g @ weight, g.t() @ x, g.sum(0)


class MatMulT(Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w.t()

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w, g.t() @ x


class BatchedMatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return torch.einsum("bij,bjk->bik", a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return torch.einsum("bik,bjk->bij", g, b), torch.einsum("bij,bik->bjk", a, g)


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g / (2 * y)


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        grad_x = torch.nn.grad.conv2d_input(x.shape, weight, g)
        grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, g)
        return grad_x, grad_w


class IndexSelect(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.save_for_backward(index)
        ctx.rows = x.shape[0]
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        grad = g.new_zeros((ctx.rows, *g.shape[1:]))
        grad.index_add_(0, index, g)
        return grad, None


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, indices):
        ctx.save_for_backward(indices)
        ctx.num = weight.shape[0]
        return F.embedding(indices, weight)

    @staticmethod
    def backward(ctx, g):
        (indices,) = ctx.saved_tensors
        grad = g.new_zeros(ctx.num, g.shape[-1])
        grad.index_add_(0, indices.reshape(-1), g.reshape(-1, g.shape[-1]))
        return grad, None


class ScaleBy(Function):
    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x * factor

    @staticmethod
    def backward(ctx, g):
        return g * ctx.factor, None


class SumDim(Function):
    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        ctx.shape = x.shape
        return x.sum(dim)

    @staticmethod
    def backward(ctx, g):
        return g.unsqueeze(ctx.dim).expand(ctx.shape), None


class Softmax(Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.softmax(x, dim=-1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return y * (g - (g * y).sum(-1, keepdim=True))


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class MulAdd(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return g * x, g * w, g


class Outer(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return torch.outer(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g @ b, g.t() @ a


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class MyLinear(torch.nn.Module):
    def __init__(self, n_in=3, n_out=5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_out, n_in))
        self.bias = torch.nn.Parameter(torch.randn(n_out))

    def forward(self, x):
        return FLinear.apply(x, self.weight, self.bias)


class TwoLayerNet(torch.nn.Module):
    def __init__(self, n_in=4, hidden=6, n_out=2):
        super().__init__()
        self.fc1 = MyLinear(n_in, hidden)
        self.fc2 = MyLinear(hidden, n_out)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def two_layer(x, w1, b1, w2, b2):
    """A plain function composing a custom Function: its shapes are inferred through it."""
    return FLinear.apply(torch.tanh(FLinear.apply(x, w1, b1)), w2, b2)
