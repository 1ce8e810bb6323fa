"""Errors a user can act on, and the exit codes the CLI turns them into."""

from __future__ import annotations

# The exit codes are the contract's, shared with the playbooks (module_utils/release_contract.py).
from bluegreen_module_utils.release_contract import ExitCode

__all__ = ["BluegreenError", "ExitCode", "InputError"]


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
