"""migration_runner end to end against a real Alembic project and a SQLite database.

The fixture project (tests/unit/fixtures/migrations/alembic_project) has three revisions:
0001 creates `items`, 0002 adds a nullable column (expand-safe), 0003 drops a column the
previous release still reads (breaking). Each test copies it into a release directory and
runs the module in-process; Alembic itself runs as a child process, as on a host.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import migration_runner
import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.migration_lock import LockHolder, holder_json

FIXTURE = Path(__file__).parent / "fixtures" / "migrations" / "alembic_project"
ALEMBIC = Path(sys.executable).parent / "alembic"

pytestmark = pytest.mark.skipif(not ALEMBIC.exists(), reason="alembic is not in the venv")


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    """Ansible collects warnings per process; each in-process run starts without any."""
    ansible_warnings._global_warnings.clear()


def warnings_of(result: dict[str, Any]) -> list[str]:
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SQLite databases at each revision, migrated once with alembic and copied per test."""
    directory = tmp_path_factory.mktemp("templates")
    project = directory / "project"
    shutil.copytree(FIXTURE, project)
    paths = {}
    for revision in ("0001", "0002", "0003"):
        database = directory / "app.db"
        subprocess.run(
            [str(ALEMBIC), "-c", "alembic.ini", "upgrade", revision],
            cwd=project,
            env={"DATABASE_URL": f"sqlite:///{database}", "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
        )
        paths[revision] = directory / f"{revision}.db"
        shutil.copy(database, paths[revision])
    return paths


@pytest.fixture
def at_revision(templates: dict[str, Path], database: Path):
    """Put the database at `revision`, as a previous release left it."""

    def put(revision: str) -> None:
        shutil.copy(templates[revision], database)

    return put


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A release directory holding the Alembic project, and a data directory for the DB."""
    directory = tmp_path / "releases" / "2.0.0"
    shutil.copytree(FIXTURE, directory)
    (tmp_path / "data").mkdir()
    (tmp_path / "etc").mkdir()
    return directory


@pytest.fixture
def database(release: Path) -> Path:
    return release.parent.parent / "data" / "app.db"


@pytest.fixture
def env_file(release: Path, database: Path) -> Path:
    path = release.parent.parent / "etc" / "green.env"
    path.write_text(
        "# managed by bluegreen\n"
        f'DATABASE_URL="sqlite:///{database}"\n'
        'SECRET_KEY="s3cr3t-value-never-shown"\n'
        "BLUEGREEN_COLOUR=green\n"
    )
    return path


def args(release: Path, env_file: Path, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "sampleapp",
        "tool": "alembic",
        "chdir": str(release),
        "command": [str(ALEMBIC), "-c", "alembic.ini"],
        "env_file": str(env_file),
    }
    base.update(overrides)
    return base


def columns(database: Path, table: str = "items") -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def create_outside_alembic(database: Path) -> None:
    """A table that Alembic does not know, as a database shared with another tool has."""
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE audit_log (id INTEGER PRIMARY KEY, line TEXT)")


def upgrade_to(run_module, release: Path, env_file: Path, target: str, **extra: Any):
    return run_module(
        migration_runner.main,
        args(release, env_file, state="upgraded", target=target, **extra),
    )


class TestCurrentAndPlan:
    def test_empty_database_has_no_revision_and_head_0003(
        self, run_module, release: Path, env_file: Path
    ) -> None:
        result = run_module(migration_runner.main, args(release, env_file))

        assert result["current"] is None
        assert result["head"] == "0003"
        assert result["changed"] is False
        assert result["lock"] == {"method": "none", "held": False}

    def test_plan_classifies_each_revision_and_names_its_file(
        self, run_module, at_revision, release: Path, env_file: Path, database: Path
    ) -> None:
        at_revision("0001")

        result = run_module(migration_runner.main, args(release, env_file, state="planned"))

        assert result["changed"] is False
        assert result["current"] == "0001"
        assert result["direction"] == "upgrade"
        assert result["target"] == "0003"
        plan = {item["revision"]: item for item in result["pending"]}
        assert list(plan) == ["0002", "0003"]
        assert plan["0002"]["classification"] == "expand-safe"
        assert plan["0002"]["file"] == "migrations/versions/0002_add_items_note.py"
        assert plan["0002"]["statements"][0]["sql"] == "ALTER TABLE items ADD COLUMN note TEXT"
        assert plan["0003"]["classification"] == "breaking"
        assert plan["0003"]["file"] == "migrations/versions/0003_drop_items_legacy_code.py"
        assert "drop column items.legacy_code" in plan["0003"]["reason"]
        assert result["breaking"] == [
            {
                "revision": "0003",
                "file": "migrations/versions/0003_drop_items_legacy_code.py",
                "operation": "drop column items.legacy_code",
                "statement": "ALTER TABLE items DROP COLUMN legacy_code",
                "reason": "the old colour still reads and writes this column, and its data is lost",
            }
        ]
        assert columns(database) == ["id", "name", "legacy_code"]

    def test_at_base_dropping_a_column_of_a_table_new_in_the_plan_is_safe(
        self, run_module, release: Path, env_file: Path, database: Path
    ) -> None:
        create_outside_alembic(database)

        result = run_module(migration_runner.main, args(release, env_file, state="planned"))

        assert [item["revision"] for item in result["pending"]] == ["0001", "0002", "0003"]
        assert [item["classification"] for item in result["pending"]] == ["expand-safe"] * 3
        assert result["pending"][2]["statements"][0]["reason"] == "a column new in this plan"
        assert result["breaking"] == []

    def test_check_mode_upgrade_is_the_plan_and_applies_nothing(
        self, run_module, at_revision, release: Path, env_file: Path, database: Path
    ) -> None:
        at_revision("0001")

        result = run_module(
            migration_runner.main,
            args(release, env_file, state="upgraded"),
            check_mode=True,
        )

        assert result["changed"] is False
        assert result["current"] == "0001"
        assert [item["revision"] for item in result["pending"]] == ["0002", "0003"]
        assert any("a real run would fail: refusing to upgrade" in w for w in warnings_of(result))
        assert result["lock"]["held"] is False
        assert columns(database) == ["id", "name", "legacy_code"]


class TestUpgrade:
    def test_upgrade_to_expand_revision_applies_it_and_returns_its_sql(
        self, run_module, release: Path, env_file: Path, database: Path
    ) -> None:
        result = upgrade_to(run_module, release, env_file, "0002")

        assert result["changed"] is True
        assert result["previous"] is None
        assert result["current"] == "0002"
        assert [item["revision"] for item in result["pending"]] == ["0001", "0002"]
        assert "ALTER TABLE items ADD COLUMN note TEXT" in result["executed_statements"]
        assert any(s.startswith("CREATE TABLE items") for s in result["executed_statements"])
        assert result["lock"]["method"] == "flock"
        assert result["lock"]["held"] is True
        assert result["lock"]["path"] == str(database.parent / ".bluegreen-migrate.lock")
        assert columns(database) == ["id", "name", "legacy_code", "note"]

    def test_upgrading_again_changes_nothing(
        self, run_module, at_revision, release: Path, env_file: Path
    ) -> None:
        at_revision("0002")

        result = upgrade_to(run_module, release, env_file, "0002")

        assert result["changed"] is False
        assert result["pending"] == []
        assert result["executed_statements"] == []

    def test_breaking_revision_is_refused_naming_operation_and_file(
        self, run_module, at_revision, release: Path, env_file: Path, database: Path
    ) -> None:
        at_revision("0002")

        result = run_module(migration_runner.main, args(release, env_file, state="upgraded"))

        assert result["failed"] is True
        assert result["changed"] is False
        assert "drop column items.legacy_code" in result["msg"]
        assert "migrations/versions/0003_drop_items_legacy_code.py" in result["msg"]
        assert "ALTER TABLE items DROP COLUMN legacy_code" in result["msg"]
        assert "allow_breaking" in result["msg"]
        assert "still at 0002" in result["msg"]
        assert columns(database) == ["id", "name", "legacy_code", "note"]

    def test_allow_breaking_applies_the_contract_step(
        self, run_module, at_revision, release: Path, env_file: Path, database: Path
    ) -> None:
        at_revision("0002")

        result = run_module(
            migration_runner.main,
            args(release, env_file, state="upgraded", allow_breaking=True),
        )

        assert result["changed"] is True
        assert result["current"] == "0003"
        assert result["breaking"][0]["revision"] == "0003"
        assert columns(database) == ["id", "name", "note"]

    def test_target_behind_current_changes_nothing(
        self, run_module, at_revision, release: Path, env_file: Path
    ) -> None:
        at_revision("0002")

        result = upgrade_to(run_module, release, env_file, "0001")

        assert result["changed"] is False
        assert result["current"] == "0002"
        assert any("never downgrades" in warning for warning in warnings_of(result))

    def test_environment_option_overrides_env_file_and_lock_can_be_off(
        self, run_module, release: Path, env_file: Path, database: Path
    ) -> None:
        other = database.parent / "other.db"

        result = run_module(
            migration_runner.main,
            args(
                release,
                env_file,
                state="upgraded",
                target="0001",
                lock="none",
                environment={"DATABASE_URL": f"sqlite:///{other}"},
            ),
        )

        assert result["changed"] is True
        assert result["lock"]["method"] == "none"
        assert result["lock"]["held"] is False
        assert columns(other) == ["id", "name", "legacy_code"]
        assert not database.exists()

    def test_secrets_from_the_env_file_never_reach_the_output(
        self, run_module, release: Path, env_file: Path
    ) -> None:
        env_file.write_text(env_file.read_text() + "FORCE_FAIL=1\n")
        (release / "migrations" / "env.py").write_text(
            "import os, sys\n"
            "sys.stderr.write('connecting with ' + os.environ['SECRET_KEY'] + '\\n')\n"
            "raise SystemExit(1)\n"
        )

        result = run_module(migration_runner.main, args(release, env_file, state="planned"))

        assert result["failed"] is True
        assert "s3cr3t-value-never-shown" not in str(result)
        assert "connecting with" in result["stderr"]


class TestDatabaseOfALaterRelease:
    """An older release (head 0002) over a database a later release took to 0003."""

    @pytest.fixture
    def older_release(self, release: Path) -> Path:
        (release / "migrations" / "versions" / "0003_drop_items_legacy_code.py").unlink()
        return release

    def test_current_names_the_revision_this_release_does_not_ship(
        self, run_module, at_revision, older_release: Path, env_file: Path
    ) -> None:
        at_revision("0003")

        result = run_module(migration_runner.main, args(older_release, env_file))

        assert (result["current"], result["head"]) == ("0003", "0002")

    def test_upgrade_leaves_the_newer_schema_alone_and_says_why(
        self, run_module, at_revision, older_release: Path, env_file: Path, database: Path
    ) -> None:
        at_revision("0003")
        before = columns(database)

        result = run_module(
            migration_runner.main,
            args(older_release, env_file, state="upgraded"),
        )

        assert result["failed"] is False
        assert result["changed"] is False
        assert (result["direction"], result["pending"]) == ("none", [])
        assert warnings_of(result) == [
            "the database is at revision 0003, which release 2.0.0 does not ship (its head is "
            "0002): a later release migrated it. Releases are expand-only, so this release's "
            "code runs on that schema and nothing was migrated; to take the schema back, "
            "downgrade with the release that ships 0003"
        ]
        assert columns(database) == before

    def test_downgrade_is_refused_naming_the_release_that_can(
        self, run_module, at_revision, older_release: Path, env_file: Path
    ) -> None:
        at_revision("0003")

        result = run_module(
            migration_runner.main,
            args(older_release, env_file, state="downgraded", target="0001"),
        )

        assert result["failed"] is True
        assert result["msg"] == (
            "the database is at revision 0003, which this release does not ship, so it "
            "cannot downgrade it: run the downgrade from the release that ships 0003"
        )

    def test_downgrade_to_the_revision_it_is_at_changes_nothing_even_unshipped(
        self, run_module, at_revision, older_release: Path, env_file: Path
    ) -> None:
        at_revision("0003")

        result = run_module(
            migration_runner.main,
            args(older_release, env_file, state="downgraded", target="0003"),
        )

        assert not result.get("failed"), result
        assert result["changed"] is False
        assert result["direction"] == "none"
        assert result["current"] == "0003"


class TestDowngrade:
    def test_downgrade_to_recorded_revision(
        self, run_module, at_revision, release: Path, env_file: Path, database: Path
    ) -> None:
        at_revision("0003")

        result = run_module(
            migration_runner.main, args(release, env_file, state="downgraded", target="0002")
        )

        assert result["changed"] is True
        assert result["previous"] == "0003"
        assert result["current"] == "0002"
        assert result["direction"] == "downgrade"
        assert [item["revision"] for item in result["pending"]] == ["0003"]
        assert columns(database) == ["id", "name", "note", "legacy_code"]

    def test_downgrade_that_drops_data_needs_allow_breaking(
        self, run_module, at_revision, release: Path, env_file: Path, database: Path
    ) -> None:
        at_revision("0002")

        refused = run_module(
            migration_runner.main, args(release, env_file, state="downgraded", target="0001")
        )
        allowed = run_module(
            migration_runner.main,
            args(release, env_file, state="downgraded", target="0001", allow_breaking=True),
        )

        assert refused["failed"] is True
        assert "drop column items.note" in refused["msg"]
        assert "0002_add_items_note.py" in refused["msg"]
        assert "restore the snapshot" in refused["msg"]
        assert allowed["changed"] is True
        assert allowed["current"] == "0001"
        assert columns(database) == ["id", "name", "legacy_code"]

    def test_irreversible_downgrade_is_refused_naming_the_file(
        self, run_module, at_revision, release: Path, env_file: Path, database: Path
    ) -> None:
        at_revision("0003")
        revision = release / "migrations" / "versions" / "0003_drop_items_legacy_code.py"
        source = revision.read_text()
        revision.write_text(
            source.split("def downgrade()")[0]
            + textwrap.dedent(
                """\
                def downgrade() -> None:
                    raise NotImplementedError("the dropped data cannot come back")
                """
            )
        )

        result = run_module(
            migration_runner.main,
            args(release, env_file, state="downgraded", target="0002", allow_breaking=True),
        )

        assert result["failed"] is True
        assert "0003_drop_items_legacy_code.py" in result["msg"]
        assert "raises NotImplementedError" in result["msg"]
        assert result["pending"][0]["irreversible"].startswith("its downgrade() raises")
        assert columns(database) == ["id", "name", "note"]

    def test_downgrade_target_ahead_is_refused(
        self, run_module, at_revision, release: Path, env_file: Path
    ) -> None:
        at_revision("0001")

        result = run_module(
            migration_runner.main, args(release, env_file, state="downgraded", target="0002")
        )

        assert result["failed"] is True
        assert "use state=upgraded" in result["msg"]


class TestFailure:
    def test_failed_migration_reports_stderr_and_where_it_stopped(
        self, run_module, at_revision, release: Path, env_file: Path
    ) -> None:
        at_revision("0001")
        revision = release / "migrations" / "versions" / "0002_add_items_note.py"
        revision.write_text(
            revision.read_text().replace(
                'op.add_column("items", sa.Column("note", sa.Text, nullable=True))',
                'op.execute("ALTER TABLE missing_table ADD COLUMN note TEXT")',
            )
        )

        result = upgrade_to(run_module, release, env_file, "0002")

        assert result["failed"] is True
        assert "while running 0002 (migrations/versions/0002_add_items_note.py)" in result["msg"]
        assert "the database is at 0001" in result["msg"]
        assert "no such table: missing_table" in result["msg"]
        assert result["current"] == "0001"
        assert result["changed"] is False

    def test_missing_virtualenv_says_what_to_deploy(
        self, run_module, release: Path, env_file: Path
    ) -> None:
        result = run_module(
            migration_runner.main,
            args(release, env_file, command=["venv/bin/alembic"]),
        )

        assert result["failed"] is True
        assert f"{release}/venv/bin/alembic does not exist" in result["msg"]


HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, sys.argv[2].replace("PID", str(os.getpid())).encode())
print("locked", flush=True)
sys.stdin.read()
"""


class TestLock:
    def test_second_migrator_fails_at_once_naming_the_holder(
        self, run_module, release: Path, env_file: Path, database: Path
    ) -> None:
        lock_file = database.parent / ".bluegreen-migrate.lock"
        record = holder_json(
            LockHolder("sampleapp", "app-blue", 4242, "1.9.0", time.time() - 30)
        ).replace("4242", "PID")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(lock_file), record],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            started = time.monotonic()
            result = upgrade_to(run_module, release, env_file, "0002")
            elapsed = time.monotonic() - started
        finally:
            holder.communicate("")

        assert result["failed"] is True
        assert f"held by app-blue pid {holder.pid} (release 1.9.0)" in result["msg"]
        assert f"flock on {lock_file}" in result["msg"]
        assert result["holder"]["pid"] == holder.pid
        assert elapsed < 30
        assert not database.exists() or columns(database) == []

    def test_lock_is_free_again_after_the_migration(
        self, run_module, at_revision, release: Path, env_file: Path, database: Path
    ) -> None:
        at_revision("0001")

        result = upgrade_to(run_module, release, env_file, "0002")

        assert result["changed"] is True
        assert (database.parent / ".bluegreen-migrate.lock").read_text() == ""


