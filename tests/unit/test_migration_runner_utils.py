"""migration_runner's request and plan: parameters validated, and the messages for a
refused or failed plan."""

from __future__ import annotations

import pytest
from ansible.module_utils.migration_error import MigrationError
from ansible.module_utils.migration_runner import (
    PendingMigration,
    build_request,
    default_lock_key,
    failed_migration_message,
    refusal_message,
    relative_path,
)
from ansible.module_utils.sql_statements import BREAKING, StatementVerdict


def params(**overrides):
    base = {"name": "app", "tool": "alembic", "chdir": "/srv/app/releases/2.0.0/"}
    base.update(overrides)
    return base


class TestBuildRequest:
    def test_defaults(self) -> None:
        request = build_request(params())

        assert request.chdir == "/srv/app/releases/2.0.0"
        assert request.command == ("venv/bin/alembic",)
        assert request.release == "2.0.0"
        assert request.lock_key == default_lock_key("app")
        assert (request.state, request.lock, request.lock_timeout) == ("current", "auto", 0.0)

    def test_django_default_command(self) -> None:
        request = build_request(params(tool="django"))

        assert request.command == ("venv/bin/python", "manage.py")

    def test_downgrade_needs_a_target(self) -> None:
        with pytest.raises(MigrationError, match="needs target"):
            build_request(params(state="downgraded"))

    def test_bad_django_target(self) -> None:
        with pytest.raises(MigrationError, match=r"app_label\.migration_name"):
            build_request(params(tool="django", target="not a target"))

    def test_relative_chdir(self) -> None:
        with pytest.raises(MigrationError, match="absolute"):
            build_request(params(chdir="releases/2"))


def breaking_migration() -> PendingMigration:
    return PendingMigration(
        revision="0003",
        file="migrations/versions/0003_drop.py",
        description="drop",
        direction="upgrade",
        statements=[
            StatementVerdict(
                "ALTER TABLE items DROP COLUMN legacy_code",
                BREAKING,
                "drop column items.legacy_code",
                "the old colour still reads and writes this column",
            )
        ],
    )


class TestMessages:
    def test_refusal_names_operation_file_statement_and_next_step(self) -> None:
        message = refusal_message([breaking_migration()], "upgrade", "0002", "alembic")

        assert message.startswith("refusing to upgrade: 1 breaking operation(s): ")
        assert (
            "drop column items.legacy_code in 0003 (migrations/versions/0003_drop.py): the old "
            "colour still reads and writes this column [ALTER TABLE items DROP COLUMN "
            "legacy_code]" in message
        )
        assert "allow_breaking: true" in message
        assert message.endswith("Nothing was applied; the database is still at 0002")

    def test_pending_migration_summary(self) -> None:
        migration = breaking_migration()

        assert migration.classification == BREAKING
        assert migration.reason == (
            "drop column items.legacy_code: the old colour still reads and writes this column"
        )
        assert migration.as_dict()["statements"][0]["classification"] == BREAKING

    def test_failed_migration_names_stop_and_culprit(self) -> None:
        message = failed_migration_message(
            direction="upgrade",
            tool="alembic",
            stopped_at="0002",
            started_at="0001",
            failing=breaking_migration(),
            stderr="Traceback ...\n" + "noise\n" * 50 + "sqlite3.OperationalError: boom\n",
        )

        assert message.startswith(
            "alembic upgrade failed while running 0003 (migrations/versions/0003_drop.py); "
            "the database is at 0002 (it started at 0001)."
        )
        assert message.endswith("sqlite3.OperationalError: boom")
        assert "Traceback" not in message

    def test_relative_path(self) -> None:
        assert relative_path("/srv/r/1/m/v/a.py", "/srv/r/1") == "m/v/a.py"
        assert relative_path("/usr/lib/x.py", "/srv/r/1") == "/usr/lib/x.py"
        assert relative_path(None, "/srv") is None
