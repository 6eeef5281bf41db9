"""`gradcheck-cli init FILE.py`: write a starter spec for every autograd Function in a file.

Shapes are guessed from how forward uses each parameter (its AST: `x @ w`, `.T`,
`+ bias`, `.view(...)`, `x.shape[0]`, `F.linear`, `einsum`, ...; see `shape_inference`),
then tried: forward and backward are run once on CPU with the guess, and a guess that does
not run is replaced by one that does where a simpler one exists, else marked TODO with the
error. Parameters with defaults keep them as literals.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradcheck_cli.errors import GradcheckCliError
from gradcheck_cli.init.shape_inference import POSITIVE, Dim, Inference, Settings
from gradcheck_cli.streams import user_output_to_stderr

if TYPE_CHECKING:
    from gradcheck_cli.specs.specfile import InputSpec
    from gradcheck_cli.target.discovery import Target

PLACEHOLDER = (3, 4)
SIZES = (3, 4, 2, 5, 6, 7, 8, 9, 10, 11)  # distinct, so a transposed dim shows in the check
NON_FINITE = "forward returned non-finite values"


# ---------------------------------------------------------------- per-Function drafts


@dataclass
class Entry:
    """One line under `inputs`: the YAML of the value and a comment."""

    name: str
    yaml: str
    comment: str
    todo: bool = False


@dataclass
class Draft:
    """What init writes for one Function."""

    name: str
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def todos(self) -> int:
        return sum(e.todo for e in self.entries) + sum(n.startswith("TODO") for n in self.notes)


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


@dataclass
class _Guess:
    """Input specs for one trial, with a comment per parameter."""

    specs: list[InputSpec]
    comments: list[str]
    todo: list[bool]
    notes: list[str] = field(default_factory=list)
    biases: set[str] = field(default_factory=set)


def _literal(value: Any) -> str | None:
    """`value` as a YAML flow scalar or collection that PyYAML reads back equal; else None."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent if exponent[0] in '+-' else '+' + exponent}"
        return text
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        items = [_literal(v) for v in value]
        strings = [i for i in items if i is not None]
        return "[" + ", ".join(strings) + "]" if len(strings) == len(items) else None
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        pairs = [(json.dumps(k), _literal(v)) for k, v in value.items()]
        if any(v is None for _, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


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
          settings: Settings) -> _Guess:
    """One guess at the inputs of `target`, from forward's AST."""
    from gradcheck_cli.specs.specfile import LiteralInput, TensorInput

    names = [p.name for p in target.params]
    defaults = {p.name: p.default for p in target.params if p.has_default}
    inference = Inference(names, defaults, settings)
    if forward is not None:
        inference.walk(forward.body)
    sizer = _Sizer(settings.square)
    result = _Guess([], [], [], biases=set(inference.biases))

    def add(spec: InputSpec, comment: str, todo: bool = False) -> None:
        result.specs.append(spec)
        result.comments.append(comment)
        result.todo.append(todo)

    for index, param in enumerate(target.params):
        name = param.name
        if param.has_default:
            if _literal(param.default) is None:
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
                comment += f"; to check its gradient too, write - {_entry_yaml(tensor)}"
            elif isinstance(param.default, tuple):
                comment += " (a tuple; forward gets a list)"
            add(LiteralInput(param.default, name=name), comment)
            continue
        if name in inference.int_params and name not in inference.reasons:
            add(LiteralInput(-1, name=name),
                "TODO: an int (forward uses it as a dim or size); check the value", True)
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


def _short_repr(value: Any) -> str:
    text = repr(value)
    if " at 0x" in text:  # an address changes from run to run
        text = f"<{type(value).__name__} object>"
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


