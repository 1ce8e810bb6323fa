# Copyright: bluegreen contributors
# Apache License 2.0 (see LICENSE)
"""The database a release migrates, from its SQLAlchemy or dj-database-url URL.

parse_database_url() tells the kind of database (PostgreSQL, SQLite, other) and where it
is: the SQLite file, or the libpq keywords to connect to PostgreSQL with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from ansible.module_utils.migration_error import MigrationError
from ansible.module_utils.postgresql_access import LIBPQ_QUERY_KEYS

_PG_SCHEMES = ("postgres", "postgresql", "pgsql", "postgis")


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
            if key in LIBPQ_QUERY_KEYS:
                params[key] = value
        return Database(kind="postgresql", pg_params=params)
    return Database(kind="other")
