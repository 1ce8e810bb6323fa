"""migration_runner's request and plan: parameters validated, and the messages for a
refused or failed plan."""

from __future__ import annotations

import pytest
from ansible.module_utils.migration_error import MigrationError
from ansible.module_utils.migration_runner import (
    PendingMigration,
    alembic_step_spans,
    build_request,
    default_lock_key,
    error_headline,
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

    def test_failed_migration_leads_with_the_exception_not_the_tracebacks_last_lines(
        self,
    ) -> None:
        stderr = (
            "Traceback (most recent call last):\n"
            '  File "base.py", line 2000, in _exec_single_context\n'
            "    cursor.execute(statement, parameters)\n"
            "sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DatatypeMismatch) column "
            '"logging_preference" cannot be cast automatically to type loggingmode\n'
            'HINT:  You might need to specify "USING logging_preference::loggingmode".\n'
            "\n[SQL: ALTER TABLE project ALTER COLUMN logging_preference TYPE loggingmode ]\n"
            "(Background on this error at: https://sqlalche.me/e/20/f405)\n"
        )
        message = failed_migration_message(
            direction="upgrade", tool="alembic", stopped_at="0002", started_at="0002",
            failing=None, stderr=stderr,
        )  # fmt: skip

        first_line = message.splitlines()[0]
        assert first_line.endswith(
            "alembic said: sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DatatypeMismatch) "
            'column "logging_preference" cannot be cast automatically to type loggingmode'
        )
        assert "USING logging_preference::loggingmode" in message  # the tail follows

    def test_an_error_without_a_traceback_is_shown_as_it_is(self) -> None:
        assert error_headline("FAILED: No such revision or branch 'x'\n") == ""
        message = failed_migration_message(
            direction="upgrade", tool="alembic", stopped_at=None, started_at=None,
            failing=None, stderr="FAILED: No such revision or branch 'x'\n",
        )  # fmt: skip
        assert message.endswith("alembic said: FAILED: No such revision or branch 'x'")

    def test_relative_path(self) -> None:
        assert relative_path("/srv/r/1/m/v/a.py", "/srv/r/1") == "m/v/a.py"
        assert relative_path("/usr/lib/x.py", "/srv/r/1") == "/usr/lib/x.py"
        assert relative_path(None, "/srv") is None


class TestAlembicStepSpans:
    def test_upgrade_steps_start_at_the_revision_before(self) -> None:
        assert alembic_step_spans("upgrade", "0001", ["0002", "0003"], "0003") == [
            "0001:0002",
            "0002:0003",
        ]

    def test_upgrade_from_base_starts_with_the_bare_revision(self) -> None:
        assert alembic_step_spans("upgrade", None, ["0001", "0002"], "0002") == [
            "0001",
            "0001:0002",
        ]

    def test_downgrade_steps_end_at_the_revision_after_and_the_target(self) -> None:
        assert alembic_step_spans("downgrade", "0003", ["0003", "0002"], "base") == [
            "0003:0002",
            "0002:base",
        ]
