"""``sampleapp-migrate``: run Alembic against the migrations shipped in this package.

Without arguments it upgrades to head; any other arguments go to alembic unchanged
(``sampleapp-migrate current``, ``sampleapp-migrate downgrade 0001``, ``... upgrade head --sql``).
The database comes from DATABASE_URL, as for the service.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

from alembic.config import Config
from alembic.config import main as alembic_main


def alembic_ini() -> Path:
    """Path of the packaged alembic.ini (the wheel installs it unzipped)."""
    return Path(str(files("sampleapp").joinpath("alembic.ini")))


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic Config for the packaged migrations; database_url overrides DATABASE_URL."""
    config = Config(str(alembic_ini()))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    alembic_main(
        argv=["-c", str(alembic_ini()), *(args or ["upgrade", "head"])], prog="sampleapp-migrate"
    )
