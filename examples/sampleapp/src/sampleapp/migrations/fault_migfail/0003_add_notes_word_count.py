"""add notes.word_count and backfill it: fails halfway, on purpose (2.0.5+migfail)

The build 2.0.5+migfail carries this migration to prove what a failed migration leaves
behind. It does real work (adds a column), then its backfill names a column that does
not exist (``bodyy``), a typo of the kind that fails only against a real database.

- PostgreSQL: DDL is transactional and Alembic runs the whole upgrade in one
  transaction, so the failed UPDATE rolls back the new column (and any other migration
  of the same run) and alembic_version is unchanged: the schema is exactly as before.
- SQLite (pysqlite, Python's sqlite3 module): Alembic marks SQLite non-transactional for
  DDL and opens one transaction per migration, but the driver only sends BEGIN before
  INSERT/UPDATE/DELETE, so the ALTER TABLE runs in autocommit and stays. The UPDATE
  fails, the (empty) transaction rolls back, and alembic_version still says 0002 while
  notes has a word_count column: a half-applied migration that only a restore of the
  snapshot taken before the release undoes (rerunning it fails: duplicate column).

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("notes", sa.Column("word_count", sa.Integer, nullable=True))
    # The deliberate bug: "bodyy" is not a column of notes.
    op.execute("UPDATE notes SET word_count = length(bodyy) - length(replace(bodyy, ' ', '')) + 1")


def downgrade() -> None:
    op.drop_column("notes", "word_count")
