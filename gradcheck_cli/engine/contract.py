"""Exceptions from the user's code or autograd's contract checks -> plain words and a location."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gradcheck_cli.engine.describe import safe_str, summary
from gradcheck_cli.engine.resources import out_of_memory, ran_out
from gradcheck_cli.target.discovery import Target, user_frame


@dataclass
class Explanation:
    """What went wrong, where, and how to fix it."""

    message: str
    file: str | None
    line: int | None
    kind: str = "exception"

    @property
    def location(self) -> str | None:
        if self.file is None:
            return None
        return f"{self.file}:{self.line}" if self.line else self.file


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def explain(exc: BaseException, target: Target, names: list[str], phase: str) -> Explanation:
    """Turn an exception raised while running `phase` ("forward", "backward", ...) into words.

    An allocation that failed is raised as `OutOfMemory` instead: the check cannot go on,
    and whatever caught `exc` must not make a verdict of it."""
    file, line = user_frame(exc, target.file)
    if out_of_memory(exc):
        raise ran_out(exc, phase, where=f"{file}:{line}" if file else None) from None
    text = safe_str(exc)
    backward_at = (str(target.file), target.backward_line)
    forward_at = (str(target.file), target.forward_line or target.line)

    def name_of(position: int) -> str:
        return f"`{names[position]}`" if 0 <= position < len(names) else f"#{position}"

    match = re.search(r"returned an incorrect number of gradients \(expected (\d+), got (\d+)\)",
                      text)
    if match:
        expected, got = int(match.group(1)), int(match.group(2))
        return Explanation(
            _join(f"backward returned {got} gradient(s) but forward takes {expected} input(s).",
                  "Return one gradient per input of forward, in order, with None for inputs "
                  "that need no gradient (non-tensors included)."),
            *backward_at, kind="wrong-gradient-count")
    match = re.search(r"returned an invalid gradient at index (\d+) - got \[([\d, ]*)\] but "
                      r"expected shape compatible with \[([\d, ]*)\]", text)
    if match:
        index = int(match.group(1))
        return Explanation(
            _join(f"backward's gradient {index} (for input {name_of(index)}) has shape "
                  f"({match.group(2)}) but the input has shape ({match.group(3)}).",
                  "Each gradient must have its input's shape: check the order of the returned "
                  "gradients, and sum over broadcast dimensions."),
            *backward_at, kind="wrong-gradient-shape")
    match = re.search(r"returned an invalid gradient at index (\d+) - expected (\w+) (.*)", text)
    if match:
        index = int(match.group(1))
        return Explanation(
            f"backward's gradient {index} (for input {name_of(index)}) has the wrong "
            f"{match.group(2)}: expected {match.group(3)}.",
            *backward_at, kind="wrong-gradient-type")
    if "modified by an inplace operation" in text:
        return Explanation(
            _join("a tensor saved for backward was modified in place, so backward gave a "
                  "different result the second time it ran on the same graph.",
                  "Do not change ctx.saved_tensors (or the inputs and outputs you saved) in "
                  "place: write `g = g * 2`, not `g.mul_(2)`, and clone before in-place ops.",
                  f"(torch: {text.splitlines()[0]})"),
            file or backward_at[0], line or backward_at[1], kind="inplace-saved-tensor")
    if "save_for_backward can only save variables" in text or (
        "save_for_backward" in text and "tensor" in text.lower()
    ):
        return Explanation(
            _join(f"ctx.save_for_backward was given a non-tensor ({text}).",
                  "save_for_backward takes tensors only: keep other values as attributes, "
                  "e.g. `ctx.dim = dim`."),
            file or forward_at[0], line or forward_at[1], kind="save-non-tensor")
    if "non-static forward method" in text or "Legacy autograd function" in text:
        return Explanation(legacy_message(target), *forward_at, kind="legacy-forward")
    if "must implement the jvp function" in text:
        return Explanation(
            "forward-mode AD needs a `jvp` staticmethod on this Function, and it has none.",
            str(target.file), target.line, kind="missing-jvp")
    where = f" in {phase}" if phase else ""
    return Explanation(summary(exc, where), file or str(target.file), line or target.line)


def legacy_message(target: Target) -> str:
    return (
        f"{target.name}.forward is not a @staticmethod (a legacy autograd Function, which "
        "torch no longer runs). Add @staticmethod above `def forward` and `def backward`, "
        "take `ctx` as their first argument, and call it as "
        f"`{target.name}.apply(...)`."
    )

