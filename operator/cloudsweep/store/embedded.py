"""The embedded PostgreSQL (from the pgserver wheel) used when no database URL is configured.

Called by ``store.database`` when ``CLOUDSWEEP_DATABASE_URL`` is unset, and by the test fixtures.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudsweep.store import admin

DATABASE_NAME = "cloudsweep"


@dataclass
class EmbeddedPostgres:
    """A running server; ``url`` points at its ``postgres`` maintenance database."""

    data_dir: Path
    url: str
    _server: Any

    def stop(self) -> None:
        self._server.cleanup()


def start(data_dir: Path) -> EmbeddedPostgres:
    """Start a server on ``data_dir``, or attach to the one already running there.

    pgserver counts the processes using a data directory and stops the server when the last one
    exits, so two ``cloudsweep`` commands at once share one server.
    """
    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir it does not need; without XDG_RUNTIME_DIR
        # (containers, CI) that warns on every start.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return EmbeddedPostgres(
        data_dir=data_dir, url=admin.driver_url(server.get_uri()), _server=server
    )


def start_with_database(data_dir: Path) -> tuple[EmbeddedPostgres, str]:
    """Start the server and make sure CloudSweep's own database exists; return it and its URL."""
    server = start(data_dir)
    if not admin.database_exists(server.url, DATABASE_NAME):
        admin.create_database(server.url, DATABASE_NAME)
    return server, admin.database_url(server.url, DATABASE_NAME)
