"""Names that tell results apart: JUnit test names, annotation titles, picture and script files.

A result is one spec x Function x case x device x check. Two results never share a name,
however long their names are or however they are cut: a name shared by two results is
qualified with the spec, one still shared (or cut short) gets a hash of the whole
identity, and identical results a counter.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence

from gradcheck_cli.results import CheckResult

NAME_LIMIT = 200  # characters of a test name or title: CI tools cut or reject longer ones
STEM_KEEP = 80  # characters of a file stem's readable part: far below 255 bytes
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def identity(result: CheckResult, *extra: str) -> str:
    """Everything that tells `result` apart from another, as one string."""
    parts = [result.spec, result.module, result.function, result.case, result.device,
             result.check, *extra]
    return "\0".join(str(p) for p in parts)


def digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def cut(name: str, key: str, limit: int = NAME_LIMIT) -> str:
    """`name` when it is at most `limit` characters; else its start, `…` and a hash of
    `key` (the full identity), so that two long names cut alike stay apart."""
    if len(name) <= limit:
        return name
    tail = f"…#{digest(key)}"
    return name[:max(limit - len(tail), 0)] + tail


def distinct(names: Sequence[str], results: Sequence[CheckResult],
             qualify: Callable[[CheckResult], str],
             groups: Sequence[str] | None = None) -> list[str]:
    """`names` (one per result; compared within the same `groups` entry, if given) made
    unique: shared ones get ` (qualify(result))`, then the hash of the identity; every
    name is cut to NAME_LIMIT; results alike in every way are numbered."""
    group = list(groups) if groups is not None else [""] * len(names)
    keys = [identity(r) for r in results]

    def shared(current: list[str]) -> list[bool]:
        counts = Counter(zip(group, current))
        return [counts[(g, n)] > 1 for g, n in zip(group, current)]

    current = list(names)
    clash = shared(current)
    current = [f"{n} ({qualify(r)})" if c else n for n, r, c in zip(current, results, clash)]
    clash = shared(current)
    current = [f"{n} #{digest(k, 8)}" if c else n for n, k, c in zip(current, keys, clash)]
    current = [cut(n, k) for n, k in zip(current, keys)]
    seen: Counter[tuple[str, str]] = Counter()
    unique = []
    for g, n in zip(group, current):
        seen[(g, n)] += 1
        unique.append(n if seen[(g, n)] == 1 else f"{n} #{seen[(g, n)]}")
    return unique


def file_stem(result: CheckResult, *extra: str) -> str:
    """`Fn_case_device_check[_extra]`, safe as a file name (pictures, repro scripts)."""
    raw = "_".join([str(result.function), result.case, result.device, result.check, *extra])
    return _UNSAFE.sub("_", raw)


def unique_stem(result: CheckResult, taken: set[str], *extra: str) -> str:
    """`Fn_case_device_check[_extra]` when that is already a safe, short, unused name;
    otherwise shortened, with a hash of what identifies the result, so that `a b`, `a/b`
    and `a?b`, two specs' same Function or two 300-character cases never share a file.
    The stem is ASCII and at most STEM_KEEP + 11 characters. Adds it to `taken`."""
    raw = "_".join([str(result.function), result.case, result.device, result.check, *extra])
    stem = file_stem(result, *extra)
    if not (_SAFE.fullmatch(raw) and len(raw) <= STEM_KEEP and stem not in taken):
        stem = f"{stem[:STEM_KEEP]}_{digest(identity(result, *extra))}"
    base, count = stem, 1
    while stem in taken:  # the same result twice (one spec given twice)
        count += 1
        stem = f"{base}_{count}"
    taken.add(stem)
    return stem
