# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""Decisions behind the migration_runner module, as pure functions.

The module runs Alembic or Django from a release's virtualenv, holds a lock while it
does, and refuses migrations that would break the colour still serving traffic. What
each piece of tool output means is decided here, without running anything:

* the colour's env file (systemd ``EnvironmentFile`` syntax) and the database URL in it;
* the lock: which kind, its key, how the holder is recorded and named;
* a SQL tokenizer and a classifier that sorts each statement a migration would run into
  expand-safe, warning or breaking (sqlparse is not available on the hosts);
* Alembic's ``history -v``, ``current`` and offline ``--sql`` output, and whether a
  revision's ``downgrade()`` can undo it;
* the Django helper that reads the migration graph, and the state strings it produces.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

# Modules run on the managed host's Python, which ansible-core 2.19 allows down to 3.8,
# so this file avoids newer stdlib names such as datetime.UTC.
UTC = timezone.utc  # noqa: UP017

TOOLS = ("alembic", "django")
DEFAULT_COMMANDS = {
    "alembic": ("venv/bin/alembic",),
    "django": ("venv/bin/python", "manage.py"),
}
LOCK_FILE_NAME = ".bluegreen-migrate.lock"
# application_name of the session that holds the PostgreSQL lock; PostgreSQL keeps 63 bytes.
APPLICATION_NAME_PREFIX = "bluegreen-migrate"
APPLICATION_NAME_MAX = 63
# Tables in which the tools record which migrations ran: writing them is bookkeeping.
BOOKKEEPING_TABLES = frozenset({"alembic_version", "django_migrations"})
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 2000
EXCERPT_CHARS = 160

EXPAND_SAFE = "expand-safe"
WARNING = "warning"
BREAKING = "breaking"
_SEVERITY = {EXPAND_SAFE: 0, WARNING: 1, BREAKING: 2}


class MigrationError(Exception):
    """Something migration_runner refuses or cannot do; the message says what to do next."""


def worst(classifications: Iterable[str]) -> str:
    """The most severe of `classifications` (expand-safe when there are none)."""
    return max(classifications, key=_SEVERITY.__getitem__, default=EXPAND_SAFE)


# --------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationRequest:
    """A validated migration_runner request."""

    name: str
    tool: str
    chdir: str
    command: tuple[str, ...]
    state: str
    target: str | None
    allow_breaking: bool
    lock: str
    lock_timeout: float
    lock_key: int
    lock_file: str | None
    release: str
    database_url_env: str


def default_lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for the application `name`."""
    digest = hashlib.sha256(f"bluegreen-migrate:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def build_request(params: Mapping[str, Any]) -> MigrationRequest:
    """Validate the module parameters; MigrationError says which one is wrong and why."""
    name = str(params.get("name") or "").strip()
    if not name:
        raise MigrationError("name must not be empty: it identifies the application's lock")
    tool = params["tool"]
    if tool not in TOOLS:
        raise MigrationError(f"tool {tool!r} is not supported: use one of {', '.join(TOOLS)}")
    chdir = str(params["chdir"]).rstrip("/") or "/"
    if not chdir.startswith("/"):
        raise MigrationError(f"chdir {chdir!r} must be an absolute path (the release directory)")
    command = tuple(params.get("command") or DEFAULT_COMMANDS[tool])
    if not command or not command[0]:
        raise MigrationError("command must name a program, e.g. [venv/bin/alembic]")
    state = params.get("state") or "current"
    target = params.get("target")
    target = str(target).strip() if target is not None else None
    if state == "downgraded" and not target:
        raise MigrationError(
            "state=downgraded needs target: the revision recorded before the release "
            "(the current value returned by the upgrade)"
        )
    if tool == "django" and target:
        parse_django_targets(target)
    lock_timeout = float(params.get("lock_timeout") or 0)
    if lock_timeout < 0:
        raise MigrationError("lock_timeout must be 0 (fail at once) or a number of seconds")
    lock_key = params.get("lock_key")
    if lock_key is None:
        lock_key = default_lock_key(name)
    elif not -(2**63) <= int(lock_key) < 2**63:
        raise MigrationError("lock_key must fit in a signed 64-bit integer (PostgreSQL bigint)")
    release = str(params.get("release") or "").strip() or chdir.rsplit("/", 1)[-1]
    return MigrationRequest(
        name=name,
        tool=tool,
        chdir=chdir,
        command=command,
        state=state,
        target=target or None,
        allow_breaking=bool(params.get("allow_breaking")),
        lock=params.get("lock") or "auto",
        lock_timeout=lock_timeout,
        lock_key=int(lock_key),
        lock_file=params.get("lock_file"),
        release=release,
        database_url_env=params.get("database_url_env") or "DATABASE_URL",
    )


# --------------------------------------------------------------------------------------
# The env file (systemd EnvironmentFile syntax)
# --------------------------------------------------------------------------------------

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Inside double quotes these characters lose the backslash before them; other escapes
# keep it, as in systemd (SHELL_NEED_ESCAPE).
_DOUBLE_QUOTE_ESCAPES = '"\\`$'


def parse_env_file(text: str) -> tuple[dict[str, str], list[int]]:
    """The assignments of a systemd EnvironmentFile, and the line numbers it ignored.

    Follows systemd's parser: ``#`` and ``;`` start comment lines, ``KEY=value`` with the
    value unquoted (backslash escapes the next character, trailing blanks dropped), in
    single quotes (literal) or in double quotes (backslash escapes ``" \\ ` $`` and a
    newline; other backslashes stay). A backslash before a newline continues the line.
    Lines without a valid name are ignored, like systemd does; their numbers are returned
    so the caller can warn without printing their content.
    """
    values: dict[str, str] = {}
    ignored: list[int] = []
    state = "pre_key"
    key: list[str] = []
    value: list[str] = []
    line = 1
    key_line = 1
    last_value_space: int | None = None

    def push() -> None:
        name = "".join(key).rstrip()
        if _ENV_NAME_RE.fullmatch(name):
            text_value = "".join(value)
            if last_value_space is not None:
                text_value = text_value[:last_value_space]
            values[name] = text_value
        else:
            ignored.append(key_line)

    for char in text:
        if state == "pre_key":
            if char in "#;":
                state = "comment"
            elif char not in " \t\r\n":
                state, key, value, key_line = "key", [char], [], line
        elif state == "key":
            if char in "\r\n":
                ignored.append(key_line)
                state = "pre_key"
            elif char == "=":
                state, last_value_space = "pre_value", None
            else:
                key.append(char)
        elif state == "pre_value":
            if char in "\r\n":
                push()
                state = "pre_key"
            elif char == "'":
                state = "single"
            elif char == '"':
                state = "double"
            elif char == "\\":
                state = "value_escape"
            elif char not in " \t":
                state = "value"
                value.append(char)
        elif state == "value":
            if char in "\r\n":
                push()
                state = "pre_key"
            elif char == "\\":
                state, last_value_space = "value_escape", None
            else:
                if char not in " \t":
                    last_value_space = None
                elif last_value_space is None:
                    last_value_space = len(value)
                value.append(char)
        elif state == "value_escape":
            state = "value"
            if char not in "\r\n":
                value.append(char)
        elif state == "single":
            if char == "'":
                state = "pre_value"
            else:
                value.append(char)
        elif state == "double":
            if char == '"':
                state = "pre_value"
            elif char == "\\":
                state = "double_escape"
            else:
                value.append(char)
        elif state == "double_escape":
            state = "double"
            if char in _DOUBLE_QUOTE_ESCAPES:
                value.append(char)
            elif char != "\n":
                value.extend(("\\", char))
        elif state == "comment":
            if char == "\\":
                state = "comment_escape"
            elif char in "\r\n":
                state = "pre_key"
        elif state == "comment_escape":
            state = "comment"
        if char == "\n":
            line += 1
    if state in ("pre_value", "value", "value_escape", "single", "double", "double_escape"):
        push()
    elif state == "key":
        ignored.append(key_line)
    return values, ignored


_SECRET_NAME_RE = re.compile(
    r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|DSN|DATABASE_URL|_URL$|_URI$", re.I
)
# Shorter values would mask unrelated text all over the output (Ansible replaces substrings).
MIN_MASKED_LENGTH = 4


def secret_values(environment: Mapping[str, str]) -> set[str]:
    """Values that must never appear in the task's output.

    Whole values of variables whose names look secret (passwords, keys, tokens, database
    URLs) and the password inside any URL. Short values are left out because Ansible
    masks every occurrence of a masked string, and "1" would wreck the whole output.
    """
    secrets: set[str] = set()
    for name, value in environment.items():
        if _SECRET_NAME_RE.search(name):
            secrets.add(value)
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                secrets.update((password, unquote(password)))
    return {value for value in secrets if len(value) >= MIN_MASKED_LENGTH}


# --------------------------------------------------------------------------------------
# The database URL
# --------------------------------------------------------------------------------------

# libpq connection keywords that may come from a URL's query string; anything else
# (SQLAlchemy or Django options) is dropped so libpq does not reject the connection.
_LIBPQ_QUERY_KEYS = frozenset(
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
_PG_SCHEMES = ("postgres", "postgresql", "pgsql", "postgis")
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


@dataclass(frozen=True)
class Database:
    """What the module needs to know about the database: its kind and where it is."""

    kind: str  # postgresql, sqlite, other
    sqlite_path: str | None = None  # None for an in-memory SQLite database
    pg_params: Mapping[str, str] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        return self.kind


def parse_database_url(url: str, chdir: str) -> Database:
    """The kind and location of the database in a SQLAlchemy or dj-database-url URL.

    A relative SQLite path (``sqlite:///app.db``) is relative to `chdir`, where the tool
    runs. PostgreSQL URLs become libpq keywords, without the ``+driver`` suffix.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise MigrationError(f"the database URL is not a valid URL: {exc}") from exc
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme.startswith("sqlite") or scheme == "spatialite":
        path = unquote(parts.path)
        # sqlite:///rel.db -> "/rel.db" (relative), sqlite:////abs.db -> "//abs.db" (absolute)
        if path in ("", "/", "/:memory:") or path.startswith("/file::memory:"):
            return Database(kind="sqlite", sqlite_path=None)
        path = path[1:]
        if not path.startswith("/"):
            path = f"{chdir}/{path}"
        return Database(kind="sqlite", sqlite_path=path)
    if scheme in _PG_SCHEMES:
        params: dict[str, str] = {}
        try:
            if parts.hostname:
                params["host"] = parts.hostname
            if parts.port:
                params["port"] = str(parts.port)
        except ValueError as exc:
            raise MigrationError(f"the database URL has an invalid port: {exc}") from exc
        if parts.username:
            params["user"] = unquote(parts.username)
        if parts.password:
            params["password"] = unquote(parts.password)
        if parts.path.strip("/"):
            params["dbname"] = unquote(parts.path.lstrip("/"))
        for key, value in parse_qsl(parts.query):
            if key in _LIBPQ_QUERY_KEYS:
                params[key] = value
        return Database(kind="postgresql", pg_params=params)
    return Database(kind="other")


def pg_environment(params: Mapping[str, str]) -> dict[str, str]:
    """libpq environment variables for `params`, for running psql without secrets in argv."""
    return {_PG_ENVIRONMENT[key]: value for key, value in params.items() if key in _PG_ENVIRONMENT}


# --------------------------------------------------------------------------------------
# The lock
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockPlan:
    """How the migration lock will be held."""

    method: str  # postgresql, flock, none
    path: str | None = None  # the flock file
    reason: str = ""


def choose_lock(
    method: str, database: Database | None, lock_file: str | None, url_env: str
) -> LockPlan:
    """Which lock to take for `method`, given the database; MigrationError when impossible."""
    if method == "none":
        return LockPlan("none", reason="lock: none was requested")
    if method == "flock" and lock_file:
        return LockPlan("flock", path=lock_file)
    if database is None:
        raise MigrationError(
            f"lock={method} needs the database URL to choose and place the lock, but "
            f"{url_env} is set neither in env_file nor in environment; set "
            "database_url_env to the variable that holds it, or set lock: flock with "
            "lock_file, or lock: none"
        )
    if method == "postgresql" or (method == "auto" and database.kind == "postgresql"):
        if database.kind != "postgresql":
            raise MigrationError(
                f"lock=postgresql needs a PostgreSQL database, but {url_env} points at "
                f"a {database.kind} database; use lock: auto or lock: flock"
            )
        return LockPlan("postgresql")
    if database.kind == "sqlite":
        if database.sqlite_path is None:
            if method == "flock":
                raise MigrationError("lock=flock needs lock_file for an in-memory SQLite database")
            return LockPlan("none", reason="the SQLite database is in memory")
        directory = database.sqlite_path.rsplit("/", 1)[0] or "/"
        return LockPlan("flock", path=f"{directory}/{LOCK_FILE_NAME}")
    raise MigrationError(
        f"lock={method} supports PostgreSQL (advisory lock) and SQLite (flock next to the "
        f"database file), but {url_env} points at another kind of database; set "
        "lock: flock with lock_file (it only excludes migrators on this host) or lock: none"
    )


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) the migration lock."""

    name: str
    hostname: str
    pid: int | None
    release: str
    since: float | None  # Unix time

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hostname": self.hostname,
            "pid": self.pid,
            "release": self.release,
            "since": format_utc(self.since) if self.since is not None else None,
        }


def format_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def holder_json(holder: LockHolder) -> str:
    """The text written into the flock file by the process that holds the lock."""
    record = holder.as_dict()
    record["since_epoch"] = holder.since
    return json.dumps(record, sort_keys=True) + "\n"


def holder_from_json(text: str) -> LockHolder | None:
    """The holder recorded in a flock file; None when it is empty or unreadable."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    since = record.get("since_epoch")
    pid = record.get("pid")
    return LockHolder(
        name=str(record.get("name") or ""),
        hostname=str(record.get("hostname") or "?"),
        pid=pid if isinstance(pid, int) else None,
        release=str(record.get("release") or "?"),
        since=float(since) if isinstance(since, (int, float)) else None,
    )


