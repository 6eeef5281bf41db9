"""Exceptions that cannot be shown (a __str__, __repr__ or class name that raises, or that do
not pickle) are their check's `error`, in process and in workers, never a crash (#12, item 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.engine.describe import safe_repr, safe_str, summary, traceback_text, type_name

OPS = '''import torch


class BadStr(Exception):
    def __str__(self):
        raise ValueError("no message for you")

    def __repr__(self):
        raise ValueError("no repr either")


class NoName(type):
    def __getattribute__(cls, name):
        if name in ("__name__", "__qualname__"):
            raise RuntimeError("no name")
        return super().__getattribute__(name)


class Nameless(Exception, metaclass=NoName):
    def __str__(self):
        raise TypeError("nothing")


class Unpicklable(Exception):
    def __init__(self, a, b):  # two required arguments: unpickling calls it with one
        super().__init__(a)
        self.hook = lambda: b  # and a lambda cannot be pickled at all


class BadExit(SystemExit):
    def __str__(self):
        raise ValueError("no message")


class NoRepr:
    def __repr__(self):
        raise RuntimeError("nope")


class Good(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, grad):
        return grad * 3


class InForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise BadStr()

    @staticmethod
    def backward(ctx, grad):
        return grad


class InBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, grad):
        raise BadStr()


class NamelessInForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise Nameless()

    @staticmethod
    def backward(ctx, grad):
        return grad


class UnpicklableInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, grad):
        raise Unpicklable("cannot cross a pipe", 2)


class ExitInForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise BadExit(NoRepr())

    @staticmethod
    def backward(ctx, grad):
        return grad


class Net(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        raise BadStr()

    def forward(self, x):
        return x
'''

SPEC = """module: ops.py
functions:
  Good: {inputs: [{shape: [3]}]}
  InForward: {inputs: [{shape: [3]}]}
  InBackward: {inputs: [{shape: [3]}]}
  NamelessInForward: {inputs: [{shape: [3]}]}
  UnpicklableInBackward: {inputs: [{shape: [3]}]}
  ExitInForward: {inputs: [{shape: [3]}]}
  Net: {init: {width: 3}, inputs: [{shape: [3]}]}
