"""Database access: the engine for ``DATABASE_URL`` and the ``notes`` table."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

# Both colours share one SQLite file in the single-host lab; a writer waits this long
# for the other colour's write lock instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 5000

metadata = sa.MetaData()

# Mirrors the migrations at the newest release line (0001 and 0002); the migrations own
# the schema. A version uses only the columns its release has (app.note_columns).
notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    ),
    sa.Column("colour", sa.Text),
    sa.Column("version", sa.Text),
    # 0002 (release 2.0): who wrote the note; nullable, so 1.x keeps working without it.
    sa.Column("author", sa.Text),
)


def _enable_sqlite_concurrency(dbapi_connection, _record) -> None:
    # WAL lets readers of one colour proceed while the other colour writes.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_engine(database_url: str, application_name: str = "sampleapp") -> Engine:
    """An engine tuned for the URL's backend: WAL SQLite or pooled PostgreSQL (psycopg 3)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _enable_sqlite_concurrency)
        return engine
    connect_args = {}
    if url.get_backend_name() == "postgresql":
        # application_name lets the DBA (and the saturation signal) tell colours apart.
        connect_args = {"connect_timeout": 5, "application_name": application_name}
    return sa.create_engine(
        url,
        pool_size=5,
        max_overflow=5,
        pool_timeout=5,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args,
    )