def _ascii(text: str) -> str:
    return "".join(char if 32 < ord(char) < 127 and char != "/" else "_" for char in text)


def application_name(holder: LockHolder) -> str:
    """application_name of the session holding the PostgreSQL lock, within 63 bytes.

    ``bluegreen-migrate/<since>/<pid>/<hostname>/<release>``: the holder is recorded on
    the session itself, so a second migrator can name it from pg_stat_activity without
    a table in the application's schema (which Alembic autogenerate would try to drop).
    """
    since = str(int(holder.since or 0))
    head = f"{APPLICATION_NAME_PREFIX}/{since}/{holder.pid or 0}/"
    room = APPLICATION_NAME_MAX - len(head) - 1
    host = _ascii(holder.hostname)[: max(room // 2, room - len(holder.release))]
    release = _ascii(holder.release)[: room - len(host)]
    return f"{head}{host}/{release}"


def holder_from_application_name(text: str, name: str) -> LockHolder | None:
    """The holder recorded by application_name(); None for a session that is not ours."""
    parts = text.split("/", 4)
    if len(parts) != 5 or parts[0] != APPLICATION_NAME_PREFIX:
        return None
    _, since, pid, hostname, release = parts
    return LockHolder(
        name=name,
        hostname=hostname or "?",
        pid=int(pid) if pid.isdigit() else None,
        release=release or "?",
        since=float(since) if since.isdigit() and since != "0" else None,
    )


def advisory_lock_ids(key: int) -> tuple[int, int]:
    """(classid, objid) under which pg_locks shows the advisory lock on the bigint `key`."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def describe_holder(holder: LockHolder | None, now: float) -> str:
    if holder is None:
        return "a process that has not recorded itself yet"
    text = f"{holder.hostname} pid {holder.pid if holder.pid is not None else '?'}"
    text += f" (release {holder.release})"
    if holder.since is not None:
        age = max(0, int(now - holder.since))
        text += f" since {format_utc(holder.since)} ({age} s ago)"
    return text


def lock_busy_message(
    *,
    name: str,
    holder: LockHolder | None,
    where: str,
    waited: float,
    now: float,
    detail: str = "",
) -> str:
    """Why the migration did not start: who holds the lock, and what to do."""
    waited_text = f" after waiting {waited:.1f} s" if waited > 0 else ""
    extra = f" ({detail})" if detail else ""
    return (
        f"migration lock for {name} is held by {describe_holder(holder, now)}{extra} "
        f"[{where}]; nothing was migrated{waited_text}. Another migrator is running: wait "
        "for it to finish and run again, or raise lock_timeout to wait for it. The lock is "
        "released as soon as the holding process exits, so a lock never outlives it"
    )


# --------------------------------------------------------------------------------------
# SQL tokenizer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """One lexical token of SQL text."""

    kind: str  # word, quoted, string, number, punct, comment, space
    text: str
    start: int

    @property
    def keyword(self) -> str:
        """The upper-cased word, or the punctuation itself; "" for anything else."""
        if self.kind == "word":
            return self.text.upper()
        if self.kind == "punct":
            return self.text
        return ""

    @property
    def name(self) -> str:
        """The identifier this token names, without quotes."""
        if self.kind != "quoted":
            return self.text
        inner = self.text[1:-1] if len(self.text) > 1 else ""
        closing = self.text[0] if self.text[0] != "[" else "]"
        return inner.replace(closing * 2, closing) if closing != "]" else inner

    @property
    def key(self) -> str:
        """Case-folded identifier, to compare names across quoting styles."""
        return self.name.lower()


_WORD_START = re.compile(r"[A-Za-z_\u0080-\U0010ffff]")
_WORD = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_SPACE = re.compile(r"\s+")


def _end_of_quoted(sql: str, start: int, quote: str, backslash: bool = False) -> int:
    """Index after the closing `quote` (doubled quotes escape it); len(sql) if unclosed."""
    index = start + 1
    while index < len(sql):
        char = sql[index]
        if backslash and char == "\\":
            index += 2
            continue
        if char == quote:
            if index + 1 < len(sql) and sql[index + 1] == quote:
                index += 2
                continue
            return index + 1
        index += 1
    return len(sql)


def _end_of_block_comment(sql: str, start: int) -> int:
    depth, index = 0, start
    while index < len(sql):
        if sql.startswith("/*", index):
            depth, index = depth + 1, index + 2
        elif sql.startswith("*/", index):
            depth, index = depth - 1, index + 2
            if depth == 0:
                return index
        else:
            index += 1
    return len(sql)


def tokenize(sql: str, dialect: str = "postgresql") -> list[Token]:
    """Split `sql` into tokens, honouring quotes, comments and dollar quoting.

    Handles ``'…'`` strings with doubled quotes, ``E'…'`` strings with backslash escapes,
    ``$tag$…$tag$`` bodies, ``"…"`` and ``\\`…\\``` identifiers (``[…]`` too on SQLite),
    ``--`` comments and nested ``/* */`` comments. Unterminated constructs run to the end.
    """
    tokens: list[Token] = []
    index = 0
    length = len(sql)
    while index < length:
        char = sql[index]
        start = index
        if char.isspace():
            index = _SPACE.match(sql, index).end()  # type: ignore[union-attr]
            kind = "space"
        elif sql.startswith("--", index):
            newline = sql.find("\n", index)
            index = length if newline == -1 else newline
            kind = "comment"
        elif sql.startswith("/*", index):
            index = _end_of_block_comment(sql, index)
            kind = "comment"
        elif char == "'":
            index = _end_of_quoted(sql, index, "'")
            kind = "string"
        elif char in "eE" and index + 1 < length and sql[index + 1] == "'":
            index = _end_of_quoted(sql, index + 1, "'", backslash=True)
            kind = "string"
        elif char in '"`':
            index = _end_of_quoted(sql, index, char)
            kind = "quoted"
        elif char == "[" and dialect == "sqlite":
            closing = sql.find("]", index + 1)
            index = length if closing == -1 else closing + 1
            kind = "quoted"
        elif char == "$" and (tag := _DOLLAR_TAG.match(sql, index)):
            closing = sql.find(tag.group(), tag.end())
            index = length if closing == -1 else closing + len(tag.group())
            kind = "string"
        elif _WORD_START.match(char):
            index = _WORD.match(sql, index + 1).end()  # type: ignore[union-attr]
            kind = "word"
        elif char.isdigit() or (char == "." and index + 1 < length and sql[index + 1].isdigit()):
            index = _NUMBER.match(sql, index).end()  # type: ignore[union-attr]
            kind = "number"
        else:
            index += 1
            kind = "punct"
        tokens.append(Token(kind, sql[start:index], start))
    return tokens


@dataclass(frozen=True)
class Statement:
    """One SQL statement: its text, its significant tokens, and the comments before it.

    A chunk of comments with no statement after it is a Statement with no tokens.
    """

    text: str
    tokens: tuple[Token, ...]
    comments: tuple[str, ...]

    @property
    def words(self) -> list[str]:
        return [token.keyword for token in self.tokens]


def split_statements(sql: str, dialect: str = "postgresql") -> list[Statement]:
    """The statements of `sql`, split at semicolons outside quotes, comments and bodies.

    A ``;`` inside a SQLite ``CREATE TRIGGER … BEGIN … END`` or a PostgreSQL
    ``BEGIN ATOMIC … END`` body does not end the statement.
    """
    statements: list[Statement] = []
    significant: list[Token] = []
    comments: list[str] = []
    depth = 0
    trigger = False

    def finish(end: int) -> None:
        nonlocal significant, comments, depth, trigger
        if significant or comments:
            text = sql[significant[0].start : end].strip() if significant else ""
            statements.append(Statement(text, tuple(significant), tuple(comments)))
        significant, comments, depth, trigger = [], [], 0, False

    for token in tokenize(sql, dialect):
        if token.kind == "space":
            continue
        if token.kind == "comment":
            if not significant:
                comments.append(token.text)
            continue
        keyword = token.keyword
        if keyword == ";" and depth == 0:
            finish(token.start)
            continue
        if significant and significant[0].keyword == "CREATE" and keyword == "TRIGGER":
            trigger = True
        opens_body = keyword == "BEGIN" and trigger
        opens_atomic = keyword == "ATOMIC" and significant and significant[-1].keyword == "BEGIN"
        if opens_body or opens_atomic or (keyword == "CASE" and depth > 0):
            depth += 1
        elif keyword == "END" and depth > 0:
            depth -= 1
        significant.append(token)
    if significant:
        last = significant[-1]
        finish(last.start + len(last.text))
    elif comments:
        finish(len(sql))
    return statements


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _join_tokens(tokens: Sequence[Token]) -> str:
    """Tokens as compact normalised text: VARCHAR(100), NUMERIC(10,2), DOUBLE PRECISION."""
    text = ""
    for token in tokens:
        piece = token.text.upper() if token.kind == "word" else token.text
        if text and not (piece in "(),.[]:" or text[-1] in "(.[:"):
            text += " "
        text += piece
    return text


def _split_top_level(tokens: Sequence[Token], separator: str = ",") -> list[list[Token]]:
    """`tokens` split at `separator` outside parentheses."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.keyword in ("(", "["):
            depth += 1
        elif token.keyword in (")", "]"):
            depth -= 1
        elif token.keyword == separator and depth == 0:
            parts.append([])
            continue
        parts[-1].append(token)
    return [part for part in parts if part]


class _Cursor:
    """A read position in a statement's significant tokens."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = list(tokens)
        self.index = 0

    def peek(self, offset: int = 0) -> str:
        position = self.index + offset
        return self.tokens[position].keyword if position < len(self.tokens) else ""

    def at(self, *keywords: str) -> bool:
        return all(self.peek(offset) == word for offset, word in enumerate(keywords))

    def accept(self, *keywords: str) -> bool:
        if self.at(*keywords):
            self.index += len(keywords)
            return True
        return False

    def take(self) -> Token | None:
        if self.index >= len(self.tokens):
            return None
        token = self.tokens[self.index]
        self.index += 1
        return token

    def name(self) -> tuple[str, str]:
        """A possibly qualified name: (display text, key of its last part)."""
        parts: list[Token] = []
        token = self.take()
        while token is not None and token.kind in ("word", "quoted"):
            parts.append(token)
            if not self.at("."):
                break
            self.index += 1
            token = self.take()
        if not parts:
            return "?", "?"
        return ".".join(part.name for part in parts), parts[-1].key

    def parenthesised(self) -> list[Token]:
        """The tokens inside the parentheses at the cursor (empty if there are none)."""
        if not self.at("("):
            return []
        depth, start = 0, self.index
        while self.index < len(self.tokens):
            keyword = self.tokens[self.index].keyword
            self.index += 1
            if keyword == "(":
                depth += 1
            elif keyword == ")":
                depth -= 1
                if depth == 0:
                    return self.tokens[start + 1 : self.index - 1]
        return self.tokens[start + 1 :]

    def rest(self) -> list[Token]:
        rest = self.tokens[self.index :]
        self.index = len(self.tokens)
        return rest

    def done(self) -> bool:
        return self.index >= len(self.tokens)


# --------------------------------------------------------------------------------------
# Table definitions, as far as the classifier needs them
# --------------------------------------------------------------------------------------

_COLUMN_CONSTRAINT_WORDS = frozenset(
    {
        "CONSTRAINT",
        "NOT",
        "NULL",
        "DEFAULT",
        "PRIMARY",
        "UNIQUE",
        "CHECK",
        "REFERENCES",
        "GENERATED",
        "COLLATE",
        "AUTOINCREMENT",
        "AS",
        "ON",
    }
)
_TABLE_CONSTRAINT_WORDS = frozenset(
    {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE", "LIKE"}
)
_SERIAL_TYPES = frozenset({"SERIAL", "BIGSERIAL", "SMALLSERIAL", "SERIAL2", "SERIAL4", "SERIAL8"})
# Defaults that PostgreSQL must evaluate per row, so ADD COLUMN rewrites the whole table.
_VOLATILE_FUNCTIONS = frozenset(
    {
        "RANDOM",
        "GEN_RANDOM_UUID",
        "UUID_GENERATE_V1",
        "UUID_GENERATE_V1MC",
        "UUID_GENERATE_V4",
        "CLOCK_TIMESTAMP",
        "TIMEOFDAY",
        "NEXTVAL",
        "TXID_CURRENT",
    }
)
_TEXT_TYPES = frozenset({"TEXT", "VARCHAR", "CHARACTER VARYING", "CITEXT"})
_INTEGER_WIDTH = {"SMALLINT": 2, "INT2": 2, "INTEGER": 4, "INT": 4, "INT4": 4}
_INTEGER_WIDTH.update({"BIGINT": 8, "INT8": 8})


@dataclass
class Column:
    """A column as a CREATE TABLE or ADD COLUMN defines it."""

    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    auto: bool = False  # serial, identity, autoincrement, SQLite rowid alias
    generated: bool = False
    unique: bool = False

    @property
    def has_default(self) -> bool:
        if self.auto or self.generated:
            return True
        return self.default is not None and self.default.upper() != "NULL"

    @property
    def volatile_default(self) -> bool:
        if self.default is None:
            return False
        return any(word in _VOLATILE_FUNCTIONS for word in re.findall(r"\w+", self.default.upper()))


@dataclass
class Table:
    name: str
    columns: dict[str, Column]
    constraints: tuple[str, ...] = ()
    # Only what the plan itself did to a table the database was not read for.
    partial: bool = False


def parse_column(tokens: Sequence[Token]) -> Column:
    """A column definition: name, type, then constraints in any order."""
    cursor = _Cursor(tokens)
    name_token = cursor.take()
    name = name_token.name if name_token is not None else "?"
    type_tokens: list[Token] = []
    depth = 0
    while not cursor.done():
        keyword = cursor.peek()
        if depth == 0 and keyword in _COLUMN_CONSTRAINT_WORDS:
            break
        depth += keyword == "("
        depth -= keyword == ")"
        type_tokens.append(cursor.take())  # type: ignore[arg-type]
    column = Column(name=name, type=_join_tokens(type_tokens))
    base_type = column.type.split("(")[0]
    column.auto = base_type in _SERIAL_TYPES
    while not cursor.done():
        if cursor.accept("NOT", "NULL"):
            column.not_null = True
        elif cursor.accept("NULL"):
            column.not_null = False
        elif cursor.accept("DEFAULT"):
            expression: list[Token] = []
            while not cursor.done() and (
                not expression
                or cursor.peek() not in (_COLUMN_CONSTRAINT_WORDS - {"NULL", "AS", "ON"})
            ):
                if cursor.at("("):
                    expression.append(cursor.tokens[cursor.index])
                    inner = cursor.parenthesised()
                    expression.extend(inner)
                    expression.append(Token("punct", ")", 0))
                else:
                    expression.append(cursor.take())  # type: ignore[arg-type]
            column.default = _join_tokens(expression)
        elif cursor.accept("PRIMARY", "KEY"):
            column.not_null = True  # a primary key column is NOT NULL
            if base_type == "INTEGER":
                column.auto = True  # SQLite: INTEGER PRIMARY KEY is the rowid
        elif cursor.accept("UNIQUE"):
            column.unique = True
        elif cursor.accept("AUTOINCREMENT"):
            column.auto = True
        elif cursor.accept("GENERATED"):
            if not cursor.accept("ALWAYS"):
                cursor.accept("BY", "DEFAULT")
            cursor.accept("AS")
            if cursor.accept("IDENTITY"):
                column.auto = True
            else:
                column.generated = True
            cursor.parenthesised()
        elif cursor.accept("AS"):
            column.generated = True
            cursor.parenthesised()
        elif cursor.at("CHECK"):
            cursor.take()
            cursor.parenthesised()
        else:
            cursor.take()
    return column


def parse_create_table(statement: Statement) -> Table | None:
    """The table a CREATE TABLE statement defines; None for other statements or AS SELECT."""
    cursor = _Cursor(statement.tokens)
    if not cursor.accept("CREATE"):
        return None
    cursor.accept("OR", "REPLACE")
    for modifier in ("GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED"):
        cursor.accept(modifier)
    if not cursor.accept("TABLE"):
        return None
    cursor.accept("IF", "NOT", "EXISTS")
    display, _ = cursor.name()
    body = cursor.parenthesised()
    if not body and not cursor.done():
        return Table(name=display, columns={})
    columns: dict[str, Column] = {}
    constraints: list[str] = []
    for item in _split_top_level(body):
        if item[0].keyword in _TABLE_CONSTRAINT_WORDS:
            constraints.append(_join_tokens(item))
            _apply_table_constraint(item, columns)
        else:
            column = parse_column(item)
            columns[column.name.lower()] = column
    return Table(name=display, columns=columns, constraints=tuple(constraints))


def _apply_table_constraint(tokens: Sequence[Token], columns: Mapping[str, Column]) -> None:
    cursor = _Cursor(tokens)
    if cursor.accept("CONSTRAINT"):
        cursor.name()
    if cursor.accept("PRIMARY", "KEY"):
        names = [token.key for token in cursor.parenthesised() if token.kind in ("word", "quoted")]
        for key in names:
            if key in columns:
                columns[key].not_null = True
        if len(names) == 1 and names[0] in columns and columns[names[0]].type == "INTEGER":
            columns[names[0]].auto = True


class Schema:
    """The tables a plan touches, as known before it and as each statement changes them.

    Seeded from the live database when it can be read (SQLite), then updated statement by
    statement, so a later statement is judged against what the earlier ones did: an index
    on a table created in the same plan locks nobody, a NOT NULL column added by the plan
    is unknown to the old colour.
    """

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        self.created: set[str] = set()  # tables the plan created
        self.added: set[tuple[str, str]] = set()  # columns the plan added to older tables

    def seed(self, create_sql: str, dialect: str = "sqlite") -> None:
        for statement in split_statements(create_sql, dialect):
            table = parse_create_table(statement)
            if table is not None:
                self.tables[table.name.rsplit(".", 1)[-1].lower()] = table

    def table_for(self, key: str, display: str) -> Table:
        """The table `key`, or an empty partial one to record what the plan does to it."""
        if key not in self.tables:
            self.tables[key] = Table(name=display, columns={}, partial=True)
        return self.tables[key]

    def column_for(self, key: str, table: str, column_key: str, display: str) -> Column:
        """The column, or a placeholder of unknown type to record what the plan does."""
        columns = self.table_for(key, table).columns
        if column_key not in columns:
            columns[column_key] = Column(name=display, type="")
        return columns[column_key]

    def is_new(self, table: str) -> bool:
        return table in self.created

    def is_new_column(self, table: str, column: str) -> bool:
        return table in self.created or (table, column) in self.added


# --------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementVerdict:
    """One statement a migration runs, and what it means for the colour still serving."""

    sql: str
    classification: str
    operation: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {
            "sql": self.sql,
            "classification": self.classification,
            "operation": self.operation,
            "reason": self.reason,
        }


_CONTROL_WORDS = frozenset(
    {"BEGIN", "COMMIT", "ROLLBACK", "START", "END", "SAVEPOINT", "RELEASE", "ABORT"}
)
_SESSION_WORDS = frozenset({"SET", "RESET", "PRAGMA", "SHOW", "USE", "DISCARD"})
_DESTRUCTIVE_WORDS = frozenset({"DROP", "RENAME", "TRUNCATE", "DELETE", "CHANGE", "MODIFY"})
_OBJECT_KINDS = (
    ("MATERIALIZED", "VIEW"),
    ("FOREIGN", "TABLE"),
    ("EVENT", "TRIGGER"),
    ("TEXT", "SEARCH", "CONFIGURATION"),
    ("TEXT", "SEARCH", "DICTIONARY"),
    ("ACCESS", "METHOD"),
    ("OPERATOR", "CLASS"),
    ("OPERATOR", "FAMILY"),
    ("FOREIGN", "DATA", "WRAPPER"),
    ("TABLE",),
    ("INDEX",),
    ("VIEW",),
    ("SEQUENCE",),
    ("TYPE",),
    ("DOMAIN",),
    ("FUNCTION",),
    ("PROCEDURE",),
    ("AGGREGATE",),
    ("TRIGGER",),
    ("SCHEMA",),
    ("EXTENSION",),
    ("RULE",),
    ("POLICY",),
    ("COLLATION",),
    ("STATISTICS",),
    ("OPERATOR",),
    ("PUBLICATION",),
    ("SUBSCRIPTION",),
    ("SERVER",),
    ("ROLE",),
    ("USER",),
    ("CAST",),
)


def is_control(statement: Statement) -> bool:
    """Transaction control (BEGIN, COMMIT, …) that says nothing about the schema."""
    return (
        bool(statement.tokens)
        and statement.tokens[0].keyword in _CONTROL_WORDS
        and not (
            statement.tokens[0].keyword == "BEGIN"
            and len(statement.tokens) > 1
            and statement.tokens[1].keyword
            not in (
                "TRANSACTION",
                "WORK",
                "DEFERRED",
                "IMMEDIATE",
                "EXCLUSIVE",
                "ISOLATION",
                "READ",
            )
        )
    )


def _object_kind(cursor: _Cursor) -> str:
    for kind in _OBJECT_KINDS:
        if cursor.accept(*kind):
            return " ".join(kind).lower()
    return ""


def _widening(old: str, new: str) -> bool:
    """Whether a type change only widens what the column accepts (old values still fit).

    False when the old type is unknown ("").
    """
    old_base, new_base = old.split("(")[0], new.split("(")[0]
    if new_base == "TEXT" and old_base in _TEXT_TYPES:
        return True
    if old_base in ("VARCHAR", "CHARACTER VARYING") and new_base == old_base:
        old_size, new_size = re.findall(r"\d+", old), re.findall(r"\d+", new)
        return not new_size or (bool(old_size) and int(new_size[0]) >= int(old_size[0]))
    if old_base in _INTEGER_WIDTH and new_base in _INTEGER_WIDTH:
        return _INTEGER_WIDTH[new_base] >= _INTEGER_WIDTH[old_base]
    return False


class Classifier:
    """Sorts SQL statements into expand-safe, warning and breaking, statement by statement.

    Expand-safe: the colour still serving keeps working while and after it runs (new
    tables, nullable columns, columns with a default, concurrent indexes, NOT VALID
    constraints, inserts). Warning: compatible, but it locks or rewrites a live table,
    changes data, or cannot be judged from SQL: review it. Breaking: the old colour's
    queries fail or data is lost (drops, renames, type changes, NOT NULL without a
    default, truncation). Unrecognised statements are warnings, or breaking when they
    contain DROP, RENAME, TRUNCATE or DELETE.
    """

    def __init__(self, dialect: str = "postgresql", schema: Schema | None = None) -> None:
        self.dialect = dialect
        self.schema = schema if schema is not None else Schema()

    @staticmethod
    def _verdict(
        statement: Statement, classification: str, operation: str, reason: str
    ) -> StatementVerdict:
        return StatementVerdict(statement.text, classification, operation, reason)

    def classify(self, statements: Sequence[Statement]) -> list[StatementVerdict]:
        """Verdicts for `statements` in order, skipping comment-only chunks.

        Recognises the table rebuild that Django and Alembic's batch mode use on SQLite
        (CREATE TABLE new; INSERT INTO new SELECT … FROM old; DROP TABLE old; ALTER TABLE
        new RENAME TO old) and judges it by how the columns changed.
        """
        verdicts: list[StatementVerdict] = []
        real = [statement for statement in statements if statement.tokens]
        index = 0
        while index < len(real):
            rebuild = self._rebuild_at(real, index)
            if rebuild is not None:
                count, verdict_args = rebuild
                verdicts.extend(
                    StatementVerdict(statement.text, *verdict_args)
                    for statement in real[index : index + count]
                )
                index += count
                continue
            verdicts.append(self.statement(real[index]))
            index += 1
        return verdicts

    def statement(self, statement: Statement) -> StatementVerdict:
        cursor = _Cursor(statement.tokens)
        first = cursor.peek()
        if is_control(statement):
            return self._verdict(statement, EXPAND_SAFE, "transaction control", "")
        if first in _SESSION_WORDS:
            return self._verdict(statement, EXPAND_SAFE, "session setting", "")
        handler = {
            "CREATE": self._create,
            "DROP": self._drop,
            "ALTER": self._alter,
            "INSERT": self._insert,
            "UPDATE": self._update,
            "DELETE": self._delete,
            "TRUNCATE": self._truncate,
            "SELECT": self._select,
            "WITH": self._with,
            "VALUES": self._select,
            "COMMENT": self._harmless("comment"),
            "GRANT": self._harmless("grant privileges"),
            "ANALYZE": self._harmless("analyze"),
            "REVOKE": self._revoke,
            "VACUUM": self._vacuum,
            "REINDEX": self._concurrently("reindex"),
            "REFRESH": self._concurrently("refresh materialized view"),
            "CLUSTER": self._locking("cluster"),
            "LOCK": self._locking("lock table"),
            "DO": self._procedural,
            "CALL": self._procedural,
            "EXECUTE": self._procedural,
            "RENAME": self._mysql_rename,
        }.get(first)
        if handler is None:
            return self._unrecognised(statement)
        return handler(statement, cursor)

    # ---- generic outcomes -------------------------------------------------------------

    def _unrecognised(self, statement: Statement) -> StatementVerdict:
        destructive = sorted({w for w in statement.words if w in _DESTRUCTIVE_WORDS})
        if destructive:
            return self._verdict(
                statement,
                BREAKING,
                "unrecognised statement",
                f"the classifier does not recognise this statement and it contains "
                f"{', '.join(destructive)}, so it is treated as breaking; review it",
            )
        return self._verdict(
            statement,
            WARNING,
            "unrecognised statement",
            "the classifier does not recognise this statement; review it",
        )

    def _harmless(self, operation: str):
        def handler(statement: Statement, _cursor: _Cursor) -> StatementVerdict:
            return self._verdict(statement, EXPAND_SAFE, operation, "")

        return handler

    def _locking(self, operation: str):
        def handler(statement: Statement, _cursor: _Cursor) -> StatementVerdict:
            return self._verdict(
                statement,
                WARNING,
                operation,
                "takes an exclusive lock on a live table while it runs",
            )

        return handler

    def _concurrently(self, operation: str):
        def handler(statement: Statement, _cursor: _Cursor) -> StatementVerdict:
            if "CONCURRENTLY" in statement.words:
                return self._verdict(statement, EXPAND_SAFE, operation, "runs concurrently")
            return self._verdict(
                statement,
                WARNING,
                operation,
                "blocks the live table while it runs; add CONCURRENTLY",
            )

        return handler

    def _procedural(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        return self._verdict(
            statement,
            WARNING,
            "procedural code",
            "runs procedural code whose effect cannot be judged from SQL; review it",
        )

    def _revoke(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        return self._verdict(
            statement,
            WARNING,
            "revoke privileges",
            "the old colour may need the privileges this revokes",
        )

    def _vacuum(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        if "FULL" in statement.words:
            return self._verdict(
                statement, WARNING, "vacuum full", "rewrites the table under an exclusive lock"
            )
        return self._verdict(statement, EXPAND_SAFE, "vacuum", "")

    def _mysql_rename(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("RENAME")
        cursor.accept("TABLE")
        display, _ = cursor.name()
        return self._verdict(
            statement,
            BREAKING,
            f"rename table {display}",
            "the old colour still uses the table under its current name",
        )

    # ---- CREATE -----------------------------------------------------------------------

    def _create(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("CREATE")
        replace = cursor.accept("OR", "REPLACE")
        unique = cursor.accept("UNIQUE")
        for modifier in (
            "GLOBAL",
            "LOCAL",
            "TEMP",
            "TEMPORARY",
            "UNLOGGED",
            "RECURSIVE",
            "CONSTRAINT",
            "TRUSTED",
            "PROCEDURAL",
            "DEFAULT",
        ):
            cursor.accept(modifier)
        if cursor.at("TABLE"):
            return self._create_table(statement)
        if cursor.accept("INDEX"):
            return self._create_index(statement, cursor, unique)
        kind = _object_kind(cursor) or "object"
        cursor.accept("IF", "NOT", "EXISTS")
        display, _ = cursor.name()
        if replace:
            return self._verdict(
                statement,
                WARNING,
                f"replace {kind} {display}",
                "replaces the definition the old colour may rely on",
            )
        return self._verdict(statement, EXPAND_SAFE, f"create {kind} {display}", "")

    def _create_table(self, statement: Statement) -> StatementVerdict:
        table = parse_create_table(statement)
        display = table.name if table is not None else "?"
        key = display.rsplit(".", 1)[-1].lower()
        if table is not None:
            self.schema.tables[key] = table
            self.schema.created.add(key)
        if key in BOOKKEEPING_TABLES:
            return self._verdict(
                statement, EXPAND_SAFE, f"create table {display}", "records migration state"
            )
        return self._verdict(statement, EXPAND_SAFE, f"create table {display}", "a new table")

    def _create_index(self, statement: Statement, cursor: _Cursor, unique: bool):
        concurrently = cursor.accept("CONCURRENTLY")
        cursor.accept("IF", "NOT", "EXISTS")
        index_name = "" if cursor.at("ON") else cursor.name()[0]
        cursor.accept("ON")
        cursor.accept("ONLY")
        table, key = cursor.name()
        kind = "unique index" if unique else "index"
        operation = f"create {kind} {index_name} on {table}".replace("  ", " ")
        if self.schema.is_new(key):
            return self._verdict(statement, EXPAND_SAFE, operation, "on a table new in this plan")
        if unique:
            return self._verdict(
                statement,
                WARNING,
                operation,
                "the old colour's writes that would duplicate a value start failing"
                + (
                    ""
                    if concurrently or self.dialect != "postgresql"
                    else "; it also blocks writes to the table while it builds: add CONCURRENTLY"
                ),
            )
        if concurrently or self.dialect != "postgresql":
            return self._verdict(statement, EXPAND_SAFE, operation, "")
        return self._verdict(
            statement,
            WARNING,
            operation,
            f"locking: blocks writes to {table} while the index builds; "
            "use CREATE INDEX CONCURRENTLY",
        )

    # ---- DROP -------------------------------------------------------------------------

    def _drop(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("DROP")
        kind = _object_kind(cursor) or "object"
        concurrently = cursor.accept("CONCURRENTLY")
        cursor.accept("IF", "EXISTS")
        names = [
            _Cursor(part).name()
            for part in _split_top_level(
                [t for t in cursor.rest() if t.keyword not in ("CASCADE", "RESTRICT")]
            )
        ] or [("?", "?")]
        display = ", ".join(name for name, _ in names)
        operation = f"drop {kind} {display}"
        if kind == "index":
            reason = "queries of the old colour may rely on this index"
            if self.dialect == "postgresql" and not concurrently:
                reason += "; it takes an exclusive lock on the table: use DROP INDEX CONCURRENTLY"
            return self._verdict(statement, WARNING, operation, reason)
        if kind == "table":
            keys = [key for _, key in names]
            new = all(self.schema.is_new(key) for key in keys)
            for key in keys:
                self.schema.tables.pop(key, None)
                self.schema.created.discard(key)
            if new:
                return self._verdict(statement, EXPAND_SAFE, operation, "a table new in this plan")
            return self._verdict(
                statement,
                BREAKING,
                operation,
                "the old colour still reads and writes this table, and its data is lost",
            )
        return self._verdict(
            statement, BREAKING, operation, f"the old colour may still use this {kind}"
        )

    def _truncate(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("TRUNCATE")
        cursor.accept("TABLE")
        cursor.accept("ONLY")
        display, _ = cursor.name()
        return self._verdict(
            statement, BREAKING, f"truncate {display}", "deletes every row of the table"
        )

    # ---- DML --------------------------------------------------------------------------

    def _insert(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("INSERT")
        while cursor.peek() in ("OR", "REPLACE", "IGNORE", "ABORT", "FAIL", "ROLLBACK"):
            cursor.take()
        cursor.accept("INTO")
        display, key = cursor.name()
        if key in BOOKKEEPING_TABLES:
            return self._verdict(
                statement, EXPAND_SAFE, f"insert into {display}", "records migration state"
            )
        return self._verdict(statement, EXPAND_SAFE, f"insert into {display}", "adds rows")

    def _update(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("UPDATE")
        cursor.accept("ONLY")
        display, key = cursor.name()
        if key in BOOKKEEPING_TABLES:
            return self._verdict(
                statement, EXPAND_SAFE, f"update {display}", "records migration state"
            )
        if self.schema.is_new(key):
            return self._verdict(statement, EXPAND_SAFE, f"update {display}", "a new table")
        return self._verdict(
            statement,
            WARNING,
            f"update {display}",
            "changes existing rows, which stay locked until the migration commits; "
            "batch large backfills",
        )

    def _delete(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("DELETE")
        cursor.accept("FROM")
        cursor.accept("ONLY")
        display, key = cursor.name()
        if key in BOOKKEEPING_TABLES:
            return self._verdict(
                statement, EXPAND_SAFE, f"delete from {display}", "records migration state"
            )
        return self._verdict(
            statement, WARNING, f"delete from {display}", "deletes rows the old colour may read"
        )

    def _select(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        return self._verdict(statement, EXPAND_SAFE, "query", "")

    def _with(self, statement: Statement, _cursor: _Cursor) -> StatementVerdict:
        writes = sorted({w for w in statement.words if w in ("INSERT", "UPDATE", "DELETE")})
        if writes:
            return self._verdict(
                statement,
                WARNING,
                "data-modifying query",
                f"a WITH query that runs {', '.join(writes)}; review it",
            )
        return self._verdict(statement, EXPAND_SAFE, "query", "")

    # ---- ALTER ------------------------------------------------------------------------

    def _alter(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("ALTER")
        if cursor.accept("TABLE"):
            return self._alter_table(statement, cursor)
        kind = _object_kind(cursor) or "object"
        cursor.accept("IF", "EXISTS")
        display, _ = cursor.name()
        rest = [token.keyword for token in cursor.rest()]
        operation = f"alter {kind} {display}"
        if kind == "index":
            if "TABLESPACE" in rest:
                return self._verdict(statement, WARNING, operation, "moves the index under a lock")
            return self._verdict(statement, EXPAND_SAFE, operation, "")
        if kind in ("type", "domain") and rest[:2] == ["ADD", "VALUE"]:
            return self._verdict(statement, EXPAND_SAFE, f"add value to type {display}", "")
        if "RENAME" in rest or rest[:2] == ["SET", "SCHEMA"]:
            return self._verdict(
                statement,
                BREAKING,
                f"{operation}: {' '.join(rest[:2]).lower()}",
                "the old colour still uses the current name",
            )
        if kind in ("type", "domain") and ("DROP" in rest or "ALTER" in rest):
            return self._verdict(
                statement, BREAKING, operation, f"changes the {kind} the old colour uses"
            )
        if kind == "domain":
            return self._verdict(
                statement,
                WARNING,
                operation,
                "changes what values the domain accepts; the old colour's writes may fail",
            )
        return self._verdict(statement, EXPAND_SAFE, operation, "")

    def _alter_table(self, statement: Statement, cursor: _Cursor) -> StatementVerdict:
        cursor.accept("IF", "EXISTS")
        cursor.accept("ONLY")
        display, key = cursor.name()
        cursor.accept("*")
        actions = _split_top_level(cursor.rest())
        if not actions:
            return self._unrecognised(statement)
        verdicts = [self._table_action(display, key, action) for action in actions]
        worst_class = worst(verdict[0] for verdict in verdicts)
        chosen = [verdict for verdict in verdicts if verdict[0] == worst_class]
        operation = "; ".join(verdict[1] for verdict in verdicts)
        reason = "; ".join(verdict[2] for verdict in chosen if verdict[2])
        return self._verdict(statement, worst_class, operation, reason)

    def _table_action(self, table: str, key: str, tokens: Sequence[Token]) -> tuple[str, str, str]:
        """(classification, operation, reason) for one ALTER TABLE action."""
        cursor = _Cursor(tokens)
        new_table = self.schema.is_new(key)
        if cursor.accept("ADD"):
            if cursor.peek() in _TABLE_CONSTRAINT_WORDS - {"LIKE"}:
                return self._add_constraint(table, key, cursor)
            if cursor.peek() in ("INDEX", "KEY", "FULLTEXT", "SPATIAL"):
                return WARNING, f"add index on {table}", "builds an index on a live table"
            cursor.accept("COLUMN")
            cursor.accept("IF", "NOT", "EXISTS")
            return self._add_column(table, key, parse_column(cursor.rest()))
        if cursor.accept("DROP"):
            if cursor.accept("CONSTRAINT"):
                cursor.accept("IF", "EXISTS")
                name, _ = cursor.name()
                return (
                    WARNING,
                    f"drop constraint {name} on {table}",
                    "removes a guarantee the data (and the old colour) may rely on",
                )
            if cursor.peek() in ("PRIMARY", "FOREIGN", "INDEX", "KEY", "CHECK"):
                return WARNING, f"drop {cursor.peek().lower()} on {table}", "removes a constraint"
            cursor.accept("COLUMN")
            cursor.accept("IF", "EXISTS")
            name, column_key = cursor.name()
            known = self.schema.tables.get(key)
            if known is not None:
                known.columns.pop(column_key, None)
            if new_table or (key, column_key) in self.schema.added:
                return EXPAND_SAFE, f"drop column {table}.{name}", "a column new in this plan"
            return (
                BREAKING,
                f"drop column {table}.{name}",
                "the old colour still reads and writes this column, and its data is lost",
            )
        if cursor.accept("RENAME"):
            if cursor.accept("TO"):
                new_name, new_key = cursor.name()
                table_def = self.schema.tables.pop(key, None)
                if table_def is not None:
                    self.schema.tables[new_key] = table_def
                if new_table:
                    self.schema.created.discard(key)
                    self.schema.created.add(new_key)
                    return EXPAND_SAFE, f"rename table {table} to {new_name}", "new in this plan"
                return (
                    BREAKING,
                    f"rename table {table} to {new_name}",
                    "the old colour still uses the table under its current name",
                )
            if cursor.accept("CONSTRAINT"):
                name, _ = cursor.name()
                return EXPAND_SAFE, f"rename constraint {name} on {table}", ""
            cursor.accept("COLUMN")
            old_name, old_key = cursor.name()
            cursor.accept("TO")
            new_name, new_key = cursor.name()
            known = self.schema.tables.get(key)
            if known is not None and old_key in known.columns:
                column = known.columns.pop(old_key)
                column.name = new_name
                known.columns[new_key] = column
            operation = f"rename column {table}.{old_name} to {new_name}"
            if new_table or (key, old_key) in self.schema.added:
                self.schema.added.add((key, new_key))
                return EXPAND_SAFE, operation, "a column new in this plan"
            return (
                BREAKING,
                operation,
                "the old colour still reads and writes the column under its current name",
            )
        if cursor.accept("ALTER"):
            cursor.accept("COLUMN")
            return self._alter_column(table, key, cursor)
        if cursor.accept("VALIDATE", "CONSTRAINT"):
            name, _ = cursor.name()
            return EXPAND_SAFE, f"validate constraint {name} on {table}", "does not block writes"
        if cursor.at("MODIFY") or cursor.at("CHANGE"):
            return (
                BREAKING,
                f"{cursor.peek().lower()} column on {table}",
                "redefines a column the old colour uses",
            )
        if cursor.accept("SET", "SCHEMA"):
            return (
                BREAKING,
                f"move table {table} to another schema",
                "the old colour still uses the table where it is",
            )
        words = [token.keyword for token in cursor.rest()]
        text = " ".join(words).lower()
        if words[:1] in (["OWNER"], ["REPLICA"], ["CLUSTER"]) or words[:2] in (
            ["SET", "WITHOUT"],
            ["SET", "STATISTICS"],
            ["RESET", "("],
            ["SET", "("],
        ):
            return EXPAND_SAFE, f"alter table {table}: {text}", ""
        return (
            WARNING,
            f"alter table {table}: {text}",
            "locks or rewrites the table, or changes its behaviour; review it",
        )

    def _add_column(self, table: str, key: str, column: Column) -> tuple[str, str, str]:
        operation = f"add column {table}.{column.name}"
        self.schema.table_for(key, table).columns[column.name.lower()] = column
        if self.schema.is_new(key):
            return EXPAND_SAFE, operation, "on a table new in this plan"
        self.schema.added.add((key, column.name.lower()))
        if column.not_null and not column.has_default:
            return (
                BREAKING,
                f"{operation} NOT NULL without default",
                "the old colour's INSERTs do not set it and fail (and it cannot be added "
                "to a table that has rows); add it nullable or with a server default",
            )
        if column.generated and self.dialect == "postgresql":
            return WARNING, operation, "a stored generated column rewrites the table under a lock"
        if (column.auto or column.volatile_default) and self.dialect == "postgresql":
            return (
                WARNING,
                operation,
                "a volatile default (serial, identity, random, clock) rewrites the table "
                "under an exclusive lock",
            )
        if column.unique:
            return WARNING, operation, "builds a unique index on a live table"
        if column.has_default:
            return EXPAND_SAFE, f"{operation} with default", ""
        return EXPAND_SAFE, f"{operation} (nullable)", ""

    def _add_constraint(self, table: str, key: str, cursor: _Cursor) -> tuple[str, str, str]:
        name = ""
        if cursor.accept("CONSTRAINT"):
            name = cursor.name()[0] + " "
        kind = cursor.peek().lower()
        words = [token.keyword for token in cursor.rest()]
        label = {"primary": "primary key", "foreign": "foreign key"}.get(kind, kind)
        operation = f"add {label} constraint {name}on {table}"
        if self.schema.is_new(key):
            return EXPAND_SAFE, operation, "on a table new in this plan"
        if words[-2:] == ["NOT", "VALID"]:
            return EXPAND_SAFE, operation, "NOT VALID: existing rows are not checked under lock"
        if kind in ("unique", "primary") and "USING" in words and "INDEX" in words:
            return EXPAND_SAFE, operation, "uses an index built beforehand"
        if kind in ("unique", "primary", "exclude"):
            return (
                WARNING,
                operation,
                "builds an index under a lock, and the old colour's conflicting writes fail; "
                "build a unique index CONCURRENTLY first and add the constraint USING INDEX",
            )
        return (
            WARNING,
            operation,
            "checks every row while holding a lock; add it NOT VALID, then VALIDATE CONSTRAINT",
        )

    def _alter_column(self, table: str, key: str, cursor: _Cursor) -> tuple[str, str, str]:
        name, column_key = cursor.name()
        column = self.schema.column_for(key, table, column_key, name)
        new = self.schema.is_new_column(key, column_key)
        target = f"{table}.{name}"
        if cursor.accept("SET", "DATA", "TYPE") or cursor.accept("TYPE"):
            type_tokens: list[Token] = []
            while not cursor.done() and cursor.peek() not in ("USING", "COLLATE"):
                type_tokens.append(cursor.take())  # type: ignore[arg-type]
            new_type = _join_tokens(type_tokens)
            old_type, column.type = column.type, new_type
            operation = f"alter column {target} type {new_type}"
            if new:
                return EXPAND_SAFE, operation, "a column new in this plan"
            if _widening(old_type, new_type):
                return (
                    WARNING,
                    operation,
                    f"widens {old_type} to {new_type}; old values still fit, but it may "
                    "rewrite the table under a lock",
                )
            return (
                BREAKING,
                operation,
                "the old colour reads and writes values of the current type, and the change "
                "may rewrite the table under a lock",
            )
        if cursor.accept("SET", "NOT", "NULL"):
            has_default, column.not_null = column.has_default, True
            operation = f"set not null on {target}"
            if new:
                return EXPAND_SAFE, operation, "a column new in this plan"
            if has_default:
                return (
                    WARNING,
                    operation,
                    "scans the table under an exclusive lock, and the old colour's writes of "
                    "an explicit NULL fail",
                )
            return (
                BREAKING,
                f"{operation} without default",
                "the old colour's writes that leave it empty fail",
            )
        if cursor.accept("DROP", "NOT", "NULL"):
            column.not_null = False
            return EXPAND_SAFE, f"drop not null on {target}", "relaxes a constraint"
        if cursor.accept("SET", "DEFAULT"):
            column.default = _join_tokens(cursor.rest()) or "?"
            return EXPAND_SAFE, f"set default on {target}", ""
        if cursor.accept("DROP", "DEFAULT"):
            was_not_null, column.default = column.not_null, None
            operation = f"drop default on {target}"
            if self.schema.is_new(key):
                return EXPAND_SAFE, operation, "on a table new in this plan"
            if was_not_null and (key, column_key) in self.schema.added:
                return (
                    BREAKING,
                    f"{operation} (NOT NULL column added in this plan)",
                    "the column is NOT NULL and the old colour does not know it, so its "
                    "INSERTs fail once the default is gone (Django's add-field pattern: give "
                    "the field db_default, or make it nullable)",
                )
            if was_not_null:
                return WARNING, operation, "INSERTs that omit this NOT NULL column will fail"
            return WARNING, operation, "INSERTs that omit this column no longer get a value"
        words = " ".join(token.keyword for token in cursor.rest()).lower()
        if words.startswith(
            ("set statistics", "set storage", "set (", "reset (", "set compression")
        ):
            return EXPAND_SAFE, f"alter column {target}: {words}", ""
        return WARNING, f"alter column {target}: {words}", "review it"

    # ---- the SQLite table rebuild ----------------------------------------------------

    def _rebuild_at(
        self, statements: Sequence[Statement], index: int
    ) -> tuple[int, tuple[str, str, str]] | None:
        """(statement count, verdict fields) when a table rebuild starts at `index`."""
        window = statements[index : index + 4]
        if len(window) < 4:
            return None
        create, insert, drop, rename = window
        new_table = parse_create_table(create)
        if new_table is None or not new_table.columns:
            return None
        new_key = new_table.name.rsplit(".", 1)[-1].lower()
        copy = _parse_insert_select(insert)
        if copy is None or copy[0] != new_key:
            return None
        _, targets, sources, old_key = copy
        drop_cursor = _Cursor(drop.tokens)
        if not (drop_cursor.accept("DROP", "TABLE")):
            return None
        drop_cursor.accept("IF", "EXISTS")
        if drop_cursor.name()[1] != old_key:
            return None
        rename_cursor = _Cursor(rename.tokens)
        if not rename_cursor.accept("ALTER", "TABLE"):
            return None
        if rename_cursor.name()[1] != new_key or not rename_cursor.accept("RENAME", "TO"):
            return None
        final_name, final_key = rename_cursor.name()
        if final_key != old_key:
            return None
        old_table = self.schema.tables.get(old_key)
        was_new = self.schema.is_new(old_key)
        new_table.name = final_name
        self.schema.tables[old_key] = new_table
        operation = f"rebuild table {final_name} (SQLite table copy)"
        if was_new:
            return 4, (EXPAND_SAFE, operation, "a table new in this plan")
        if old_table is None or old_table.partial:
            return 4, (
                BREAKING,
                operation,
                "the table's previous definition is unknown, so what the copy changes cannot "
                "be checked; treated as breaking: review the migration",
            )
        return 4, self._compare_tables(old_key, old_table, new_table, targets, sources, operation)

    def _compare_tables(
        self,
        key: str,
        old: Table,
        new: Table,
        targets: Sequence[str],
        sources: Sequence[str | None],
        operation: str,
    ) -> tuple[str, str, str]:
        """How a rebuild changes the table, judged column by column."""
        copied_from = {target: sources[index] for index, target in enumerate(targets)}
        findings: list[tuple[str, str]] = []
        renamed_sources = {
            source: target
            for target, source in copied_from.items()
            if source is not None and source != target and source in old.columns
        }
        for name, column in old.columns.items():
            if name in new.columns:
                continue
            if (key, name) in self.schema.added:
                findings.append((EXPAND_SAFE, f"drops column {column.name}, new in this plan"))
            elif name in renamed_sources:
                findings.append(
                    (
                        BREAKING,
                        f"renames column {column.name} to {renamed_sources[name]}",
                    )
                )
            else:
                findings.append((BREAKING, f"drops column {column.name}"))
        for name, column in new.columns.items():
            before = old.columns.get(name)
            if before is None:
                if name in renamed_sources.values():
                    continue
                self.schema.added.add((key, name))
                if column.not_null and not column.has_default:
                    findings.append(
                        (
                            BREAKING,
                            f"adds NOT NULL column {column.name} without a "
                            "default (the old colour's INSERTs fail)",
                        )
                    )
                else:
                    findings.append((EXPAND_SAFE, f"adds column {column.name}"))
                continue
            if (key, name) in self.schema.added:
                continue
            if before.type != column.type:
                if _widening(before.type, column.type):
                    findings.append(
                        (WARNING, f"widens {column.name} from {before.type} to {column.type}")
                    )
                else:
                    findings.append(
                        (
                            BREAKING,
                            f"changes the type of {column.name} from "
                            f"{before.type} to {column.type}",
                        )
                    )
            if column.not_null and not before.not_null:
                if column.has_default:
                    findings.append(
                        (
                            WARNING,
                            f"makes {column.name} NOT NULL (it has a "
                            "default; explicit NULL writes fail)",
                        )
                    )
                else:
                    findings.append(
                        (
                            BREAKING,
                            f"makes {column.name} NOT NULL without a "
                            "default (the old colour's writes that leave "
                            "it empty fail)",
                        )
                    )
            elif before.not_null and not column.not_null:
                findings.append((EXPAND_SAFE, f"makes {column.name} nullable"))
            if before.has_default and not column.has_default and column.not_null:
                findings.append((WARNING, f"drops the default of NOT NULL column {column.name}"))
        if sorted(old.constraints) != sorted(new.constraints):
            findings.append((WARNING, "changes the table's constraints"))
        if not findings:
            return EXPAND_SAFE, operation, "copies the table without changing its columns"
        classification = worst(level for level, _ in findings)
        reason = "; ".join(text for level, text in findings if level == classification)
        return classification, operation, reason


def _parse_insert_select(
    statement: Statement,
) -> tuple[str, list[str], list[str | None], str] | None:
    """(target table, target columns, source column per target, source table) of
    ``INSERT INTO t (cols) SELECT exprs FROM s``; None for anything else.

    A source is None when the value is an expression rather than a plain column.
    """
    cursor = _Cursor(statement.tokens)
    if not cursor.accept("INSERT", "INTO"):
        return None
    _, target_key = cursor.name()
    targets = [t.key for t in cursor.parenthesised() if t.kind in ("word", "quoted")]
    if not cursor.accept("SELECT"):
        return None
    select: list[Token] = []
    depth = 0
    while not cursor.done():
        keyword = cursor.peek()
        if keyword == "FROM" and depth == 0:
            break
        depth += keyword == "("
        depth -= keyword == ")"
        select.append(cursor.take())  # type: ignore[arg-type]
    if not cursor.accept("FROM"):
        return None
    _, source_key = cursor.name()
    sources: list[str | None] = []
    for expression in _split_top_level(select):
        names = [t for t in expression if t.keyword != "."]
        plain = all(t.kind in ("word", "quoted") for t in names) and len(names) <= 3
        sources.append(names[-1].key if plain and names else None)
    if len(sources) != len(targets):
        return None
    return target_key, targets, sources, source_key


def python_operation_verdict(describe: str, file: str | None) -> StatementVerdict:
    """The verdict for a Django operation that cannot be written as SQL (RunPython)."""
    where = f" in {file}" if file else ""
    return StatementVerdict(
        sql=f"-- {describe} (Python code, no SQL)",
        classification=WARNING,
        operation="python code",
        reason=f"runs Python code that cannot be classified from SQL; review it{where}",
    )


_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit)\b.*")


def tool_error(tool_output: str) -> str:
    """The line of a tool's output that names its error: the last ``SomethingError: …``
    line of a traceback, not the warnings that came before it."""
    lines = [line.strip() for line in tool_output.splitlines() if line.strip()]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line
    return lines[-1] if lines else ""


def unplannable_verdict(tool_output: str) -> StatementVerdict:
    """The verdict for a migration whose SQL the tool could not render."""
    return StatementVerdict(
        sql="",
        classification=BREAKING,
        operation="unknown SQL",
        reason="the tool could not render this migration's SQL, so it cannot be checked; "
        f"treated as breaking: {excerpt(tool_error(tool_output), 300)}",
    )


def empty_database_verdict(describe: str) -> StatementVerdict:
    """The verdict for an operation applied to a database that has no tables yet."""
    return StatementVerdict(
        sql=f"-- {describe}",
        classification=EXPAND_SAFE,
        operation="first schema",
        reason="the database has no tables, so no running colour can depend on its schema",
    )


# Django operations by what they do to a colour still running the previous release, for
# migrations whose SQL cannot be rendered in advance (an operation that inspects tables
# an earlier migration of the same plan creates). Field additions are judged on the field.
_DJANGO_EXPAND_OPERATIONS = frozenset(
    {
        "CreateModel",
        "AddIndex",
        "RenameIndex",
        "RemoveIndex",
        "RemoveConstraint",
        "AlterModelOptions",
        "AlterModelManagers",
        "AlterModelTableComment",
    }
)
_DJANGO_BREAKING_OPERATIONS = {
    "RemoveField": "removes a column the old colour still reads and writes",
    "DeleteModel": "drops a table the old colour still uses",
    "RenameField": "renames a column the old colour still uses by its old name",
    "RenameModel": "renames a table the old colour still uses by its old name",
    "AlterModelTable": "renames a table the old colour still uses by its old name",
}
_DJANGO_WARNING_OPERATIONS = {
    "AlterField": "changes a column (type, null, constraints); review that the old colour's "
    "reads and writes still fit",
    "AddConstraint": "adds a constraint that rows written by the old colour must satisfy",
    "AlterUniqueTogether": "changes a unique constraint that rows written by the old colour "
    "must satisfy",
    "AlterIndexTogether": "changes indexes; review its locking",
    "AlterOrderWithRespectTo": "adds or removes the _order column",
    "RunSQL": "runs raw SQL that could not be rendered; review it",
    "SeparateDatabaseAndState": "runs database operations that could not be rendered; review them",
}


def django_operation_verdict(operation: Mapping[str, Any], file: str | None) -> StatementVerdict:
    """The verdict for one Django operation, judged from what it is when its SQL cannot be
    rendered: new tables and indexes are expand-safe, removals and renames breaking."""
    kind = str(operation.get("type", ""))
    describe = str(operation.get("describe", kind))
    sql = f"-- {describe} (SQL not rendered)"
    where = f" in {file}" if file else ""
    if kind in _DJANGO_EXPAND_OPERATIONS:
        return StatementVerdict(sql, EXPAND_SAFE, kind, "")
    if kind == "AddField":
        if operation.get("null") or operation.get("db_default") or operation.get("many_to_many"):
            return StatementVerdict(sql, EXPAND_SAFE, kind, "")
        return StatementVerdict(
            sql,
            BREAKING,
            kind,
            "adds a NOT NULL column without a database default (db_default): the old "
            "colour's inserts do not set it",
        )
    if kind in _DJANGO_BREAKING_OPERATIONS:
        return StatementVerdict(sql, BREAKING, kind, _DJANGO_BREAKING_OPERATIONS[kind])
    if kind in _DJANGO_WARNING_OPERATIONS:
        return StatementVerdict(sql, WARNING, kind, _DJANGO_WARNING_OPERATIONS[kind] + where)
    if not operation.get("sql", True):
        return python_operation_verdict(describe, file)
    return StatementVerdict(
        sql,
        BREAKING,
        kind or "unknown operation",
        f"an operation bluegreen does not know, whose SQL could not be rendered{where}; "
        "treated as breaking",
    )


# --------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------


@dataclass
class PendingMigration:
    """One migration the plan applies (or unapplies), with its classified statements."""

    revision: str
    file: str | None
    description: str
    direction: str  # upgrade or downgrade
    statements: list[StatementVerdict] = field(default_factory=list)
    irreversible: str | None = None

    @property
    def classification(self) -> str:
        return worst(verdict.classification for verdict in self.statements)

    @property
    def reason(self) -> str:
        level = self.classification
        reasons = [
            f"{verdict.operation}: {verdict.reason}" if verdict.reason else verdict.operation
            for verdict in self.statements
            if verdict.classification == level and level != EXPAND_SAFE
        ]
        if not reasons:
            return "no statement needs attention" if self.statements else "runs no SQL"
        return "; ".join(dict.fromkeys(reasons))

    def breaking(self) -> list[dict[str, Any]]:
        return [
            {
                "revision": self.revision,
                "file": self.file,
                "operation": verdict.operation,
                "statement": excerpt(verdict.sql),
                "reason": verdict.reason,
            }
            for verdict in self.statements
            if verdict.classification == BREAKING
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "file": self.file,
            "description": self.description,
            "direction": self.direction,
            "classification": self.classification,
            "reason": self.reason,
            "irreversible": self.irreversible,
            "statements": [verdict.as_dict() for verdict in self.statements],
        }


def classify_pending(
    pending: Sequence[PendingMigration],
    sql_by_revision: Mapping[str, Sequence[Statement]],
    classifier: Classifier,
) -> None:
    """Fill each pending migration's statements, in plan order, with one classifier."""
    for migration in pending:
        statements = sql_by_revision.get(migration.revision, ())
        verdicts = classifier.classify([s for s in statements if not is_control(s)])
        migration.statements[:0] = verdicts


def breaking_of(pending: Sequence[PendingMigration]) -> list[dict[str, Any]]:
    return [item for migration in pending for item in migration.breaking()]


def refusal_message(
    pending: Sequence[PendingMigration], direction: str, current: str | None, tool: str
) -> str:
    """Why the plan is refused for breaking statements, naming operation, SQL and file."""
    items = breaking_of(pending)
    shown = [
        f"{item['operation']} in {item['revision']} ({item['file'] or 'file unknown'}): "
        f"{item['reason']} [{item['statement']}]"
        for item in items[:3]
    ]
    more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
    at = current or ("zero" if tool == "django" else "base")
    if direction == "downgrade":
        advice = (
            "A downgrade that drops data loses what was written since the upgrade: restore "
            "the snapshot taken before the release instead, or set allow_breaking: true to "
            "accept the loss"
        )
    else:
        advice = (
            "Releases are expand-only because the old colour keeps running on the new "
            "schema: ship this contract step in a later release, once no running colour "
            "uses what it removes, or set allow_breaking: true if the old colour does not "
            "need it"
        )
    return (
        f"refusing to {direction}: {len(items)} breaking operation(s): "
        + "; ".join(shown)
        + f"{more}. {advice}. Nothing was applied; the database is still at {at}"
    )


def irreversible_message(pending: Sequence[PendingMigration], target: str, current: str) -> str:
    blocked = [migration for migration in pending if migration.irreversible]
    named = "; ".join(
        f"{migration.revision} ({migration.file or 'file unknown'}): {migration.irreversible}"
        for migration in blocked
    )
    return (
        f"cannot downgrade from {current} to {target}: {named}. Nothing was applied. "
        "Restore the database snapshot taken before the release instead (bluegreen restore)"
    )


def stderr_tail(text: str) -> str:
    """The end of a tool's stderr, enough to see the error without the whole traceback."""
    lines = text.rstrip().splitlines()[-STDERR_TAIL_LINES:]
    tail = "\n".join(lines)
    return tail if len(tail) <= STDERR_TAIL_CHARS else "…" + tail[-STDERR_TAIL_CHARS:]


def failed_migration_message(
    *,
    direction: str,
    tool: str,
    stopped_at: str | None,
    started_at: str | None,
    failing: PendingMigration | None,
    stderr: str,
) -> str:
    """What a failed upgrade/downgrade left behind, and what to do next."""
    zero = "zero" if tool == "django" else "base"
    where = f"the database is at {stopped_at or zero}"
    moved = "" if stopped_at == started_at else f" (it started at {started_at or zero})"
    culprit = (
        f" while running {failing.revision} ({failing.file or 'file unknown'})"
        if failing is not None
        else ""
    )
    return (
        f"{tool} {direction} failed{culprit}; {where}{moved}. Fix the migration (or the "
        "database) and run again; to go back, downgrade to the revision recorded before "
        f"the release or restore the snapshot. {tool} said: {stderr_tail(stderr) or '(nothing)'}"
    )


# --------------------------------------------------------------------------------------
# Alembic
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlembicRevision:
    revision: str
    parents: tuple[str, ...]
    path: str | None
    message: str


def parse_alembic_history(text: str) -> dict[str, AlembicRevision]:
    """The revisions in ``alembic history -v`` output, newest first as printed."""
    revisions: dict[str, AlembicRevision] = {}
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            revisions[current["revision"]] = AlembicRevision(
                revision=current["revision"],
                parents=current["parents"],
                path=current["path"],
                message=current["message"],
            )

    for line in text.splitlines():
        if line.startswith("Rev: "):
            close()
            current = {
                "revision": line[5:].split()[0],
                "parents": (),
                "path": None,
                "message": "",
            }
        elif current is None:
            continue
        elif line.startswith(("Parent: ", "Merges: ")):
            value = line.split(": ", 1)[1].strip()
            if value != "<base>":
                current["parents"] = tuple(p.strip() for p in value.split(",") if p.strip())
        elif line.startswith("Path: "):
            current["path"] = line[6:].strip()
        elif line.startswith("    ") and not current["message"] and line.strip():
            current["message"] = line.strip()
    close()
    return revisions


def alembic_marked_current(text: str) -> list[str]:
    """The revisions ``alembic history -v --indicate-current`` marks ``(current)``."""
    return [
        line[5:].split()[0]
        for line in text.splitlines()
        if line.startswith("Rev: ") and "(current)" in line
    ]


_UNKNOWN_REVISION_RE = re.compile(r"Can't locate revision identified by '([^']+)'")


def alembic_unknown_revision(output: str) -> str | None:
    """The revision Alembic reports the database at but cannot find in the release's scripts.

    That is the database of a later release: ``alembic current`` fails with
    "Can't locate revision identified by '0002'" when 1.0.0 (head 0001) reads it.
    """
    match = _UNKNOWN_REVISION_RE.search(output)
    return match.group(1) if match else None


def unknown_revision_note(current: str, head: str | None, release: str) -> str:
    """Why an upgrade of an older release left a newer database alone."""
    return (
        f"the database is at revision {current}, which release {release} does not ship (its "
        f"head is {head or 'none'}): a later release migrated it. Releases are expand-only, "
        "so this release's code runs on that schema and nothing was migrated; to take the "
        f"schema back, downgrade with the release that ships {current}"
    )


def alembic_heads(graph: Mapping[str, AlembicRevision]) -> list[str]:
    parents = {parent for revision in graph.values() for parent in revision.parents}
    return sorted(revision for revision in graph if revision not in parents)


def parse_alembic_current(text: str, graph: Mapping[str, AlembicRevision]) -> list[str]:
    """The revisions ``alembic current`` printed, ignoring any other output."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in graph and words[0] not in found:
            found.append(words[0])
    return found


def resolve_alembic_target(target: str | None, graph: Mapping[str, AlembicRevision]) -> str | None:
    """The revision id `target` names: head (default), base (None), an id or unique prefix."""
    heads = alembic_heads(graph)
    if target in (None, "head", "heads"):
        if len(heads) != 1:
            raise MigrationError(
                f"the migrations have {len(heads)} heads ({', '.join(heads) or 'none'}); "
                "merge them (alembic merge heads) in the release, or name one in target"
            )
        return heads[0]
    if target == "base":
        return None
    if target in graph:
        return target
    matches = [revision for revision in graph if revision.startswith(target or "")]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(list(graph)[:10])
    problem = "matches several revisions" if matches else "is not a revision of this release"
    raise MigrationError(
        f"target {target!r} {problem}; known revisions: {known}. Use a full revision id, "
        "head or base"
    )


def alembic_ancestors(graph: Mapping[str, AlembicRevision], revision: str | None) -> set[str]:
    """`revision` and every revision it depends on."""
    seen: set[str] = set()
    stack = [revision] if revision else []
    while stack:
        item = stack.pop()
        if item in seen or item not in graph:
            continue
        seen.add(item)
        stack.extend(graph[item].parents)
    return seen


def alembic_order(graph: Mapping[str, AlembicRevision], revisions: set[str]) -> list[str]:
    """`revisions` in application order (parents before children)."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(revision: str) -> None:
        if revision in seen or revision not in revisions:
            return
        seen.add(revision)
        for parent in graph[revision].parents:
            visit(parent)
        ordered.append(revision)

    for revision in sorted(revisions):
        visit(revision)
    return ordered


def alembic_plan(
    graph: Mapping[str, AlembicRevision], current: str | None, target: str | None
) -> tuple[str, list[str]]:
    """(direction, revisions to run in order) to go from `current` to `target`.

    upgrade when the target is ahead, downgrade (newest first) when it is behind, none
    when they are equal. Branches that are neither are refused.
    """
    have = alembic_ancestors(graph, current)
    want = alembic_ancestors(graph, target)
    if have == want:
        return "none", []
    if have <= want:
        return "upgrade", alembic_order(graph, want - have)
    if want <= have:
        return "downgrade", list(reversed(alembic_order(graph, have - want)))
    raise MigrationError(
        f"the database is at {current}, which is on another branch than {target}; "
        "migrate along one branch (or merge the heads) first"
    )


_MARKER_RE = re.compile(r"^--\s*Running (upgrade|downgrade) (.*?)\s*->\s*(.*?)\s*$")


def alembic_sql_sections(
    statements: Sequence[Statement],
) -> tuple[list[Statement], dict[str, list[Statement]]]:
    """Offline SQL split by the ``-- Running upgrade a -> b`` comments Alembic writes.

    Returns the statements before the first marker (the version table, BEGIN) and the
    statements of each revision: the new revision for an upgrade, the undone one for a
    downgrade.
    """
    preamble: list[Statement] = []
    sections: dict[str, list[Statement]] = {}
    revision: str | None = None
    for statement in statements:
        for comment in statement.comments:
            match = _MARKER_RE.match(comment.strip())
            if match:
                direction, left, right = match.groups()
                revision = right if direction == "upgrade" else left
                sections.setdefault(revision, [])
        if not statement.tokens:
            continue
        if revision is None:
            preamble.append(statement)
        else:
            sections[revision].append(statement)
    return preamble, sections


def alembic_downgrade_problem(source: str) -> str | None:
    """Why a revision's ``downgrade()`` cannot undo it, or None when it looks real.

    Irreversible: no ``downgrade`` function, a body of only ``pass``/``...``/docstring,
    or a ``raise`` among its top-level statements. SyntaxError propagates.
    """
    tree = ast.parse(source)
    function = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "downgrade":
            function = node
    if function is None:
        return "it has no downgrade() function"
    body = list(function.body)
    if body and _is_docstring(body[0]):
        body = body[1:]
    if all(
        isinstance(node, ast.Pass)
        or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        for node in body
    ):
        return f"its downgrade() does nothing (line {function.lineno})"
    for node in body:
        if isinstance(node, ast.Raise):
            return f"its downgrade() raises {_raised_name(node.exc)} (line {node.lineno})"
    return None


def _raised_name(node: ast.expr | None) -> str:
    """The exception a raise names (ast.unparse is not available before Python 3.9)."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return "an exception"


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


# --------------------------------------------------------------------------------------
# Django
# --------------------------------------------------------------------------------------

DJANGO_JSON_MARKER = "BLUEGREEN-MIGRATION-JSON "

# Run by `manage.py shell -c` in the release's virtualenv: reads the migration graph and
# what is applied, and plans the targets, the way `migrate` does. Prints one JSON line.
_DJANGO_HELPER = r"""
import json, sys
REQUEST = json.loads(__REQUEST__)
def _bluegreen_main():
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    loader, graph = executor.loader, executor.loader.graph
    applied = set(loader.applied_migrations)
    apps = sorted({app for app, _ in graph.nodes})
    def tips(nodes):
        names = []
        for node in nodes:
            children = graph.node_map[node].children
            if not any(child[0] == node[0] and child in nodes for child in children):
                names.append(node[1])
        return sorted(names)
    current = {a: tips({n for n in graph.nodes if n[0] == a and n in applied}) for a in apps}
    leaves = {a: sorted(n for app, n in graph.leaf_nodes() if app == a) for a in apps}
    def resolve(app, name):
        if app not in apps:
            raise LookupError("app %r has no migrations (apps: %s)" % (app, ", ".join(apps)))
        if name == "zero":
            return [(app, None)]
        if not name:
            return [(app, leaf) for leaf in leaves[app]]
        return [(app, loader.get_migration_by_prefix(app, name).name)]
    if REQUEST["targets"] is None:
        targets = [("", graph.leaf_nodes())]
    else:
        targets = [("%s.%s" % (a, n) if n else a, resolve(a, n)) for a, n in REQUEST["targets"]]
    plans, seen, combined = [], set(), []
    for label, nodes in targets:
        plan = executor.migration_plan(nodes)
        steps = [("%s.%s" % (m.app_label, m.name), bool(b)) for m, b in plan]
        plans.append({"target": label, "steps": steps})
        for m, b in plan:
            key = "%s.%s" % (m.app_label, m.name)
            if key not in seen:
                seen.add(key)
                combined.append((m, bool(b)))
    with connection.cursor() as cursor:
        names = connection.introspection.table_names(cursor)
    empty = not [name for name in names if name != "django_migrations"]
    render = REQUEST["sql"] and not (empty and not any(b for _, b in combined))
    state, migrations, done = None, [], []
    for m, backwards in combined:
        module = sys.modules.get(m.__module__)
        item = {
            "revision": "%s.%s" % (m.app_label, m.name), "app": m.app_label, "name": m.name,
            "backwards": backwards, "file": getattr(module, "__file__", None),
            "operations": [_bluegreen_operation(o) for o in m.operations]}
        if render:
            state = _bluegreen_sql(loader, connection, m, backwards, state, item, done)
        migrations.append(item)
    tables = []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL")
            tables = [row[0] for row in cursor.fetchall()]
    return {"current": current, "leaves": leaves, "plans": plans, "migrations": migrations,
            "applied": sorted("%s.%s" % node for node in applied),
            "vendor": connection.vendor, "tables": tables, "empty": empty, "rendered": render}
def _bluegreen_operation(o):
    answer = {"type": type(o).__name__, "describe": o.describe(),
              "reversible": bool(o.reversible), "sql": bool(o.reduces_to_sql)}
    field = getattr(o, "field", None)
    if field is not None and hasattr(field, "null"):
        answer["null"] = bool(field.null)
        from django.db.models.fields import NOT_PROVIDED
        answer["db_default"] = getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED
        answer["many_to_many"] = bool(getattr(field, "many_to_many", False))
    return answer
def _bluegreen_sql(loader, connection, m, backwards, state, item, done):
    # What sqlmigrate prints, for the whole plan in this one process: the project state
    # is carried from one forward migration to the next instead of rebuilt for each.
    if state is None or backwards:
        state = loader.project_state((m.app_label, m.name), at_end=False)
    try:
        with connection.schema_editor(collect_sql=True, atomic=m.atomic) as editor:
            if backwards:
                m.unapply(state, editor, collect_sql=True)
            else:
                m.apply(state, editor, collect_sql=True)
        item["sql"] = "\n".join(editor.collected_sql)
    except Exception as exc:
        item["sql"] = None
        item["sql_error"] = "%s: %s" % (type(exc).__name__, exc)
        # apply() may have stopped halfway through the state: rebuild it as the end of
        # every migration planned so far, so the next one starts where this one ends.
        done.append((m.app_label, m.name))
        return None if backwards else loader.graph.make_state(
            nodes=list(done), at_end=True, real_apps=loader.unmigrated_apps)
    done.append((m.app_label, m.name))
    return None if backwards else state
try:
    _bluegreen_result = _bluegreen_main()
except Exception as exc:
    _bluegreen_result = {"error": "%s: %s" % (type(exc).__name__, exc)}
print(__MARKER__ + json.dumps(_bluegreen_result))
"""


def django_helper_script(targets: Sequence[tuple[str, str]] | None, sql: bool = False) -> str:
    """The helper for `manage.py shell -c`, planning `targets` (None: every app's leaves),
    and with `sql` rendering each planned migration's SQL the way sqlmigrate does."""
    request = json.dumps(
        {"targets": [list(t) for t in targets] if targets is not None else None, "sql": sql}
    )
    return (
        _DJANGO_HELPER.replace("__REQUEST__", repr(request))
        .replace("__MARKER__", repr(DJANGO_JSON_MARKER))
        .strip()
    )


def parse_django_helper(stdout: str) -> dict[str, Any]:
    """The helper's JSON; MigrationError when it is missing or reports an error."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(DJANGO_JSON_MARKER):
            result = json.loads(line[len(DJANGO_JSON_MARKER) :])
            if "error" in result:
                raise MigrationError(f"Django could not plan the migrations: {result['error']}")
            return result
    raise MigrationError(
        "Django printed no migration plan; check that command runs manage.py of the release "
        f"(output: {excerpt(stdout, 300) or 'none'})"
    )


_DJANGO_TARGET_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_]+))?")


def parse_django_targets(spec: str) -> list[tuple[str, str]]:
    """Targets from ``app.migration[,app.migration…]``: ``app.zero`` unapplies the app,
    a bare ``app`` means its latest migration. Names may be unique prefixes."""
    targets = []
    for part in spec.split(","):
        part = part.strip()
        match = _DJANGO_TARGET_RE.fullmatch(part)
        if not match:
            raise MigrationError(
                f"target {part!r} is not a Django migration: use app_label.migration_name "
                "(e.g. inventory.0002_product_note), app_label.zero, or several separated "
                "by commas, as returned in current"
            )
        targets.append((match.group(1), match.group(2) or ""))
    return targets


def django_state(names_by_app: Mapping[str, Sequence[str]]) -> str:
    """``app.migration`` for each app's latest applied migration (``app.zero`` for none),
    joined by commas: the string current returns and target accepts."""
    parts = []
    for app in sorted(names_by_app):
        names = names_by_app[app] or ["zero"]
        parts.extend(f"{app}.{name}" for name in names)
    return ",".join(parts)


def django_irreversible(operations: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a Django migration cannot be unapplied, naming the operations; None if it can."""
    blocked = [op for op in operations if not op.get("reversible", True)]
    if not blocked:
        return None
    names = []
    for op in blocked:
        why = {
            "RunPython": "has no reverse_code",
            "RunSQL": "has no reverse_sql",
        }.get(op["type"], "is not reversible")
        names.append(f"{op['type']} ({op['describe']}) {why}")
    return "; ".join(names)


def relative_path(path: str | None, chdir: str) -> str | None:
    """`path` relative to the release directory when it is inside it."""
    if not path:
        return None
    prefix = chdir.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path
