"""Writing the starter spec `gradcheck-cli init FILE.py` makes: one tried draft per Function.

Shapes are guessed from how forward uses each parameter (its AST: `x @ w`, `.T`,
`+ bias`, `.view(...)`, `x.shape[0]`, `F.linear`, `einsum`, ...; see `shape_inference`),
then tried: forward and backward are run once on CPU with the guess, and a guess that does
not run is replaced by one that does where a simpler one exists, else marked TODO with the
error. Parameters with defaults keep them as literals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gradcheck_cli.errors import GradcheckCliError
from gradcheck_cli.init.complex_use import complexified, uses_complex
from gradcheck_cli.init.drafting import forward_node, guesses
from gradcheck_cli.init.trial import first_that_runs
from gradcheck_cli.init.yaml_text import entry_yaml, literal, needs_quotes
from gradcheck_cli.specs.specfile import InputSpec, TensorInput
from gradcheck_cli.streams import user_output_to_stderr

if TYPE_CHECKING:
    from gradcheck_cli.target.discovery import Target


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
    init: dict[str, None] | None = None  # an nn.Module's constructor arguments to fill in

    @property
    def todos(self) -> int:
        return sum(e.todo for e in self.entries) + sum(n.startswith("TODO") for n in self.notes)


def draft(target: Target) -> Draft:
    """The spec entry for one Function (or nn.Module): guessed, tried, and commented."""
    result = Draft(target.name)
    if forward_node(target) is None:
        result.notes.append("TODO: forward's source was not found; the shapes are placeholders")
    if target.varargs:
        result.notes.append("TODO: forward takes *args; add an entry per extra argument")
    if target.kind == "legacy":
        result.notes.append("TODO: forward is not a @staticmethod (a legacy Function); "
                            "gradcheck-cli reports it as an error until it is")
    if target.kind == "module":
        return _module_draft(target, result)
    tried = guesses(target)
    if uses_complex(target):  # complex inputs first: a real one hides a missing .conj()
        tried = [replace(g, specs=list(complexified(tuple(g.specs)))) for g in tried] + tried
    chosen = tried[0]
    if target.kind != "legacy":
        chosen, error = first_that_runs(target, tried)
        if error is not None:
            result.notes.append(f"TODO: with these shapes forward/backward raised {error}")
    result.notes.extend(chosen.notes)
    for spec, comment, is_todo in zip(chosen.specs, chosen.comments, chosen.todo):
        result.entries.append(Entry(spec.name or "?", entry_yaml(spec), comment, is_todo))
    return result


def _module_draft(target: Target, result: Draft) -> Draft:
    """An nn.Module's entry: constructor arguments to fill in, or inputs found by trying."""
    from gradcheck_cli.init.choose import choose_inputs
    from gradcheck_cli.settings import DEFAULT_SHAPE
    from gradcheck_cli.target.module import required_init_args

    missing = required_init_args(target.obj)
    if missing:
        result.init = {name: None for name in missing}
        result.notes.append("TODO: its constructor needs " + ", ".join(missing)
                            + ": fill them in under `init`, and the input shapes they imply")
        for param in target.params:
            result.entries.append(Entry(param.name, entry_yaml(
                TensorInput(shape=(3, 4), name=param.name)), "TODO: the shape forward expects",
                True))
        return result
    chosen = choose_inputs(target, {}, DEFAULT_SHAPE)
    specs: tuple[InputSpec, ...]
    if chosen.specs is None:
        result.notes.append(f"TODO: no input shape found that forward runs with "
                            f"({chosen.problem})")
        specs = tuple(TensorInput(shape=(3, 4), name=p.name) for p in target.params)
    else:
        specs = chosen.specs
    for spec in specs:
        result.entries.append(Entry(spec.name or "?", entry_yaml(spec),
                                    "found by trying: forward runs with it (its parameters "
                                    "are checked too)", chosen.specs is None))
    return result


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
        f"module: {literal(module) if needs_quotes(module) else module}",
        "functions:",
    ]
    for entry in drafts:
        lines.append(f"  {entry.name}:")
        for note in entry.notes:
            lines.append(f"    # {note}")
        if entry.init:
            fill = ", ".join(f"{name}: null" for name in entry.init)
            lines.append(f"    init: {{{fill}}}   # TODO: constructor arguments")
        if not entry.entries:
            lines.append("    inputs: []               # forward takes no arguments")
            continue
        lines.append("    inputs:")
        width = max(len(e.yaml) for e in entry.entries) + 8
        for item in entry.entries:
            head = f"      - {item.yaml}"
            lines.append(f"{head.ljust(width)}  # {item.comment}")
    return "\n".join(lines) + "\n"


def write_spec(path: Path, output: Path, force: bool) -> tuple[Path, list[Draft]]:
    """Import `path`, draft every Function, write the spec to `output`."""
    from gradcheck_cli.specs.collect import display
    from gradcheck_cli.target.discovery import find_targets, import_file

    if output.exists() and not force:
        raise GradcheckCliError(f"{display(output)} already exists; not overwriting it",
                                hint="pass --force to replace it, or -o to write elsewhere")
    with user_output_to_stderr():
        module = import_file(path)
    # A plain function composing Functions is checked by a bare run; a spec names what
    # is hand-written (Functions) and the modules built on them.
    targets = find_targets(module, path.resolve(), plain_functions=False)
    if not targets:
        raise GradcheckCliError(f"no torch.autograd.Function subclass is defined in "
                                f"{display(path)}; nothing to write")
    drafts = [draft(t) for t in targets]
    text = render(drafts, module_reference(path, output), display(path), display(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return output, drafts
