"""The kind and place of the database a release migrates, from its URL."""

from __future__ import annotations

import pytest
from ansible.module_utils.database_url import parse_database_url


class TestDatabaseUrl:
    @pytest.mark.parametrize(
        ("url", "path"),
        [
            ("sqlite:////var/lib/app/app.db", "/var/lib/app/app.db"),
            ("sqlite:///app.db", "/srv/app/releases/1/app.db"),
            ("sqlite+pysqlite:////data/x.db", "/data/x.db"),
            ("sqlite://", None),
            ("sqlite:///:memory:", None),
        ],
    )
    def test_sqlite_paths(self, url: str, path: str | None) -> None:
        database = parse_database_url(url, "/srv/app/releases/1")

        assert (database.kind, database.sqlite_path) == ("sqlite", path)

    def test_postgresql_url_becomes_libpq_keywords(self) -> None:
        database = parse_database_url(
            "postgresql+psycopg://app:p%40ss@db1:5433/sample?sslmode=require&pool_size=5",
            "/srv",
        )

        assert database.kind == "postgresql"
        assert dict(database.pg_params) == {
            "host": "db1",
            "port": "5433",
            "user": "app",
            "password": "p@ss",
            "dbname": "sample",
            "sslmode": "require",
        }

    def test_unix_socket_host_in_query(self) -> None:
        database = parse_database_url("postgres:///app?host=/var/run/postgresql", "/srv")

        assert dict(database.pg_params) == {"dbname": "app", "host": "/var/run/postgresql"}

    def test_other_databases(self) -> None:
        assert parse_database_url("mysql://u@h/db", "/srv").kind == "other"
