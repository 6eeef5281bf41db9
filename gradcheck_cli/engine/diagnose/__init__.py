"""Diagnosis: a Jacobian mismatch -> the most likely bug, one rule per kind.

`kinds.Kind` lists the kinds, and each member registers its rule, `rules/<kind>.py`'s
`RULE` (a `rule.Rule`): its exact form (from the kept Jacobian blocks), its probe form
(from probe mode's measurements, and what its `gather` measured after a failed probe),
and its rank in each mode. `diagnoser.diagnose` tries the rules of each failing input's
mode by rank and keeps the first diagnosis, then lets rules with a `review` take a second
look at the whole check. Pure computation: no I/O.
"""
