"""The user's exceptions in plain words, even those whose __str__, __repr__ or name raises."""

from __future__ import annotations

import traceback
from typing import Any

# A message longer than this is cut: a __str__ may return megabytes, which would swamp the
# report (and the JSON) without saying more than its start.
MAX_CHARS = 4000
_NAME = type.__dict__["__name__"]  # the slot itself: a metaclass cannot intercept it


def type_name(value: object) -> str:
    """The name of `value`'s class, read past a metaclass that overrides the lookup."""
    try:
        name = _NAME.__get__(type(value), type)
    except BaseException:  # nothing in a description may raise
        return "an object"
    return name if isinstance(name, str) else "an object"


def _failure(method: str, exc: BaseException) -> str:
    return f"(its message could not be shown: {method} raised {type_name(exc)})"


def _cut(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    return f"{text[:MAX_CHARS]}... ({len(text) - MAX_CHARS} more characters)"


def _text(exc: BaseException) -> tuple[str | None, BaseException | None]:
    try:
        text = str(exc)
    except BaseException as inner:  # the user's __str__ may raise anything, exit included
        return None, inner
    return (_cut(text), None) if isinstance(text, str) else (None, None)


def message(exc: BaseException) -> str | None:
    """`str(exc)`, cut to a readable length; None when its __str__ raises."""
    return _text(exc)[0]


def safe_str(exc: BaseException) -> str:
    """`str(exc)`, or words saying why it could not be shown: never raises."""
    text, inner = _text(exc)
    if text is not None:
        return text
    return _failure("__str__", inner) if inner is not None else "(its message could not be shown)"


def first_line(exc: BaseException) -> str:
    """The first line of the message (or why there is none to show)."""
    return _first(safe_str(exc))


def _first(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


def summary(exc: BaseException, where: str = "", whole: bool = False) -> str:
    """`Name<where>: first line of the message` (all of it if `whole`), e.g. "ValueError in
    forward: bad shape"; `Name<where> (its message could not be shown: __str__ raised
    ...)` when __str__ raises."""
    name = type_name(exc)
    text, inner = _text(exc)
    if text is None:
        shown = _failure("__str__", inner) if inner is not None else "(no message)"
        return f"{name}{where} {shown}"
    shown = text.strip() if whole else _first(text)
    return f"{name}{where}: {shown}" if shown else f"{name}{where}"


def safe_repr(value: Any) -> str:
    """`repr(value)`, or a stand-in naming its class when __repr__ raises."""
    try:
        text = repr(value)
    except BaseException as exc:
        return f"<{type_name(value)} {_failure('__repr__', exc)}>"
    return _cut(text) if isinstance(text, str) else f"<{type_name(value)}>"


def traceback_text(exc: BaseException) -> str:
    """The formatted traceback of `exc`, or its frames and summary where formatting the
    exception itself raises (a class name or message that cannot be read)."""
    try:
        return "".join(traceback.format_exception(exc))
    except BaseException:
        pass
    try:
        frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    except BaseException:
        frames = ""
    return f"Traceback (most recent call last):\n{frames}{summary(exc)}\n"