"""

UNSHOWN = "(its message could not be shown: __str__ raised {})"
EXPECTED = {
    "InForward": (f"BadStr in forward {UNSHOWN.format('ValueError')}", "raise BadStr()"),
    "InBackward": (f"BadStr in backward {UNSHOWN.format('ValueError')}", "raise BadStr()"),
    "NamelessInForward": (f"Nameless in forward {UNSHOWN.format('TypeError')}",
                          "raise Nameless()"),
    "UnpicklableInBackward": ("Unpicklable in backward: cannot cross a pipe",
                              'raise Unpicklable("cannot cross a pipe", 2)'),
    "ExitInForward": ("the user's code raised BadExit(<NoRepr (its message could not be shown: "
                      "__repr__ raised RuntimeError)>): sys.exit() or exit() in a check would "
                      "end the whole run; raise an exception instead",
                      "raise BadExit(NoRepr())"),
}


def _line(text: str, after: str | None = None) -> int:
    lines = OPS.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines[start:], start + 1) if line.strip() == text)


@pytest.mark.parametrize("jobs", ["0", "2"])
def test_exceptions_that_cannot_be_shown_are_their_checks_errors(
        tmp_path: Path, run_json: Any, jobs: str) -> None:
    (tmp_path / "ops.py").write_text(OPS)
    (tmp_path / "ops.yaml").write_text(SPEC)
    (tmp_path / "bad.py").write_text(
        "class BadStr(Exception):\n    def __str__(self):\n        raise ValueError\n\n\n"
        "raise BadStr()\n")
    (tmp_path / "bad.yaml").write_text("module: bad.py\nfunctions:\n"
                                       "  Good: {inputs: [{shape: [3]}]}\n")
    doc = run_json("ops.yaml", "bad.yaml", "-j", jobs, "--no-cache", in_process=jobs == "0")
    assert doc["_exit_code"] == 1
    assert "Traceback" not in doc["_stderr"], doc["_stderr"]
    got = {(r["function"], r["check"]): r for r in doc["results"]}
    assert set(got) == {(name, check) for name in ("Good", *EXPECTED, "Net")
                        for check in ("gradcheck", "gradgradcheck")} | {(None, "-")}
    assert len(got) == len(doc["results"])
    for check in ("gradcheck", "gradgradcheck"):
        assert got["Good", check]["status"] == "passed"
        for name, (message, raised) in EXPECTED.items():
            result = got[name, check]
            line = _line(raised, f"class {name}(")
            assert (result["status"], result["location"]) == ("error", f"ops.py:{line}"), result
            if name == "ExitInForward":
                message = f"ops.py:{line}: {message}"
            assert result["message"] == message, result["message"]
        net = got["Net", check]
        assert net["status"] == "error"
        assert net["message"] == (f"ops.py:{_line('raise BadStr()', 'class Net(')}: "
                                  f"constructing Net(**init) failed: BadStr in __init__ "
                                  f"{UNSHOWN.format('ValueError')}")
    module = got[None, "-"]
    assert (module["status"], module["location"]) == ("error", "bad.py:6")
    assert module["message"] == (
        "bad.py:6: importing the module raised BadStr "
        f"{UNSHOWN.format('ValueError')}\n  hint: the module must import without side "
        "effects failing; run `python FILE` to see the full traceback")


def test_init_drafts_around_an_exception_that_cannot_be_shown(tmp_path: Path,
                                                              run_cli: Any) -> None:
    (tmp_path / "ops.py").write_text(OPS)
    code, _, err = run_cli("init", "ops.py", "-o", "draft.yaml")
    assert code == 0, err
    draft = (tmp_path / "draft.yaml").read_text()
    assert ("  InForward:\n    # TODO: with these shapes forward/backward raised BadStr "
            f"{UNSHOWN.format('ValueError')}\n") in draft, draft
    assert ("  NamelessInForward:\n    # TODO: with these shapes forward/backward raised "
            f"Nameless {UNSHOWN.format('TypeError')}\n") in draft, draft


def test_init_of_a_module_that_raises_an_unshowable_exception(tmp_path: Path,
                                                              run_cli: Any) -> None:
    (tmp_path / "bad.py").write_text(OPS + "\n\nraise Nameless()\n")
    code, out, err = run_cli("init", "bad.py")
    assert code == 1, (out, err)
    assert "Traceback" not in err
    line = len(OPS.splitlines()) + 3
    assert err.startswith(f"gradcheck-cli init: error: {tmp_path / 'bad.py'}:{line}: importing "
                          f"the module raised Nameless {UNSHOWN.format('TypeError')}"), err


class _Hostile(Exception):
    def __str__(self) -> str:
        raise SystemExit(1)  # even an exit from __str__ must not escape a description

    def __repr__(self) -> str:
        raise KeyboardInterrupt


class _NoName(type):
    def __getattribute__(cls, name: str) -> Any:
        if name in ("__name__", "__qualname__"):
            raise RuntimeError
        return super().__getattribute__(name)


class _Nameless(Exception, metaclass=_NoName):
    pass


def test_descriptions_never_raise() -> None:
    try:
        raise _Hostile
    except _Hostile as caught:
        hostile: BaseException = caught
    assert safe_str(hostile) == UNSHOWN.format("SystemExit")
    assert summary(hostile, " in forward") == f"_Hostile in forward {UNSHOWN.format('SystemExit')}"
    assert safe_repr(hostile) == ("<_Hostile (its message could not be shown: __repr__ raised "
                                  "KeyboardInterrupt)>")
    assert type_name(_Nameless()) == "_Nameless"
    assert summary(_Nameless("plain")) == "_Nameless: plain"
    text = traceback_text(hostile)
    assert text.startswith("Traceback (most recent call last):\n")
    assert "raise _Hostile" in text
    assert summary(ValueError("x" * 10_000)).endswith("... (6000 more characters)")
