"""``sampleapp-migrate``: run Alembic against the migrations shipped in this package.

Without arguments it upgrades to head; any other arguments go to alembic unchanged
(``sampleapp-migrate current``, ``sampleapp-migrate downgrade 0001``, ``... upgrade head --sql``).
The database comes from DATABASE_URL, as for the service. The migrations are those of
the installed version (``releases.version_locations``), so 1.0.0 sees revision 0001 only
and 2.0.0 sees 0001 and 0002.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from importlib.metadata import version as distribution_version
from importlib.resources import files
from pathlib import Path

from alembic.config import CommandLine, Config

from sampleapp.releases import version_locations

PROG = "sampleapp-migrate"


def alembic_ini() -> Path:
    """Path of the packaged alembic.ini (the wheel installs it unzipped)."""
    return Path(str(files("sampleapp").joinpath("alembic.ini")))


def alembic_config(
    database_url: str | None = None,
    version: str | None = None,
    cmd_opts: Namespace | None = None,
) -> Config:
    """An Alembic Config for the migrations of ``version`` (default: the installed one).

    ``database_url`` overrides DATABASE_URL.
    """
    config = Config(str(alembic_ini()), cmd_opts=cmd_opts)
    migrations = alembic_ini().parent / "migrations"
    locations = version_locations(version or distribution_version("sampleapp"))
    config.set_main_option(
        "version_locations", os.pathsep.join(str(migrations / name) for name in locations)
    )
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    cli = CommandLine(prog=PROG)
    options = cli.parser.parse_args(args or ["upgrade", "head"])
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    cli.run_cmd(alembic_config(cmd_opts=options), options)
