"""needs-input-grad: with another input frozen, an input's gradient goes missing or changes."""

from __future__ import annotations

from dataclasses import dataclass

from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis


@dataclass(frozen=True)
class Sweep:
    """What the frozen-inputs sweep saw of one input whose gradient is wrong in some run."""

    name: str
    frozen: tuple[str, ...]  # the inputs frozen in the first run where it was wrong
    missing: bool  # that run gave no gradient (None) for it; else one of other values
    error: float  # the largest difference from the all-inputs run
    # The input whose requires_grad decides, across every run, whether this one's gradient
    # is there (its index in forward's arguments, its name), when one input does.
    governed_by: tuple[int, str] | None = None
    indexed: bool = True  # the target is an autograd Function: needs_input_grad[i] names it


class NeedsInputGrad(Rule):
    """The frozen-inputs check's diagnosis (no Jacobian form: it compares backward's own
    answers with and without other inputs frozen). A backward that reads
    `ctx.needs_input_grad` to skip work is right when every input requires grad, as in
    gradcheck; reading the wrong index skips an input's gradient exactly when another input
    is frozen, which the presence pattern across the runs names."""

    kind = Kind.NEEDS_INPUT_GRAD

    def sweep(self, seen: Sweep) -> Diagnosis:
        name = f"`{seen.name}`"
        frozen = " and ".join(f"`{n}`" for n in seen.frozen)
        if seen.governed_by is not None:
            index, other = seen.governed_by
            looks = (f"backward looks at ctx.needs_input_grad[{index}] for {name}?"
                     if seen.indexed else
                     f"backward gives it only when `{other}` requires grad")
            return Diagnosis(self.kind, f"with {frozen} frozen, the gradient of {name} is "
                                        f"missing: {looks} (it is there exactly when "
                                        f"`{other}` requires grad)")
        if seen.missing:
            return Diagnosis(self.kind, f"with {frozen} frozen, the gradient of {name} is "
                                        f"missing (None) although {name} requires grad: "
                                        "check the ctx.needs_input_grad test that guards it")
        need = "needs" if len(seen.frozen) == 1 else "need"
        return Diagnosis(self.kind, f"with {frozen} frozen, the gradient of {name} changes "
                                    f"(by up to {seen.error:.3g}): backward computes it "
                                    f"differently when {frozen} {need} no gradient (a term "
                                    "left out under a ctx.needs_input_grad test?)")


RULE = NeedsInputGrad()
