"""Alembic environment: takes the URL from CloudSweep (never from alembic.ini) and sees every model."""

from __future__ import annotations

import logging.config
from typing import Any

from alembic import context

from cloudsweep.store import models
from cloudsweep.store.engine import get_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave out what the models do not describe: monthly partitions (made at run time) and views."""
    if type_ == "table" and name is not None:
        if name.startswith(models.OBSERVATION_PARTITION_PREFIX):
            return False
        if name in models.MATERIALIZED_VIEWS:
            return False
    return True


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return str(url)
    # Run as `alembic upgrade head`: the same resolution as the cloudsweep command, which starts the
    # embedded PostgreSQL when CLOUDSWEEP_DATABASE_URL is unset. Keep it running while we migrate.
    from cloudsweep.store import database

    handle = database.resolve()
    config.attributes["_embedded"] = handle
    return handle.url


def run_migrations_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=models.Base.metadata,
        literal_binds=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with get_engine(_database_url()).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=models.Base.metadata,
            include_object=include_object,
            compare_type=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
