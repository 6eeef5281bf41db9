"""Every diagnosis kind: the values `Diagnosis.kind` holds; each member is also its rule's entry."""

from __future__ import annotations

import enum


class Kind(str, enum.Enum):
    """A diagnosis kind. Each member is the registration of one rule: its module is
    `gradcheck_cli.engine.diagnose.rules.<value, dashes as underscores>`, whose `RULE` (a
    `Rule`) holds the kind's exact form and probe form (see `registry`)."""

    NONDETERMINISTIC = "nondeterministic"
    KINK = "kink"
    IGNORES_GRAD_OUTPUT = "ignores-grad-output"
    SECOND_ORDER = "second-order"
    ZERO = "zero"
    SWAPPED = "swapped"
    SIGN = "sign"
    CONJUGATE = "conjugate"
    SCALE = "scale"
    TRANSPOSED = "transposed"
    PARTIAL = "partial"
    UNKNOWN = "unknown"
    PRECISION = "precision"
    NEEDS_INPUT_GRAD = "needs-input-grad"
    NOT_A_VJP = "not-a-vjp"

    def __str__(self) -> str:
        return self.value
