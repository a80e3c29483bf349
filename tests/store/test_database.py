"""Which database CloudSweep uses: the configured one, or a real embedded PostgreSQL it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudsweep.settings import Settings
from cloudsweep.store import Store, database, migrate


def test_configured_url_is_used_and_no_server_is_started(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, data_dir=tmp_path / "unused")
    handle = database.open_database(settings)
    assert handle.embedded is None
    assert handle.url == database_url
    assert not (tmp_path / "unused").exists()


def test_configured_url_behind_on_migrations_is_refused(
    empty_database_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=empty_database_url, data_dir=tmp_path)
    with pytest.raises(database.SchemaOutOfDate, match="cloudsweep db upgrade"):
        database.open_database(settings)


def test_embedded_database_is_started_migrated_and_reused(data_home: Path) -> None:
    tmp_path = data_home
    settings = Settings(database_url=None, data_dir=tmp_path / "cloudsweep")
    handle = database.open_database(settings)
    try:
        assert handle.embedded is not None
        assert (tmp_path / "cloudsweep" / "pgdata" / "PG_VERSION").is_file()
        assert migrate.current_revision(handle.url) == migrate.head_revision()
        Store(handle.url).ensure_organization("laptop")
        # A second open (another command) reuses the server and the data.
        again = database.open_database(settings)
        assert Store(again.url).organization("laptop") is not None
    finally:
        handle.close()
