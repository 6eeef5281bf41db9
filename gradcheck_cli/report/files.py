"""Writing pictures and scripts into a folder the user names, where failing is one warning.

--plot and --save-repro write after the checks ran: a folder that cannot be made or written
(read-only, below a regular file, a full disk) must not cost the run its report or change
its exit code. The first failure is told once, naming the folder, and the files after it
are not tried (they would fail alike).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

from gradcheck_cli.report.safe import printable

Warn = Callable[[str], None]


def warn_on_stderr(message: str) -> None:
    sys.stderr.write(f"gradcheck-cli: warning: {message}\n")
    sys.stderr.flush()


class Folder:
    """`path`, made on the first write; `what` names one of its files in the warning
    (`a plot`)."""

    def __init__(self, path: Path, what: str, warn: Warn = warn_on_stderr) -> None:
        self.path = path
        self.what = what
        self.warn = warn
        self.failure: str | None = None
        self.skipped = 0

    def write(self, name: str, write: Callable[[Path], None]) -> Path | None:
        """`write(folder / name)`; the path written, or None once a write has failed."""
        if self.failure is not None:
            self.skipped += 1
            return None
        path = self.path / name
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            write(path)
        except OSError as exc:
            self.failure = exc.strerror or str(exc)
            self.skipped += 1
            with contextlib.suppress(OSError):  # a part written before the disk filled up
                path.unlink(missing_ok=True)
            return None
        return path

    def finish(self) -> None:
        """Tell the failure, if any, once."""
        if self.failure is None:
            return
        self.warn(f"cannot write {self.what} into {printable(str(self.path))}: "
                  f"{printable(self.failure)} ({self.skipped} not written; the results "
                  "are not affected)")