def trial(target: Target, specs: list[InputSpec]) -> str | None:
    """Run forward and backward once on CPU; None when they run, else what went wrong."""
    import torch

    from gradcheck_cli.engine.inputs import build_inputs
    from gradcheck_cli.engine.vjp import vjp

    try:
        built = build_inputs(target, tuple(specs), 0, "cpu")
        with user_output_to_stderr():
            out = target.call(*built.args)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            tensors = [o for o in outs if isinstance(o, torch.Tensor)]
            for o in tensors:
                if (o.is_floating_point() or o.is_complex()) and not bool(
                        torch.isfinite(o.detach()).all()):
                    return NON_FINITE
            diff_out = [o for o in tensors if o.requires_grad]
            diff_in = [a for a in built.args if isinstance(a, torch.Tensor) and a.requires_grad]
            if diff_out and diff_in:
                vjp(diff_out, diff_in, [torch.ones_like(o) for o in diff_out])
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"{type(exc).__name__}: {first}"[:200]
    return None


def _with_domain(specs: list[InputSpec]) -> list[InputSpec]:
    from dataclasses import replace

    from gradcheck_cli.specs.specfile import TensorInput

    return [replace(s, low=POSITIVE[0], high=POSITIVE[1])
            if isinstance(s, TensorInput) and s.low is None else s for s in specs]


def draft(target: Target) -> Draft:
    """The spec entry for one Function: guessed, tried, and commented."""
    result = Draft(target.name)
    cls = target.obj
    forward = _function_node(_method(cls, "forward")) if isinstance(cls, type) else None
    none_grads = none_gradients(cls, len(target.params)) if isinstance(cls, type) else set()
    if forward is None:
        result.notes.append("TODO: forward's source was not found; the shapes are placeholders")
    if target.varargs:
        result.notes.append("TODO: forward takes *args; add an entry per extra argument")
    if target.kind == "legacy":
        result.notes.append("TODO: forward is not a @staticmethod (a legacy Function); "
                            "gradcheck-cli reports it as an error until it is")
    first = guess(target, forward, none_grads, Settings())
    tried: list[_Guess] = [first]
    if any(p.has_default and p.default is None for p in target.params):
        tried.append(guess(target, forward, none_grads, Settings(none_as_tensor=True)))
    if first.biases:
        tried.append(guess(target, forward, none_grads, Settings(bias=False)))
    tried.append(guess(target, forward, none_grads, Settings(square=True)))
    chosen = first
    if target.kind != "legacy":
        chosen, error = _first_that_runs(target, tried)
        if error is not None:
            result.notes.append(f"TODO: with these shapes forward/backward raised {error}")
    result.notes.extend(chosen.notes)
    for spec, comment, is_todo in zip(chosen.specs, chosen.comments, chosen.todo):
        result.entries.append(Entry(spec.name or "?", _entry_yaml(spec), comment, is_todo))
    return result


def _first_that_runs(target: Target, tried: list[_Guess]) -> tuple[_Guess, str | None]:
    """The first guess forward and backward run with (widened into forward's domain when
    its outputs are not finite), marking what differs from the first guess; else the
    first guess and its error."""
    from gradcheck_cli.specs.specfile import TensorInput

    first_error: str | None = None
    seen: list[list[InputSpec]] = []
    for candidate in tried:
        if candidate.specs in seen:
            continue
        seen.append(candidate.specs)
        specs, comments = candidate.specs, list(candidate.comments)
        problem = trial(target, specs)
        if problem == NON_FINITE:
            widened = _with_domain(specs)
            if trial(target, widened) is None:
                comments = [c + "; low/high keep forward finite" if w != s else c
                            for c, s, w in zip(comments, specs, widened)]
                specs, problem = widened, None
        if problem is None:
            for i, (spec, base) in enumerate(zip(specs, tried[0].specs)):
                if (isinstance(spec, TensorInput) and isinstance(base, TensorInput)
                        and spec.shape != base.shape):
                    comments[i] = "TODO: check it; found by trying (forward runs with it)"
            todo = [t or c.startswith("TODO") for t, c in zip(candidate.todo, comments)]
            return _Guess(specs, comments, todo, candidate.notes, candidate.biases), None
        first_error = first_error or problem
    return tried[0], first_error


