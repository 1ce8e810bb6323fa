# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The one error every migration_runner concern raises.

The env file, the database URL, the lock, Alembic and Django each raise MigrationError,
so the module reports them all with one fail_json; it lives apart from the orchestration
in migration_runner.py because that file imports those concerns.
"""

from __future__ import annotations


class MigrationError(Exception):
    """Something migration_runner refuses or cannot do; the message says what to do next."""
