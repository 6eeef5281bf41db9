"""One base error for everything the user can fix, each knowing where it happened."""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable


class ExitCode(enum.IntEnum):
    """The exit status of a run, as pytest's: the one vocabulary for every front end."""

    OK = 0  # every check passed (skipped checks allowed)
    FAILED = 1  # some check failed or errored
    INTERRUPTED = 2  # Ctrl-C: what finished is still reported
    INTERNAL_ERROR = 3  # a bug of gradcheck-cli
    USAGE_ERROR = 4  # bad option, missing path, unknown name
    NO_CHECKS = 5  # nothing collected
    HANGUP = 129  # SIGHUP (a closed terminal): what finished is still reported
    TERMINATED = 143  # SIGTERM (a CI cancel, `timeout`, `docker stop`): likewise

    @classmethod
    def for_signal(cls, signum: int | None) -> ExitCode:
        """The code of an interrupted run: 128 + SIGTERM or SIGHUP, 2 for Ctrl-C."""
        for code in (cls.HANGUP, cls.TERMINATED):
            if signum is not None and code == 128 + signum:
                return code
        return cls.INTERRUPTED


class GradcheckCliError(Exception):
    """A problem the user can fix: it carries a location and, where we know one, a hint."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.hint = hint

    @property
    def location(self) -> str | None:
        if self.file is None:
            return None
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def __str__(self) -> str:
        text = self.message
        if self.location:
            text = f"{self.location}: {text}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class SpecError(GradcheckCliError):
    """A spec file that cannot be read or does not follow the format."""


class ModuleLoadError(GradcheckCliError):
    """The user's Python file cannot be imported."""


class UsageError(GradcheckCliError):
    """Bad command-line use: exit code 4, as pytest."""

    exit_code = ExitCode.USAGE_ERROR


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest valid choice for a misspelt `word`, phrased as a hint, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None
