"""SQLAlchemy engines and sessions for a database URL; used by every other store module."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def driver_url(url: str) -> str:
    """Use psycopg 3 whatever driver the URL names (``postgresql://`` means psycopg2 to SQLAlchemy)."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def get_engine(url: str) -> sa.Engine:
    """One pooled engine per URL for the life of the process."""
    key = driver_url(url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = sa.create_engine(
                key,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=10,
                # Every timestamp CloudSweep reads or truncates is UTC, whatever the server's default.
                connect_args={"options": "-c timezone=UTC"},
            )
            _engines[key] = engine
        return engine


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
