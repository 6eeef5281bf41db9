"""An nn.Module as a target: a function of (inputs, parameters), each parameter its own input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gradcheck_cli.engine.contract import explain
from gradcheck_cli.errors import GradcheckCliError
from gradcheck_cli.specs.collect import display
from gradcheck_cli.target.discovery import Target


def module_target(target: Target, args: list[Any], names: list[str], init: dict[str, Any],
                  seed: int, device: str) -> tuple[Target, list[Any], list[str]]:
    """An nn.Module as a function of (inputs, parameters), via torch.func.functional_call.

    The parameters become inputs named as in `named_parameters()` (`fc1.weight`), so each
    gets its own per-input error.
    """
    torch.manual_seed(seed)
    try:
        instance = target.obj(**init)
    except Exception as exc:
        why = explain(exc, target, names, "__init__")
        hint = None if init else "give its constructor arguments under `init:` in the spec"
        raise GradcheckCliError(f"constructing {target.name}(**init) failed: {why.message}",
                                file=display(Path(why.file)) if why.file else None,
                                line=why.line, hint=hint) from None
    instance = instance.to(device=device, dtype=torch.float64)
    named = [(n, p) for n, p in instance.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_(True) for _, p in named]
    count = len(args)

    def call(*all_args: Any) -> Any:
        weights = {n: a for (n, _), a in zip(named, all_args[count:])}
        return torch.func.functional_call(instance, weights, tuple(all_args[:count]))

    wrapped = Target(name=target.name, kind="callable", obj=call, file=target.file,
                     line=target.line, params=target.params, forward_line=target.forward_line,
                     backward_line=target.forward_line)
    return wrapped, [*args, *params], [*names, *(n for n, _ in named)]
