"""PostgreSQL access shared by backup_snapshot and migration_runner: command lines and
environments that keep the password off `ps`, quoting, and the psql session."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from ansible.module_utils.postgresql_access import (
    PgConnection,
    PostgresError,
    PsqlSession,
    client_command,
    client_environment,
    conninfo_dbname,
    open_session,
    pg_connection_args,
    pg_environment,
    psql_command,
    quote_ident,
    quote_literal,
    stderr_tail,
)

LOGIN = PgConnection("backup", "/run/postgresql", 5433, "s3cret")


def test_quoting() -> None:
    assert quote_ident('we"ird') == '"we""ird"'
    assert quote_literal("it's") == "'it''s'"
    assert conninfo_dbname("a b'c\\") == "dbname='a b\\'c\\\\'"


def test_connection_args_never_carry_the_password() -> None:
    args = pg_connection_args(PgConnection("u", "/run/postgresql", 5433, "secret"))
    assert args == ["--username", "u", "--host", "/run/postgresql", "--port", "5433"]


def test_psql_gets_the_password_in_its_environment() -> None:
    environment = pg_environment({"host": "db1", "password": "x", "dbname": "a"})

    assert environment == {"PGHOST": "db1", "PGPASSWORD": "x", "PGDATABASE": "a"}


def test_client_command_never_prompts_and_keeps_the_password_off_the_command_line() -> None:
    args = client_command("/usr/bin/pg_dump", LOGIN, "app db", "--format=custom")

    assert args == [
        "/usr/bin/pg_dump",
        "--no-password",
        "--format=custom",
        "--username",
        "backup",
        "--host",
        "/run/postgresql",
        "--port",
        "5433",
        "--dbname",
        "dbname='app db'",
    ]
    assert "s3cret" not in " ".join(args)


def test_psql_command_stops_at_the_first_error_and_runs_the_sql_last() -> None:
    args = psql_command("/usr/bin/psql", PgConnection(), "postgres", "SELECT 1")

    assert "ON_ERROR_STOP=1" in args
    assert args[-2:] == ["--command", "SELECT 1"]
    assert args[args.index("--dbname") + 1] == "dbname='postgres'"


def test_client_environment_carries_the_password_name_and_timeout() -> None:
    assert client_environment(LOGIN, "bluegreen backup_snapshot") == {
        "PGAPPNAME": "bluegreen backup_snapshot",
        "PGCONNECT_TIMEOUT": "10",
        "PGPASSWORD": "s3cret",
    }
    assert "PGPASSWORD" not in client_environment(PgConnection(), "x")


def test_stderr_tail_keeps_the_end_of_a_long_traceback() -> None:
    text = "Traceback ...\n" + "noise\n" * 50 + "OperationalError: boom\n"

    tail = stderr_tail(text)

    assert tail.endswith("OperationalError: boom")
    assert "Traceback" not in tail
    assert len(tail.splitlines()) == 20
    assert stderr_tail("x" * 5000) == "…" + "x" * 2000


def test_no_session_when_no_driver_is_available() -> None:
    assert open_session({}, ("no_such_postgres_driver", "psql"), lambda name: None) is None


FAKE_PSQL = """\
#!{python}
import sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("\\\\echo "):
        print(line[len("\\\\echo "):], flush=True)
    elif line == "SELECT 1;":
        print("1", flush=True)
    elif line == "SELECT 'a', 'b';":
        print("a\\x1fb", flush=True)
    else:
        sys.stderr.write("ERROR:  syntax error at or near " + repr(line) + "\\n")
        sys.exit(3)
"""


@pytest.fixture
def fake_psql(tmp_path: Path) -> str:
    """A psql that answers two queries the way `psql -A -t -F <US>` does, and fails on others."""
    path = tmp_path / "psql"
    path.write_text(textwrap.dedent(FAKE_PSQL).format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def test_psql_session_answers_rows_split_into_columns(fake_psql: str) -> None:
    session = open_session({"password": "x"}, ("psql",), lambda name: fake_psql)
    assert isinstance(session, PsqlSession)
    try:
        assert session.rows("SELECT 'a', 'b'") == [("a", "b")]
        assert session.rows("SELECT 1") == [("1",)]
    finally:
        session.close()


def test_psql_session_that_exits_names_psqls_error(fake_psql: str) -> None:
    session = PsqlSession(fake_psql, {})
    try:
        with pytest.raises(PostgresError, match="psql exited: ERROR:  syntax error at or near"):
            session.rows("SELEC 1")
    finally:
        session.close()
