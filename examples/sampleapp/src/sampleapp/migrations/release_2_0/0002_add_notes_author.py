"""add notes.author (expand)

Release 2.0.0 records who wrote a note. The column is nullable without a default, so
adding it is a catalogue change only (no table rewrite on PostgreSQL, a plain
ALTER TABLE ... ADD COLUMN on SQLite), and 1.0.0, which neither reads nor writes it,
keeps working on the new schema: the old colour stays healthy after the migration.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("notes", sa.Column("author", sa.Text, nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place; older ones need a batch (table copy).
    op.drop_column("notes", "author")
