"""Alembic environment for sampleapp: the database comes from DATABASE_URL.

A URL set programmatically on the Config (``sqlalchemy.url``, as the tests do) wins over
the environment, so a caller can migrate a database other than the service's.
"""

import os
from logging.config import fileConfig

from alembic import context
from sampleapp.db import make_engine, metadata

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit(
            "DATABASE_URL is not set; export the service's database URL before migrating, "
            "e.g. DATABASE_URL=sqlite:////var/lib/sampleapp/app.db sampleapp-migrate"
        )
    return url


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (``--sql``): the plan a reviewer can read."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(database_url(), application_name="sampleapp-migrate")
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite cannot ALTER most things in place; batch mode copies the table.
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
