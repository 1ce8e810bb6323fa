"""Errors a user can act on, and the exit codes the CLI turns them into."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``bluegreen`` command (the table lives in ``bluegreen.cli``)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    FAILED_BEFORE_SWITCH = 3
    ROLLED_BACK = 4


class BluegreenError(Exception):
    """An error with a message a user can act on; the CLI prints it as one line."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(BluegreenError):
    """Bad usage or input: a missing project, an unknown inventory, an invalid version."""

    exit_code = ExitCode.USAGE
