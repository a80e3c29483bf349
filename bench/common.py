"""What benchmarks share: a database to measure on, the machine's description, peak memory."""

from __future__ import annotations

import os
import platform
import resource
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cloudsweep.store import admin, embedded, migrate


@contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated database of its own on the embedded server (or CLOUDSWEEP_BENCH_SERVER_URL's)."""
    configured = os.environ.get("CLOUDSWEEP_BENCH_SERVER_URL")
    with tempfile.TemporaryDirectory(prefix="cloudsweep-bench-") as data_dir:
        server = None if configured else embedded.start(Path(data_dir))
        server_url = configured or server.url  # type: ignore[union-attr]
        admin.recreate_database(server_url, "cloudsweep_bench")
        url = admin.database_url(server_url, "cloudsweep_bench")
        migrate.upgrade(url)
        try:
            yield url
        finally:
            admin.dispose_all()
            admin.drop_database(server_url, "cloudsweep_bench")
            if server is not None:
                server.stop()


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
