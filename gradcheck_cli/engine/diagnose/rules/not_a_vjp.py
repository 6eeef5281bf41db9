"""not-a-vjp: backward is not linear in grad_output (it clamps, gates or rescales it)."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis

# What each broken property of linearity says about backward (see checks/linearity.py).
BREAKS = {
    "sign": "it clamps or gates on grad_output's sign (the gradient of `{name}` for -g is "
            "not minus the one for g)",
    "scale": "it does not scale with grad_output (the gradient of `{name}` for 2g is not "
             "twice the one for g: it normalizes grad_output, or uses it squared?)",
    "sum": "the gradient of `{name}` for g₁ + g₂ is not the sum of those for g₁ and g₂ "
           "(it takes a maximum, a norm or a threshold of grad_output?)",
}


class NotAVjp(Rule):
    """The vjp check's diagnosis (no Jacobian form: the Jacobian rows, from one-hot
    grad_outputs, agree). Told from backward's answers to g and -g, then g and 2g: the
    first that disagrees names the property broken."""

    kind = Kind.NOT_A_VJP

    def told(self, name: str, breaks: str) -> Diagnosis:
        return Diagnosis(self.kind, "backward is not linear in grad_output: "
                         + BREAKS[breaks].format(name=name)
                         + "; return a vector-Jacobian product, grad_output times the "
                           "derivative")


RULE = NotAVjp()
