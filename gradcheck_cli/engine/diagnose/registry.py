"""The rule of each diagnosis kind, loaded from `rules/<kind>.py`, and the chains they form."""

from __future__ import annotations

import importlib
from functools import cache

from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule


@cache
def rule_for(kind: Kind) -> Rule:
    """The rule of `kind`: module `rules/<kind>.py`'s RULE (dashes as underscores)."""
    module = importlib.import_module(
        f"gradcheck_cli.engine.diagnose.rules.{kind.value.replace('-', '_')}")
    rule = module.RULE
    if not isinstance(rule, Rule) or rule.kind is not kind:
        raise TypeError(f"{module.__name__}.RULE is not the Rule of {kind.value!r}")
    return rule


def rules() -> list[Rule]:
    """Every kind's rule, in the order of `Kind`."""
    return [rule_for(kind) for kind in Kind]


def chain(mode: str) -> list[Rule]:
    """The rules with a form for `mode` ("exact" or "probe"), in the order they are tried."""
    ranked = [(rule.rank(mode), index, rule) for index, rule in enumerate(rules())]
    return [rule for rank, _, rule in sorted(ranked, key=lambda r: (r[0] or 0, r[1]))
            if rank is not None]


def evidence_rules() -> list[Rule]:
    """The rules that measure something in probe mode while a failed probe is at hand, in
    probe order: the first that finds its evidence ends the search (it will be the
    diagnosis)."""
    return [rule for rule in chain("probe") if rule.gathers]
