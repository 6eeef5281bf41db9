"""An nn.Module as a target: a function of (inputs, parameters), each parameter its own input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.seeding import manual_seed
from gradcheck_cli.errors import GradcheckCliError
from gradcheck_cli.specs.collect import display
from gradcheck_cli.specs.specfile import TensorInput
from gradcheck_cli.target.discovery import Target
from gradcheck_cli.target.records import Layout


def module_target(target: Target, args: list[Any], names: list[str], init: dict[str, Any],
                  seed: int, device: str, layout: Layout | None = None
                  ) -> tuple[Target, list[Any], list[str]]:
    """An nn.Module as a function of (inputs, parameters), via torch.func.functional_call.

    The parameters become inputs named as in `named_parameters()` (`fc1.weight`), so each
    gets its own per-input error.
    """
    manual_seed(seed)
    if isinstance(target.obj, torch.nn.Module):  # an instance (the API's): a copy of it
        import copy

        instance = copy.deepcopy(target.obj).to(device=device, dtype=torch.float64)
        return _as_function(instance, target, args, names, layout)
    try:
        instance = target.obj(**init)
    except Exception as exc:
        why = explain(exc, target, names, "__init__")
        hint = None if init else "give its constructor arguments under `init:` in the spec"
        raise GradcheckCliError(f"constructing {target.name}(**init) failed: {why.message}",
                                file=display(Path(why.file)) if why.file else None,
                                line=why.line, hint=hint) from None
    instance = instance.to(device=device, dtype=torch.float64)
    return _as_function(instance, target, args, names, layout)


def _as_function(instance: torch.nn.Module, target: Target, args: list[Any], names: list[str],
                 layout: Layout | None = None) -> tuple[Target, list[Any], list[str]]:
    named = [(n, p) for n, p in instance.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_(True) for _, p in named]
    count = len(args)

    def call(*all_args: Any) -> Any:
        weights = {n: a for (n, _), a in zip(named, all_args[count:])}
        inputs, keywords = (layout.pack(all_args[:count]) if layout is not None
                            else (list(all_args[:count]), {}))
        return torch.func.functional_call(instance, weights, tuple(inputs), keywords)

    wrapped = Target(name=target.name, kind="callable", obj=call, file=target.file,
                     line=target.line, params=target.params, forward_line=target.forward_line,
                     backward_line=target.forward_line)
    return wrapped, [*args, *params], [*names, *(n for n, _ in named)]


def required_init_args(cls: type) -> list[str]:
    """The constructor's parameters that have no default (what `init:` must give)."""
    import inspect

    try:
        signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return []
    return [name for name, p in list(signature.parameters.items())[1:]
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def first_input_drafts(instance: torch.nn.Module, name: str) -> list[TensorInput]:
    """What its forward's first input (`name`) may be, read off its layers: the features of
    a Linear, the channels of a convolution, indices for an Embedding, the last dims of a
    LayerNorm, then a matrix per size its parameters have. Best guesses first."""
    found: list[TensorInput] = []
    for layer in list(instance.modules())[1:4] or [instance]:
        if isinstance(layer, torch.nn.Linear):
            found.append(TensorInput(shape=(3, layer.in_features), name=name))
        elif isinstance(layer, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            spatial = {torch.nn.Conv1d: (9,), torch.nn.Conv2d: (7, 7),
                       torch.nn.Conv3d: (5, 5, 5)}[type(layer)]
            found.append(TensorInput(shape=(2, layer.in_channels, *spatial), name=name))
        elif isinstance(layer, torch.nn.Embedding):
            found.append(TensorInput(shape=(2, 5), dtype="int64", low=0,
                                     high=layer.num_embeddings, requires_grad=False,
                                     name=name))
        elif isinstance(layer, torch.nn.LayerNorm):
            found.append(TensorInput(shape=(3, *layer.normalized_shape), name=name))
    for param in instance.parameters():
        for size in reversed(param.shape):
            found.append(TensorInput(shape=(3, int(size)), name=name))
    return list(dict.fromkeys(found))
