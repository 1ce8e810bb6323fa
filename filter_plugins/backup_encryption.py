# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Encrypted snapshots' inputs as a filter, for the inventory check every command runs
before anything is locked (roles/bluegreen_service). The rules are
module_utils/backup_encryption.py's, the same backup_snapshot applies on the database host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # In the collection bluegreen.release.
    from ansible_collections.bluegreen.release.plugins.module_utils.backup_encryption import (
        encryption_problems,
    )
except ImportError:  # In the tree: the bluegreen package maps module_utils/ (pyproject).
    from bluegreen_module_utils.backup_encryption import encryption_problems


def bluegreen_backup_encryption_problems(
    encrypt_to: Any, identity: Any = "", pg_format: str = "custom"
) -> list[str]:
    """One message per problem of bluegreen_backup_encrypt_to and bluegreen_backup_identity
    (a release verifies its snapshot, so encryption needs the identity); no message quotes
    a key."""
    problems = encryption_problems(encrypt_to, identity or None, verify=True, pg_format=pg_format)
    return [
        problem.replace("encrypt_to", "bluegreen_backup_encrypt_to", 1).replace(
            "needs identity,", "needs bluegreen_backup_identity,", 1
        )
        for problem in problems
    ]


class FilterModule:
    """bluegreen's backup encryption filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"bluegreen_backup_encryption_problems": bluegreen_backup_encryption_problems}
