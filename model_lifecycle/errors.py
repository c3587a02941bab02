"""Error classes shared by every step, each carrying the exit code the toolkit promises.

Exit codes are part of the interface that workflows rely on:
0 success or pass, 1 the gate (or a compare-and-set) said no, 2 bad input or usage,
3 an outside service failed after bounded retries.

The API raises these; the edges (command line, action entry, demo) catch them once. A refusal
can carry the step's result (the gate's verdict, the failed checks), which the edge still shows.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_SERVICE = 3


class ToolkitError(Exception):
    """Base class: a one-line message saying what failed and how to fix it."""

    exit_code = EXIT_BAD_INPUT
    title = "Error"

    def __init__(self, message: str, *, hint: str | None = None, result: Any = None, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.result = result  # for a refusal: the step's result object, shown before the error line
        if title:
            self.title = title

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class BadInput(ToolkitError):
    """The caller asked for something that does not exist or is not allowed; nothing was changed."""

    exit_code = EXIT_BAD_INPUT
    title = "Bad input"


class Refused(ToolkitError):
    """A gate or a compare-and-set said no; nothing was changed."""

    exit_code = EXIT_REFUSED
    title = "Refused"


class ServiceError(ToolkitError):
    """The tracking server (or another outside service) failed after bounded retries."""

    exit_code = EXIT_SERVICE
    title = "Service unavailable"