ADD_NOTE = 'op.add_column("items", sa.Column("note", sa.Text, nullable=True))'
# A data migration that reads rows through the connection, like ihatemoney's
# b78f8a8bdb16: it runs online, but offline (--sql) the connection returns nothing to
# iterate, so Alembic cannot render it.
READS_ROWS = """
    for (item_id,) in op.get_bind().execute(sa.text("SELECT id FROM items")):
        op.execute(sa.text(f"UPDATE items SET note = 'n' WHERE id = {item_id}"))"""


def make_0002_read_rows(release: Path) -> None:
    revision = release / "migrations" / "versions" / "0002_add_items_note.py"
    revision.write_text(revision.read_text().replace(ADD_NOTE, ADD_NOTE + READS_ROWS))


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The subcommands the module runs, in order (Alembic still runs them)."""
    seen: list[list[str]] = []
    real_run = migration_runner.Runner.run

    def recording_run(self, args: list[str]):
        seen.append(args)
        return real_run(self, args)

    monkeypatch.setattr(migration_runner.Runner, "run", recording_run)
    return seen


class TestFirstSchema:
    def test_first_release_on_an_empty_database_applies_a_step_that_cannot_render(
        self, run_module, release: Path, env_file: Path, database: Path
    ) -> None:
        make_0002_read_rows(release)

        result = run_module(migration_runner.main, args(release, env_file, state="upgraded"))

        assert not result["failed"], result["msg"]
        assert (result["previous"], result["current"], result["changed"]) == (None, "0003", True)
        assert [item["classification"] for item in result["pending"]] == ["expand-safe"] * 3
        assert result["pending"][1]["statements"] == [
            {
                "sql": "-- add a nullable column: expand-safe",
                "classification": "expand-safe",
                "operation": "first schema",
                "reason": "the database has no tables, so no running colour can depend on its "
                "schema",
            }
        ]
        assert result["breaking"] == []
        warnings = warnings_of(result)
        assert (
            "the database has no tables: no running colour can depend on its schema, so the 3 "
            "migration(s) are applied without checking for breaking operations" in warnings
        )
        assert any(
            w.startswith(
                "could not render the first schema's SQL offline, so "
                "executed_statements stays empty: "
            )
            and "'NoneType' object is not iterable" in w
            for w in warnings
        )
        assert columns(database) == ["id", "name", "note"]

    def test_first_schema_keeps_its_rendered_sql_as_evidence(
        self, run_module, release: Path, env_file: Path
    ) -> None:
        result = upgrade_to(run_module, release, env_file, "0003")

        assert result["changed"] is True
        assert [s["operation"] for item in result["pending"] for s in item["statements"]] == [
            "first schema"
        ] * 3
        assert "ALTER TABLE items DROP COLUMN legacy_code" in result["executed_statements"]

    def test_a_database_at_base_with_tables_made_outside_alembic_is_checked(
        self, run_module, release: Path, env_file: Path, database: Path
    ) -> None:
        create_outside_alembic(database)
        make_0002_read_rows(release)

        result = run_module(migration_runner.main, args(release, env_file, state="planned"))

        plan = {item["revision"]: item for item in result["pending"]}
        assert plan["0001"]["classification"] == "expand-safe"
        assert plan["0001"]["statements"][0]["sql"].startswith("CREATE TABLE items")
        assert plan["0002"]["classification"] == "breaking"
        assert plan["0002"]["statements"][0]["operation"] == "unknown SQL"
        assert plan["0003"]["classification"] == "expand-safe"
        assert result["refusal"].startswith(
            "refusing to upgrade: 1 breaking operation(s): unknown SQL in 0002 "
        )
        assert not any("the database has no tables" in w for w in warnings_of(result))


class TestStepByStepRendering:
    def test_only_the_step_that_cannot_render_is_unknown(
        self, run_module, at_revision, commands, release: Path, env_file: Path
    ) -> None:
        at_revision("0001")
        make_0002_read_rows(release)

        result = run_module(migration_runner.main, args(release, env_file, state="planned"))

        plan = {item["revision"]: item for item in result["pending"]}
        assert [s["operation"] for s in plan["0002"]["statements"]] == ["unknown SQL"]
        assert "'NoneType' object is not iterable" in plan["0002"]["reason"]
        assert [s["operation"] for s in plan["0003"]["statements"]] == [
            "drop column items.legacy_code",
            "update alembic_version",
        ]
        assert result["refusal"].startswith("refusing to upgrade: 2 breaking operation(s): ")
        assert [command for command in commands if "--sql" in command] == [
            ["upgrade", "0001:0003", "--sql"],
            ["upgrade", "0001:0002", "--sql"],
            ["upgrade", "0002:0003", "--sql"],
        ]

    def test_a_plan_that_renders_takes_one_offline_command(
        self, run_module, at_revision, commands, release: Path, env_file: Path
    ) -> None:
        at_revision("0001")

        result = run_module(migration_runner.main, args(release, env_file, state="planned"))

        assert [item["classification"] for item in result["pending"]] == [
            "expand-safe",
            "breaking",
        ]
        assert commands == [
            ["history", "--verbose", "--indicate-current"],
            ["upgrade", "0001:0003", "--sql"],
        ]


# The service's migrate command as ihatemoney's `flask db` is: creating the application
# upgrades the database to head before the requested command runs.
MIGRATES_ON_START = """#!{python}
import os, subprocess, sys
alembic = [{alembic!r}, "-c", "alembic.ini"]
subprocess.run([*alembic, "upgrade", "head"], check=True, capture_output=True)
if os.environ.get("FAIL_AFTER_MIGRATING"):
    sys.exit(1)
