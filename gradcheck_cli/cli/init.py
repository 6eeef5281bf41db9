"""The `init` verb: `gradcheck-cli init FILE.py` writes a starter spec beside or for the op."""

from __future__ import annotations

from pathlib import Path

import click

from gradcheck_cli.errors import ExitCode, UsageError
from gradcheck_cli.quiet import quiet_torch_import


@click.command(name="init", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Where to write the spec. Default: specs/<stem>.yaml when ./specs/ exists, "
                   "else <stem>.yaml beside the .py file.")
@click.option("--force", is_flag=True, help="Overwrite the spec if it exists.")
def command(path: Path, output: Path | None, force: bool) -> int:
    """Write a starter spec for every autograd Function defined in PATH (a .py file).

    Shapes are guessed from how forward uses each argument and tried once on CPU;
    what could not be guessed is marked TODO.
    """
    from gradcheck_cli.init.scaffold import default_output, write_spec
    from gradcheck_cli.specs.collect import display
    from gradcheck_cli.specs.specfile import load_spec

    if path.suffix != ".py":
        raise UsageError(f"not a Python file: {path}", hint="give the .py file that defines "
                         "your torch.autograd.Function subclasses")
    if output is None:
        output = default_output(path)
    elif output.is_dir():
        output = output / f"{path.stem}.yaml"
    quiet_torch_import()
    written, drafts = write_spec(path, output, force)
    check = load_spec(written, display(written))
    if check.error is not None or any(f.error for f in check.functions):
        problem = check.error or next(f.error for f in check.functions if f.error)
        click.echo(f"gradcheck-cli init: internal error: the spec written does not load: "
                   f"{problem}", err=True)
        return ExitCode.INTERNAL_ERROR
    names = ", ".join(d.name for d in drafts)
    click.echo(f"wrote {display(written)}: {len(drafts)} Function(s) ({names})")
    todos = sum(d.todos for d in drafts)
    if todos:
        click.echo(f"{todos} place(s) marked TODO need a look")
    click.echo(f"next: gradcheck-cli {display(written)}")
    return ExitCode.OK