def _entry_yaml(spec: InputSpec) -> str:
    from gradcheck_cli.specs.specfile import TensorInput

    if isinstance(spec, TensorInput):
        parts = [f"shape: [{', '.join(map(str, spec.shape))}]"]
        if spec.low is not None:
            parts.append(f"low: {_literal(spec.low)}")
        if spec.high is not None:
            parts.append(f"high: {_literal(spec.high)}")
        if not spec.requires_grad:
            parts.append("requires_grad: false")
        parts.append(f"name: {spec.name}")
        return "{" + ", ".join(parts) + "}"
    literal = _literal(spec.value)
    return "{value: " + (literal or "null") + f", name: {spec.name}}}"


# ---------------------------------------------------------------- the spec file


def default_output(path: Path, cwd: Path | None = None) -> Path:
    """`specs/<stem>.yaml` when the working directory has a specs/ folder, else beside the .py."""
    cwd = cwd or Path.cwd()
    if (cwd / "specs").is_dir():
        return cwd / "specs" / f"{path.stem}.yaml"
    return path.parent / f"{path.stem}.yaml"


def module_reference(module: Path, spec: Path) -> str:
    """The `module:` value: the .py's path relative to the spec's folder, with `/`."""
    module, folder = module.resolve(), spec.resolve().parent
    try:
        return Path(os.path.relpath(module, folder)).as_posix()
    except ValueError:  # another drive
        return module.as_posix()


def render(drafts: list[Draft], module: str, source: str, spec_shown: str) -> str:
    """The text of the starter spec."""
    lines = [
        f"# Starter spec written by `gradcheck-cli init {source}`.",
        "# Under `inputs`, one entry per argument of forward (after ctx), in order:",
        "#   {shape: [...]}   a float64 tensor, uniform in [low, high] (default [-1, 1]); its",
        "#                    gradient is checked unless `requires_grad: false`",
        "#   {value: ...}     passed to forward as is (a number, a list, null)",
        "# Fix what is marked TODO, add `cases:` for more shapes, then run:",
        f"#   gradcheck-cli {spec_shown}",
        f"module: {_literal(module) if _needs_quotes(module) else module}",
        "functions:",
    ]
    for entry in drafts:
        lines.append(f"  {entry.name}:")
        for note in entry.notes:
            lines.append(f"    # {note}")
        if not entry.entries:
            lines.append("    inputs: []               # forward takes no arguments")
            continue
        lines.append("    inputs:")
        width = max(len(e.yaml) for e in entry.entries) + 8
        for item in entry.entries:
            head = f"      - {item.yaml}"
            lines.append(f"{head.ljust(width)}  # {item.comment}")
    return "\n".join(lines) + "\n"


def _needs_quotes(text: str) -> bool:
    return (not text or text[0] in "!&*?|>'\"%@`{[-#,:" or ": " in text or " #" in text
            or text != text.strip())


def write_spec(path: Path, output: Path, force: bool) -> tuple[Path, list[Draft]]:
    """Import `path`, draft every Function, write the spec to `output`."""
    from gradcheck_cli.specs.collect import display
    from gradcheck_cli.target.discovery import find_functions, import_file

    if output.exists() and not force:
        raise GradcheckCliError(f"{display(output)} already exists; not overwriting it",
                                hint="pass --force to replace it, or -o to write elsewhere")
    with user_output_to_stderr():
        module = import_file(path)
    targets = find_functions(module, path.resolve())
    if not targets:
        raise GradcheckCliError(f"no torch.autograd.Function subclass is defined in "
                                f"{display(path)}; nothing to write")
    drafts = [draft(t) for t in targets]
    text = render(drafts, module_reference(path, output), display(path), display(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return output, drafts