os.execv(alembic[0], [*alembic, *sys.argv[1:]])
"""


@pytest.fixture
def migrating_command(release: Path) -> list[str]:
    script = release / "migrate-on-start"
    script.write_text(MIGRATES_ON_START.format(python=sys.executable, alembic=str(ALEMBIC)))
    script.chmod(0o755)
    return [str(script)]


class TestToolThatMigratesOnStart:
    def test_plan_fails_naming_both_revisions_and_the_fix(
        self, run_module, migrating_command, release: Path, env_file: Path, database: Path
    ) -> None:
        result = run_module(
            migration_runner.main,
            args(release, env_file, state="planned", command=migrating_command),
        )

        assert result["failed"] is True
        assert result["msg"] == (
            "the migration tool changed the database while bluegreen only read it "
            "(alembic_version went from none to 0003): the service migrates its schema when "
            "its application starts, outside bluegreen's lock and checks. Give "
            "bluegreen_service_migrate_command an entry point that does not migrate on start "
            "(see examples/third-party/ihatemoney/README.md)"
        )
        assert result["changed"] is True
        assert (result["previous"], result["current"]) == (None, "0003")
        assert result["migrated_while_reading"] == {
            "table": "alembic_version",
            "before": None,
            "after": "0003",
        }
        assert columns(database) == ["id", "name", "note"]

    def test_upgrade_stops_before_applying_and_reports_the_breaking_change_it_let_through(
        self,
        run_module,
        at_revision,
        migrating_command,
        release: Path,
        env_file: Path,
        database: Path,
    ) -> None:
        at_revision("0002")

        result = run_module(
            migration_runner.main,
            args(release, env_file, state="upgraded", command=migrating_command),
        )

        assert result["failed"] is True
        assert "(alembic_version went from 0002 to 0003)" in result["msg"]
        assert (result["changed"], result["started"]) == (True, False)
        assert (result["previous"], result["current"]) == ("0002", "0003")
        assert result["lock"]["method"] == "flock"
        assert (database.parent / ".bluegreen-migrate.lock").read_text() == ""

    def test_a_tool_that_fails_after_migrating_is_not_reported_as_unchanged(
        self, run_module, migrating_command, release: Path, env_file: Path
    ) -> None:
        result = run_module(
            migration_runner.main,
            args(
                release,
                env_file,
                command=migrating_command,
                environment={"FAIL_AFTER_MIGRATING": "1"},
            ),
        )

        assert result["failed"] is True
        assert result["msg"].startswith(
            "the migration tool changed the database while bluegreen only read it "
            "(alembic_version went from none to 0003)"
        )
        assert "nothing was migrated" not in result["msg"]
        assert result["changed"] is True

    def test_a_tool_that_only_reads_adds_no_warning(
        self, run_module, at_revision, release: Path, env_file: Path
    ) -> None:
        at_revision("0001")

        result = run_module(migration_runner.main, args(release, env_file, state="planned"))

        assert not result["failed"]
        assert result["changed"] is False
        assert "migrated_while_reading" not in result
        assert warnings_of(result) == []
