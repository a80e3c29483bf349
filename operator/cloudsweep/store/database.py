"""Which database CloudSweep uses: the configured server, or the embedded one; called by front doors.

With ``CLOUDSWEEP_DATABASE_URL`` set, that server is used and no server is ever started; its schema
is migrated only by ``cloudsweep db upgrade`` (an operator's upgrade Job), never behind its
administrators' backs. Unset, an embedded PostgreSQL under ``$XDG_DATA_HOME/cloudsweep`` is started
or reused and migrated to the newest revision.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from cloudsweep.settings import Settings, get_settings
from cloudsweep.store import embedded, migrate


class SchemaOutOfDate(RuntimeError):
    pass


class DatabaseUnavailable(RuntimeError):
    """The configured server cannot be reached or refuses us; the message says which and why."""


@dataclass
class DatabaseHandle:
    url: str
    embedded: embedded.EmbeddedPostgres | None = None

    @property
    def description(self) -> str:
        if self.embedded is not None:
            return f"embedded PostgreSQL in {self.embedded.data_dir}"
        return "CLOUDSWEEP_DATABASE_URL"

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def resolve(settings: Settings | None = None) -> DatabaseHandle:
    """The database to use, starting the embedded server if none is configured (not migrated)."""
    settings = settings or get_settings()
    if settings.database_url:
        return DatabaseHandle(url=settings.database_url)
    server, url = embedded.start_with_database(settings.data_dir)
    return DatabaseHandle(url=url, embedded=server)


def open_database(settings: Settings | None = None) -> DatabaseHandle:
    """The database, ready to use: the embedded one migrated; a configured one checked."""
    handle = resolve(settings)
    if handle.embedded is not None:
        migrate.upgrade(handle.url)
        return handle
    try:
        current = migrate.current_revision(handle.url)
    except sa.exc.OperationalError as error:
        where = sa.make_url(handle.url).render_as_string(hide_password=True)
        reason = str(error.orig or error).strip().splitlines()[0]
        raise DatabaseUnavailable(f"cannot use the database {where}: {reason}") from None
    head = migrate.head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"the database at CLOUDSWEEP_DATABASE_URL is at schema revision {current or 'none'}, "
            f"this CloudSweep needs {head}; run `cloudsweep db upgrade` first"
        )
    return handle
