"""Input drafts for a target, from its forward's source: the guess and its fallbacks, untried.

`draft_inputs(target)` is the reusable entry point: the distinct drafts, best first, as
input specs, with nothing run or written. `guesses(target)` are the same drafts with the
comment `gradcheck-cli init` writes beside each input.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gradcheck_cli.engine.describe import safe_repr, type_name
from gradcheck_cli.init.facts import Settings
from gradcheck_cli.init.shape_inference import Inference
from gradcheck_cli.init.symbols import Dim
from gradcheck_cli.init.yaml_text import entry_yaml, literal

if TYPE_CHECKING:
    from gradcheck_cli.specs.specfile import InputSpec
    from gradcheck_cli.target.discovery import Target

PLACEHOLDER = (3, 4)
# The value of a parameter forward uses as a plain number (a scale, a slope): not 0 or 1,
# which would hide a missing factor, and not negative, which could leave forward's domain.
PLAIN_NUMBER = 1.5
SIZES = (3, 4, 2, 5, 6, 7, 8, 9, 10, 11)  # distinct, so a transposed dim shows in the check


@dataclass
class Guess:
    """Input specs for one trial, with a comment per parameter."""

    specs: list[InputSpec]
    comments: list[str]
    todo: list[bool]
    notes: list[str] = field(default_factory=list)
    biases: set[str] = field(default_factory=set)


def draft_inputs(target: Target) -> list[tuple[InputSpec, ...]]:
    """The input drafts for `target`, best first, each once; nothing is run or written.

    The first is the guess from forward's source; the others fall back (a `None` default
    made a tensor, no bias-shaped parameters, every free size 3) for when it does not run.
    A caller tries them in order and keeps the first forward and backward run with, as
    `gradcheck-cli init` does (`trial.first_that_runs`, which also widens a draft whose
    outputs are not finite into forward's domain).
    """
    found: list[tuple[InputSpec, ...]] = []
    for candidate in guesses(target):
        specs = tuple(candidate.specs)
        if specs not in found:
            found.append(specs)
    return found


def guesses(target: Target) -> list[Guess]:
    """The guess from forward's source, then its fallbacks, in the order to try them."""
    if target.kind == "custom_op":
        return _op_guesses(target)
    forward = forward_node(target)
    cls = target.obj
    none_grads = none_gradients(cls, len(target.params)) if isinstance(cls, type) else set()
    first = guess(target, forward, none_grads, Settings())
    tried = [first]
    if any(p.has_default and p.default is None for p in target.params):
        tried.append(guess(target, forward, none_grads, Settings(none_as_tensor=True)))
    if first.biases:
        tried.append(guess(target, forward, none_grads, Settings(bias=False)))
    tried.append(guess(target, forward, none_grads, Settings(square=True)))
    return tried


def callees_of(target: Target) -> dict[str, ast.FunctionDef]:
    """The forwards of the autograd Functions in the target's module, by name: what
    `Fn.apply(...)` in its code runs."""
    import sys

    import torch

    obj = target.obj
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    found: dict[str, ast.FunctionDef] = {}
    for name, value in vars(module).items() if module is not None else ():
        if isinstance(value, type) and issubclass(value, torch.autograd.Function) \
                and value is not obj:
            node = _function_node(_method(value, "forward"))
            if node is not None:
                found[name] = node
    return found


def _op_guesses(target: Target) -> list[Guess]:
    """A custom op's guesses: shapes from its kernel's source, values as its schema says."""
    from gradcheck_cli.init.schema_drafts import slot_entries
    from gradcheck_cli.target.custom_op import OpTarget
    from gradcheck_cli.target.records import Param

    assert isinstance(target, OpTarget)
    kernel = target.kernel_node()
    # The kernel sees each argument whole (a Tensor[] as one list), by its own names (a
    # define-style kernel may name them otherwise than the schema): guessed as such.
    names = [s.name for s in target.slots]
    if kernel is not None:
        own = [a.arg for a in [*kernel.args.args, *kernel.args.kwonlyargs]]
        names = own if len(own) == len(names) else names
    whole = replace(target, kind="callable", obj=None, params=[
        Param(n, *_as_number(s)) for n, s in zip(names, target.slots)])
    variants = [Settings()]
    if any(s.type == "Tensor?" for s in target.slots):
        variants.append(Settings(none_as_tensor=True))
    variants.append(Settings(square=True))
    tried = []
    for settings in variants:
        base = guess(whole, kernel, set(), settings)
        by_name = {s.name: (s, c, t) for s, c, t in zip(base.specs, base.comments, base.todo)}
        made = Guess([], [], [], [], base.biases)
        for slot, name in zip(target.slots, names):
            spec, comment, todo = by_name.get(name, (None, "", False))
            if spec is not None:
                spec = replace(spec, name=slot.name)
            for entry, why, look in slot_entries(slot, spec, comment, todo):
                made.specs.append(entry)
                made.comments.append(why)
                made.todo.append(look)
        tried.append(made)
    return tried


def _as_number(slot: Any) -> tuple[bool, Any]:
    """A default for the guess of a schema argument that is a plain value (float, bool,
    str, lists): the shape inference must not take `x * alpha` to make alpha a tensor. An
    int keeps none, so that its use as a dim or size is seen."""
    if slot.has_default or slot.type.startswith(("Tensor", "int")):
        return slot.has_default, slot.default
    return True, 1.5 if slot.type in ("float", "Scalar") else None


def forward_node(target: Target) -> ast.FunctionDef | None:
    """The AST of the target's forward (of a plain callable, itself; of a custom op, its
    kernel); None without source."""
    if target.kind == "custom_op":
        from gradcheck_cli.target.custom_op import OpTarget

        return target.kernel_node() if isinstance(target, OpTarget) else None
    obj = target.obj
    return _function_node(_method(obj, "forward") if isinstance(obj, type) else obj)


def _function_node(fn: Any) -> ast.FunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            return node
    return None


def _method(cls: type, name: str) -> Any:
    raw = inspect.getattr_static(cls, name, None)
    if isinstance(raw, (staticmethod, classmethod)):
        return raw.__func__
    return raw


def none_gradients(cls: type, count: int) -> set[int]:
    """Positions whose gradient backward always returns as a literal None."""
    node = _function_node(_method(cls, "backward"))
    if node is None:
        return set()
    returns = [n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None]
    if not returns:
        return set()
    found: set[int] | None = None
    for ret in returns:
        assert ret.value is not None
        items = ret.value.elts if isinstance(ret.value, (ast.Tuple, ast.List)) else [ret.value]
        here = {i for i, item in enumerate(items[:count])
                if isinstance(item, ast.Constant) and item.value is None}
        found = here if found is None else found & here
    return found or set()


class _Sizer:
    """Concrete sizes for dims: fixed ones kept, free ones numbered 3, 4, 2, 5, ..."""

    def __init__(self, square: bool) -> None:
        self.square = square
        self.sizes: dict[int, int] = {}

    def size(self, dim: Dim) -> int:
        root = dim.root()
        if root.size is not None:
            return root.size
        if id(root) not in self.sizes:
            self.sizes[id(root)] = 3 if self.square else SIZES[len(self.sizes) % len(SIZES)]
        return self.sizes[id(root)]


def guess(target: Target, forward: ast.FunctionDef | None, none_grads: set[int],
          settings: Settings) -> Guess:
    """One guess at the inputs of `target`, from forward's AST."""
    from gradcheck_cli.specs.specfile import LiteralInput, TensorInput

    names = [p.name for p in target.params]
    defaults = {p.name: p.default for p in target.params if p.has_default}
    inference = Inference(names, defaults, settings)
    inference.callees = callees_of(target)
    if forward is not None:
        inference.walk(forward.body)
    sizer = _Sizer(settings.square)
    result = Guess([], [], [], biases=set(inference.biases))
    plain = plain_numbers(forward) if forward is not None else set()

    def add(spec: InputSpec, comment: str, todo: bool = False) -> None:
        result.specs.append(spec)
        result.comments.append(comment)
        result.todo.append(todo)

    for index, param in enumerate(target.params):
        name = param.name
        if param.has_default:
            if literal(param.default) is None:
                # Defaults trail: this one and the rest are left to forward.
                rest = ", ".join(f"{p.name}={_short_repr(p.default)}"
                                 for p in target.params[index:])
                result.notes.append(f"forward's defaults are kept for {rest} (not YAML values)")
                break
            comment = "forward's default"
            if param.default is None and name in inference.reasons:
                shape, reason, _ = _tensor_shape(inference, name, sizer, settings)
                tensor = TensorInput(shape=shape, name=name)
                if settings.none_as_tensor:
                    add(tensor, f"{reason}; a tensor, as forward/backward failed with "
                                "its default None")
                    continue
                comment += f"; to check its gradient too, write - {entry_yaml(tensor)}"
            elif isinstance(param.default, tuple):
                comment += " (a tuple; forward gets a list)"
            add(LiteralInput(param.default, name=name), comment)
            continue
        if name in inference.int_params and name not in inference.reasons:
            add(LiteralInput(-1, name=name),
                "TODO: an int (forward uses it as a dim or size); check the value", True)
            continue
        if index in none_grads and name in plain:
            add(LiteralInput(PLAIN_NUMBER, name=name),
                "a plain number: forward keeps it on ctx and backward returns None for it")
            continue
        if name in inference.indices:
            shape, _, _ = _tensor_shape(inference, name, sizer, settings)
            size = sizer.size(inference.indices[name])
            add(TensorInput(shape=shape, dtype="int64", low=0, high=size,
                            requires_grad=False, name=name),
                f"an index tensor: int64 values in [0, {size}), the size it indexes")
            continue
        shape, comment, is_todo = _tensor_shape(inference, name, sizer, settings)
        low, high = inference.domains.get(name, (None, None))
        requires_grad = index not in none_grads
        if low is not None:
            comment += "; low/high keep it in forward's domain"
        if not requires_grad:
            comment += "; backward returns None for it, so its gradient is not checked"
        add(TensorInput(shape=shape, low=low, high=high, requires_grad=requires_grad,
                        name=name), comment, is_todo)
    return result


def plain_numbers(forward: ast.FunctionDef) -> set[str]:
    """Parameters forward treats as plain numbers: kept as an attribute of ctx
    (`ctx.slope = slope`; tensors go through save_for_backward) or passed to float()/int()."""
    params = {a.arg for a in forward.args.args}
    found: set[str] = set()
    for node in ast.walk(forward):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) \
                and node.value.id in params \
                and any(isinstance(t, ast.Attribute) for t in node.targets):
            found.add(node.value.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("float", "int") and node.args \
                and isinstance(node.args[0], ast.Name) and node.args[0].id in params:
            found.add(node.args[0].id)
    return found


def _short_repr(value: Any) -> str:
    text = safe_repr(value)
    if " at 0x" in text:  # an address changes from run to run
        text = f"<{type_name(value)} object>"
    return text if len(text) <= 40 else text[:37] + "..."


def _tensor_shape(inference: Inference, name: str, sizer: _Sizer,
                  settings: Settings) -> tuple[tuple[int, ...], str, bool]:
    """The shape guessed for tensor parameter `name`, why, and whether it needs a look."""
    root = inference.shapes[name].root()
    if root.dims is None:
        shape: tuple[int, ...] = (3, 3) if settings.square else PLACEHOLDER
        if name not in inference.used:
            return shape, "not used by forward: any shape", False
        if root.elementwise and not root.opaque:
            same = [p for p, s in inference.shapes.items()
                    if p != name and p in inference.used and s.root() is root]
            if same:
                return shape, f"any shape, the same as {', '.join(same)}", False
            return shape, "any shape: forward does not constrain it", False
        return shape, "TODO: shape not inferred from forward; set the one it expects", True
    shape = tuple(sizer.size(d) for d in root.dims)
    reason = inference.reasons.get(name)
    comment = f"from `{reason}`" if reason else "the shape of what it combines with"
    if root.opaque:
        return shape, "TODO: check it; " + comment, True
    return shape, comment, False
