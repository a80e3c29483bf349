"""Fixtures that start real servers, shared by every test module.

- ``moto_endpoint``: a moto server over HTTP (``ThreadedMotoServer``), reset before each test,
  behind an enforcing STS (``tests/sts_gate.py``: roles require an ExternalId unless a test says
  otherwise; ``sts`` gives the test its trust policies and the server-side request log).
- ``database_url``: a fresh PostgreSQL database per test, cloned from a migrated template on one
  embedded server (pgserver) per session, or on ``CLOUDSWEEP_TEST_DATABASE_URL``'s server.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# moto reads these when its EC2 backend loads; without them every account gets hundreds of public
# AMIs and snapshots, which drown the worlds the tests build.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
# Never let a test reach real AWS with someone's credentials.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

from moto.server import ThreadedMotoServer  # noqa: E402

from tests import containers, sts_gate  # noqa: E402

# One line per request from moto's web server drowns every failure report.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


class _GatedMotoServer(ThreadedMotoServer):
    """moto's threaded server behind the enforcing STS of ``tests/sts_gate.py``."""

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = sts_gate.GATE.wrap(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[str]:
    server = _GatedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_endpoint(_moto_server: str) -> str:
    """The URL of a moto server whose state was reset for this test."""
    request = urllib.request.Request(f"{_moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    sts_gate.GATE.reset()
    return _moto_server


@pytest.fixture
def sts(moto_endpoint: str) -> sts_gate.StsGate:
    """The enforcing STS in front of moto (trust policies, and the log of every request)."""
    return sts_gate.GATE


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def data_home() -> Iterator[Path]:
    """A short directory outside pytest's temp root for an embedded PostgreSQL's files.

    As root, pgserver runs PostgreSQL as a separate user and opens the parent directories for it;
    pytest resets its own root to 0700 when another session starts, and its deep paths come close
    to the 107-byte limit of the server's unix socket path.
    """
    with tempfile.TemporaryDirectory(prefix="cs-") as directory:
        yield Path(directory)


_TEMPLATE = "cloudsweep_test_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A URL to the ``postgres`` database of a real server (embedded unless configured)."""
    configured = os.environ.get("CLOUDSWEEP_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from cloudsweep.store import embedded

    with tempfile.TemporaryDirectory(prefix="cloudsweep-pg-") as data_dir:
        server = embedded.start(Path(data_dir))
        try:
            yield server.url
        finally:
            server.stop()


# Serialises the template's check-and-create between pytest sessions sharing one server (the
# children of a mutation run); any constant that no other advisory lock of the tests uses.
_TEMPLATE_LOCK = 0x436C_5377_5465_6D70  # "ClSwTemp"


def _migrations_stamp() -> str:
    """The head revision and a digest of every migration's source: what the template was built from.

    The digest too, because a migration being written changes without a new revision.
    """
    import hashlib

    from cloudsweep.store import migrate

    where = migrate.migrations_dir()
    digest = hashlib.sha256()
    for path in sorted([where / "env.py", *(where / "versions").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"cloudsweep-template {migrate.head_revision()} {digest.hexdigest()}"


@pytest.fixture(scope="session")
def _template_database(pg_server_url: str) -> str:
    """The migrated template every test database is cloned from.

    On a server of its own (a normal run) it is always created. On a shared server (every child
    of ``tools/mutants.py``, a new pytest session per mutant) a template built from the same
    migrations is reused: migrating takes seconds, the tests a fraction of that. The stamp lives
    in the database's comment, read from ``postgres``: a connection to the template itself would
    make another session's ``CREATE DATABASE ... TEMPLATE`` fail. It is written only after the
    migrations succeeded, so a half-built template is never reused.
    """
    import sqlalchemy as sa

    from cloudsweep.store import admin, migrate

    stamp = _migrations_stamp()
    lock = sa.create_engine(
        admin.driver_url(pg_server_url), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    with lock.connect() as conn:
        # Held for the session's connection: two sessions starting at once build it once.
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _TEMPLATE_LOCK})
        try:
            built_from = conn.execute(
                sa.text(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                    " WHERE datname = :n"
                ),
                {"n": _TEMPLATE},
            ).scalar()
            if built_from != stamp:
                admin.recreate_database(pg_server_url, _TEMPLATE)
                migrate.upgrade(admin.database_url(pg_server_url, _TEMPLATE))
                admin.dispose_all()
                # COMMENT takes no bound parameters; the stamp is letters, digits and spaces.
                quoted = conn.dialect.identifier_preparer.quote(_TEMPLATE)
                conn.execute(sa.text(f"COMMENT ON DATABASE {quoted} IS '{stamp}'"))
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _TEMPLATE_LOCK})
    return _TEMPLATE


@pytest.fixture
def database_url(pg_server_url: str, _template_database: str) -> Iterator[str]:
    """A migrated, empty database of its own for this test."""
    from cloudsweep.store import admin

    name = f"cloudsweep_test_{os.getpid()}_{next(_counter)}"
    admin.create_database(pg_server_url, name, template=_template_database)
    try:
        yield admin.database_url(pg_server_url, name)
    finally:
        admin.dispose_all()
        admin.drop_database(pg_server_url, name)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """An empty database with no schema at all, for migration tests."""
    from cloudsweep.store import admin

    name = f"cloudsweep_empty_{os.getpid()}_{next(_counter)}"
    admin.create_database(pg_server_url, name)
    try:
        yield admin.database_url(pg_server_url, name)
    finally:
        admin.dispose_all()
        admin.drop_database(pg_server_url, name)


# --- The operator image -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def container_image() -> Iterator[containers.Image]:
    """The image built from this checkout, once per session; skips without a container engine."""
    engine = containers.find_engine()
    if engine is None:
        pytest.skip(containers.no_engine_reason())
    image = containers.build_image(engine)
    try:
        yield image
    finally:
        engine.run("rmi", "-f", image.tag, check=False, timeout=300)
