"""A two-layer nn.Module on custom linear Functions, fc1's right and fc2's (a class of its
own) wrong: the failure names fc2's Function and points at its backward, not at forward."""

import torch
from torch import nn
from torch.autograd import Function


class TwoLayer(nn.Module):
    def __init__(self, bug="weight"):
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.fc2 = nn.Linear(5, 3)
        self.second = {"none": Linear, "weight": DoubledWeight, "input": NegatedInput}[bug]

    def forward(self, x):
        h = torch.tanh(Linear.apply(x, self.fc1.weight, self.fc1.bias))
        return self.second.apply(h, self.fc2.weight, self.fc2.bias)


class Linear(Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        return g @ weight, g.T @ x, g.sum(0)


class DoubledWeight(Linear):
    @staticmethod
    def backward(ctx, g):  # fc2's bug: its weight's gradient doubled
        x, weight = ctx.saved_tensors
        return g @ weight, 2 * g.T @ x, g.sum(0)


class NegatedInput(Linear):
    @staticmethod
    def backward(ctx, g):  # fc2's bug: its input's gradient negated, so fc1's come out wrong
        x, weight = ctx.saved_tensors
        return -g @ weight, g.T @ x, g.sum(0)
