"""Create and drop databases on a server; used by the embedded start-up and the test fixtures."""

from __future__ import annotations

import sqlalchemy as sa

from cloudsweep.store.engine import dispose_all as dispose_all
from cloudsweep.store.engine import driver_url as driver_url


def database_url(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the server that ``server_url`` points at."""
    return (
        sa.make_url(driver_url(server_url)).set(database=name).render_as_string(hide_password=False)
    )


def _autocommit(server_url: str) -> sa.Engine:
    # CREATE/DROP DATABASE cannot run in a transaction; a short-lived engine keeps no idle pool.
    return sa.create_engine(
        driver_url(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )


def _quoted(engine: sa.Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def database_exists(server_url: str, name: str) -> bool:
    engine = _autocommit(server_url)
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
    return found is not None


def create_database(server_url: str, name: str, *, template: str | None = None) -> None:
    engine = _autocommit(server_url)
    statement = f"CREATE DATABASE {_quoted(engine, name)}"
    if template:
        statement += f" TEMPLATE {_quoted(engine, template)}"
    with engine.connect() as conn:
        conn.execute(sa.text(statement))


def drop_database(server_url: str, name: str) -> None:
    engine = _autocommit(server_url)
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quoted(engine, name)} WITH (FORCE)"))


def recreate_database(server_url: str, name: str) -> None:
    drop_database(server_url, name)
    create_database(server_url, name)
