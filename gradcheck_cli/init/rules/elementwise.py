"""Rules for elementwise ops: the result has the operands' (broadcast) shape; some need a domain."""

from __future__ import annotations

from gradcheck_cli.init.facts import Facts
from gradcheck_cli.init.rules.registry import TensorCall, TensorRule, evaluate_all, tensor_op
from gradcheck_cli.init.symbols import POSITIVE, Value


def _same_shape(facts: Facts, call: TensorCall) -> Value:
    evaluate_all(facts, [*call.args, *call.keywords.values()])
    call.base.shape.root().elementwise = True
    return call.base


@tensor_op(
    "abs", "absolute", "neg", "negative", "exp", "exp2", "expm1", "sin", "cos", "tan", "atan",
    "arctan", "sinh", "cosh", "tanh", "asinh", "arcsinh", "sigmoid", "relu", "relu6", "elu",
    "selu", "celu", "gelu", "silu", "mish", "softplus", "softsign", "tanhshrink", "hardtanh",
    "hardsigmoid", "hardswish", "leaky_relu", "logsigmoid", "square", "sign", "sgn", "erf",
    "erfc", "floor", "ceil", "round", "trunc", "frac", "clamp", "clip", "clamp_min",
    "clamp_max", "nan_to_num", "detach", "clone", "contiguous", "float", "double", "half", "to",
    "cpu", "cuda", "type_as", "requires_grad_", "flip", "fliplr", "flipud", "roll", "triu",
    "tril", "masked_fill", "zeros_like", "ones_like", "empty_like", "rand_like", "randn_like",
    "full_like", "dropout", "normalize", "sinc", "deg2rad", "rad2deg", "conj", "real", "relu_",
    "sigmoid_", "tanh_", "exp_", "neg_", "abs_", "clamp_", "threshold", "heaviside")
def elementwise(facts: Facts, call: TensorCall) -> Value:
    """`x.exp()`, `torch.relu(x)`, `x.clamp(0, 1)`: the shape of `x`, whatever it is."""
    return _same_shape(facts, call)


def _in_domain(domain: tuple[float, float]) -> TensorRule:
    """An elementwise rule whose tensor needs values in `domain` (for finite values)."""
    def rule(facts: Facts, call: TensorCall) -> Value:
        facts.domain(call.base_node, domain)
        return _same_shape(facts, call)
    return rule


tensor_op("log", "log2", "log10", "log1p", "sqrt", "rsqrt", "reciprocal", "lgamma",
          "digamma")(_in_domain(POSITIVE))
tensor_op("asin", "acos", "atanh", "arcsin", "arccos", "arctanh", "erfinv")(_in_domain((-0.9, 0.9)))
tensor_op("logit")(_in_domain((0.1, 0.9)))
tensor_op("acosh", "arccosh")(_in_domain((1.5, 3.0)))


@tensor_op("softmax", "log_softmax", "cumsum", "cumprod", "logcumsumexp")
def along_dim(facts: Facts, call: TensorCall) -> Value:
    """`x.softmax(dim)`: the shape of `x`; a parameter given as the dim is an int."""
    result = _same_shape(facts, call)
    if call.args:
        facts.int_arg(call.args[0])
    return result


def _broadcast_all(facts: Facts, call: TensorCall, additive: bool) -> Value:
    result: Value = call.base
    for arg in call.args:
        result = facts.broadcast(result, facts.ev(arg), call.node, call.base_node, arg, additive)
    return result


@tensor_op("add", "sub", "subtract", "add_", "sub_")
def additive(facts: Facts, call: TensorCall) -> Value:
    """`x.add(b)`: broadcast, where a free operand may be a bias (as with `+`)."""
    return _broadcast_all(facts, call, additive=True)


@tensor_op(
    "mul", "multiply", "div", "divide", "true_divide", "floor_divide", "remainder", "fmod",
    "pow", "float_power", "maximum", "minimum", "fmax", "fmin", "atan2", "arctan2", "hypot",
    "copysign", "xlogy", "eq", "ne", "lt", "le", "gt", "ge", "logaddexp", "logaddexp2", "lerp",
    "addcmul", "addcdiv", "where", "mul_", "div_")
def binary(facts: Facts, call: TensorCall) -> Value:
    """`x.mul(y)`, `torch.where(c, x, y)`: the operands broadcast together."""
    return _broadcast_all(facts, call, additive=False)
