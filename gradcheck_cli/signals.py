"""SIGTERM and SIGHUP end a run as Ctrl-C does: what finished is reported, then 128+signal.

A CI cancel, `timeout`, `docker stop` or a closed terminal sends one of these. Each becomes
a `Terminated` (a KeyboardInterrupt), so the one interrupt path that Ctrl-C takes also
marks the unfinished checks, writes the reports asked for and stops the workers.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

CAUGHT = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
               if s is not None)


class Terminated(KeyboardInterrupt):
    """The run was ended by `signum` (SIGTERM or SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


RECEIVED: list[int] = []  # the signals that arrived: a Terminated then is never the user's


def _raise(signum: int, frame: FrameType | None) -> None:
    # Once: a second signal while the report is written must not cut it short.
    for caught in CAUGHT:
        signal.signal(caught, signal.SIG_IGN)
    RECEIVED.append(signum)
    raise Terminated(signum)


def install() -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP into `Terminated` in this (main) thread; a signal the
    caller ignores (`nohup`) stays ignored. Returns what to give `restore`."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for signum in CAUGHT:
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _raise)
    return previous


def restore(previous: dict[int, Any]) -> None:
    """Put back the handlers `install` replaced (a caller in the same process, such as a
    test calling the command line, keeps its own)."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def exit_code(exc: BaseException | None) -> int | None:
    """128 + the signal for a `Terminated`, as a shell reports a process it ended; None
    for anything else (Ctrl-C keeps pytest's 2)."""
    return 128 + exc.signum if isinstance(exc, Terminated) else None
