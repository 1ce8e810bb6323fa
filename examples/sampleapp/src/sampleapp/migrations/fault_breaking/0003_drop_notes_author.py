"""drop notes.author (breaking, 2.0.6+breaking)

The contract step of a feature that 2.0.6+breaking removed: its code no longer reads or
writes notes.author. Dropping the column during a release would break the old colour
(2.0.x still writes it) and lose what it holds, so bluegreen's migration_runner
classifies it breaking and the release refuses it unless allow_breaking_migrations is
true, naming the operation (drop column notes.author) and this file.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-15 00:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("notes", "author")


def downgrade() -> None:
    # The column comes back empty: what it held is gone with the upgrade.
    op.add_column("notes", sa.Column("author", sa.Text, nullable=True))
