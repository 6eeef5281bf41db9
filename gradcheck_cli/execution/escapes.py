"""The user's exits and interrupts in a check, told from a real Ctrl-C: that check's error."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from gradcheck_cli.engine.describe import safe_repr, type_name
from gradcheck_cli.errors import GradcheckCliError

ESCAPES = (SystemExit, GeneratorExit, KeyboardInterrupt)

_WHY = {
    "SystemExit": "sys.exit() or exit() in a check would end the whole run; raise an "
                  "exception instead",
    "GeneratorExit": "GeneratorExit escaped the user's code (a generator closed by hand?); "
                     "raise an ordinary exception instead",
    "KeyboardInterrupt": "the code raised KeyboardInterrupt itself (this was not Ctrl-C); "
                         "raise an ordinary exception instead",
}


class Watch:
    """Whether a real SIGINT arrived while the user's code ran."""

    def __init__(self, watching: bool) -> None:
        # False where no handler of ours could be installed (not the main thread, or a
        # handler written in C): the traceback's frames decide then.
        self.watching = watching
        self.signalled = False

    def escape(self, exc: BaseException, module: Path) -> GradcheckCliError | None:
        """The error to report for `exc` raised by the user's code in `module`; None when
        `exc` is not the user's to lose (a real Ctrl-C, or not an exit at all)."""
        if not isinstance(exc, ESCAPES):
            return None
        from gradcheck_cli.target.discovery import user_frame

        file, line = user_frame(exc, module)
        if isinstance(exc, KeyboardInterrupt) and not self._users(exc, file):
            return None
        name = type_name(exc)
        args = ", ".join(safe_repr(a) for a in _args(exc))
        # A subclass (class Stop(SystemExit)) is explained as the escape it is.
        why = next(_WHY[base.__name__] for base in ESCAPES if isinstance(exc, base))
        return GradcheckCliError(
            f"the user's code raised {name}({args}): {why}",
            file=_display(file) if file else None, line=line)

    def _users(self, exc: KeyboardInterrupt, file: str | None) -> bool:
        from gradcheck_cli import signals

        if self.signalled or (isinstance(exc, signals.Terminated) and signals.RECEIVED):
            return False
        if self.watching:
            return True
        # The innermost frame decides: a raise in the user's file is theirs.
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        return tb is not None and file is not None and tb.tb_frame.f_code.co_filename == file


def _args(exc: BaseException) -> tuple[object, ...]:
    try:
        args = exc.args
    except Exception:  # a property of the user's that raises
        return ()
    return tuple(args) if isinstance(args, tuple) else ()


def _display(file: str | None) -> str:
    from gradcheck_cli.specs.collect import display

    return display(Path(file)) if file else ""


@contextmanager
def watch() -> Iterator[Watch]:
    """Note a real SIGINT while the block runs (it still interrupts, as before)."""
    if threading.current_thread() is not threading.main_thread():
        # Signals reach only the main thread: a KeyboardInterrupt here was raised.
        yield Watch(True)
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        yield Watch(True)  # a worker: Ctrl-C is the parent's, any KeyboardInterrupt raised
        return
    if not callable(previous):
        yield Watch(False)
        return
    seen = Watch(True)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        seen.signalled = True
        previous(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
