# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""PostgreSQL access shared by backup_snapshot and migration_runner.

How to reach a server (a PgConnection, or libpq keywords from a database URL), how a
client program is called on a database (psql, pg_dump, pg_restore: never prompting,
the database name taken literally, the password in the environment rather than on a
command line where `ps` shows it), quoting of names and values in SQL, and a session that
stays open across statements (psycopg2, psycopg 3, or a psql coprocess) for the
migration lock. Errors while talking to the server are PostgresError, with psql's own
message.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Seconds libpq waits for a connection before giving up.
PG_CONNECT_TIMEOUT = "10"
# The psql options for reading answers: no ~/.psqlrc, no chatter, unaligned tuples only,
# stop at the first error.
PSQL_QUERY_OPTIONS = (
    "--no-psqlrc",
    "--quiet",
    "--no-align",
    "--tuples-only",
    "--set",
    "ON_ERROR_STOP=1",
)
# Separates the columns of a psql session's answers; no value holds it.
PSQL_FIELD_SEPARATOR = "\x1f"
# What a psql session echoes after each answer, so its end is known without a timeout.
PSQL_SENTINEL = "__bluegreen_migration_runner_done__"
# How much of a program's stderr a message quotes.
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 2000

# libpq connection keywords that may come from a URL's query string; anything else
# (SQLAlchemy or Django options) is dropped so libpq does not reject the connection.
LIBPQ_QUERY_KEYS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "connect_timeout",
        "options",
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "sslpassword",
        "sslcompression",
        "gssencmode",
        "krbsrvname",
        "service",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "channel_binding",
        "requirepeer",
    }
)


# libpq keyword -> environment variable, for psql (so the password never shows in `ps`).
_PG_ENVIRONMENT = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslpassword": "PGSSLPASSWORD",
    "sslcompression": "PGSSLCOMPRESSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "service": "PGSERVICE",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "channel_binding": "PGCHANNELBINDING",
    "requirepeer": "PGREQUIREPEER",
    "tcp_user_timeout": "PGTCPUSERTIMEOUT",
    "application_name": "PGAPPNAME",
}


def pg_environment(params: Mapping[str, str]) -> dict[str, str]:
    """libpq environment variables for `params`, for running psql without secrets in argv."""
    return {_PG_ENVIRONMENT[key]: value for key, value in params.items() if key in _PG_ENVIRONMENT}


def stderr_tail(text: str) -> str:
    """The end of a tool's stderr, enough to see the error without the whole traceback."""
    lines = text.rstrip().splitlines()[-STDERR_TAIL_LINES:]
    tail = "\n".join(lines)
    return tail if len(tail) <= STDERR_TAIL_CHARS else "…" + tail[-STDERR_TAIL_CHARS:]


class PostgresError(Exception):
    """A PostgreSQL client failed or stopped answering; the message is its own."""


@dataclass(frozen=True)
class PgConnection:
    """How to reach PostgreSQL; None fields are left to libpq (PGHOST, peer auth, ...)."""

    user: str | None = None
    host: str | None = None
    port: int | None = None
    password: str | None = None
    maintenance_db: str = "postgres"


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, double-quoted so any name is taken literally."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings, on since 9.1)."""
    return "'" + value.replace("'", "''") + "'"


def conninfo_dbname(name: str) -> str:
    """`dbname='...'` for libpq, so a database name is never parsed as a connection string."""
    return "dbname='" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pg_connection_args(connection: PgConnection) -> list[str]:
    """libpq command-line options; the password never goes on a command line."""
    args = []
    if connection.user:
        args += ["--username", connection.user]
    if connection.host:
        args += ["--host", connection.host]
    if connection.port:
        args += ["--port", str(connection.port)]
    return args


def client_command(
    program: str, connection: PgConnection, database: str, *options: str
) -> list[str]:
    """The command line of a libpq client `program` (psql, pg_dump, pg_restore) working on
    `database` through `connection`, with its own `options`; it never prompts for a
    password, which client_environment() passes instead."""
    return [
        program,
        "--no-password",
        *options,
        *pg_connection_args(connection),
        "--dbname",
        conninfo_dbname(database),
    ]


def psql_command(psql: str, connection: PgConnection, database: str, sql: str) -> list[str]:
    """The command line that runs `sql` in `database`: unaligned tuples only, stopping at
    the first error."""
    return [*client_command(psql, connection, database, *PSQL_QUERY_OPTIONS), "--command", sql]


def client_environment(connection: PgConnection, application: str) -> dict[str, str]:
    """The environment of a client program run for `connection`: the application name
    the server shows, the connect timeout, and the password if there is one."""
    params = {"application_name": application, "connect_timeout": PG_CONNECT_TIMEOUT}
    if connection.password:
        params["password"] = connection.password
    return pg_environment(params)


class PsycopgSession:
    """A PostgreSQL session through psycopg2 or psycopg 3, in autocommit mode."""

    def __init__(self, driver: Any, params: Mapping[str, str], name: str) -> None:
        self.driver = name
        self.connection = driver.connect(**params)
        self.connection.autocommit = True

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql)
            return [tuple("" if v is None else str(v) for v in row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def close(self) -> None:
        self.connection.close()


class PsqlSession:
    """A PostgreSQL session held by a psql coprocess; the password goes in its environment."""

    driver = "psql"

    def __init__(self, psql: str, params: Mapping[str, str]) -> None:
        environment = dict(os.environ)
        environment.update(pg_environment(params))
        self.process = subprocess.Popen(
            [psql, *PSQL_QUERY_OPTIONS, "--field-separator", PSQL_FIELD_SEPARATOR],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
        )
        self.buffer = b""
        self.rows("SELECT 1")

    def rows(self, sql: str, timeout: float = 30.0) -> list[tuple[str, ...]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(f"{sql};\n\\echo {PSQL_SENTINEL}\n".encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self._failure() from None
        deadline = time.monotonic() + timeout
        marker = f"{PSQL_SENTINEL}\n".encode()
        while marker not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PostgresError(f"psql did not answer within {timeout:.0f} s")
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise self._failure()
            self.buffer += chunk
        answer, self.buffer = self.buffer.split(marker, 1)
        lines = answer.decode("utf-8", "replace").splitlines()
        return [tuple(line.split(PSQL_FIELD_SEPARATOR)) for line in lines if line]

    def _failure(self) -> PostgresError:
        try:
            _, stderr = self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stderr = b""
        return PostgresError(
            f"psql exited: {stderr_tail(stderr.decode('utf-8', 'replace')) or 'no message'}"
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def open_session(
    params: Mapping[str, str],
    drivers: Sequence[str],
    find_program: Callable[[str], str | None],
) -> PsycopgSession | PsqlSession | None:
    """A session to the server `params` name, through the first of `drivers` (psycopg2,
    psycopg, psql) that this host has; None when it has none of them. `find_program`
    finds psql (module.get_bin_path). Connection errors are the driver's own."""
    for driver in drivers:
        if driver == "psql":
            psql = find_program("psql")
            if psql:
                return PsqlSession(psql, params)
            continue
        try:
            library = __import__(driver)
        except ImportError:
            continue
        return PsycopgSession(library, params, driver)
    return None
