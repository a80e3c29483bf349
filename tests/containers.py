"""A container engine for the image tests: Docker or Podman, whichever answers, or none.

``CLOUDSWEEP_CONTAINER_ENGINE`` names one explicitly (``docker``, ``podman`` or a path).
``CLOUDSWEEP_PYTHON_IMAGE`` replaces the Dockerfile's base image, for machines that reach no
public registry but have a mirror or a locally built ``python:3.11-slim-bookworm`` equivalent.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import socketserver
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Engine:
    command: str

    @property
    def name(self) -> str:
        return Path(self.command).name

    def run(
        self, *args: str, timeout: float = 600, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=input,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name} {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result


@dataclass
class Image:
    engine: Engine
    tag: str
    containers: list[str] = field(default_factory=list)

    def hardened_run_args(self) -> list[str]:
        """``run`` options matching the Deployment's securityContext and its /tmp emptyDir."""
        return [
            "--read-only",
            "--tmpfs",
            "/tmp:rw,size=64m,mode=1777",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            "10001:10001",
        ]


def find_engine() -> Engine | None:
    """The first engine whose ``info`` succeeds (a client without a daemon does not count)."""
    configured = os.environ.get("CLOUDSWEEP_CONTAINER_ENGINE")
    for candidate in [configured] if configured else ["docker", "podman"]:
        command = shutil.which(candidate)
        if command is None:
            continue
        info = subprocess.run([command, "info"], capture_output=True, timeout=60, check=False)
        if info.returncode == 0:
            return Engine(command)
    return None


def no_engine_reason() -> str:
    configured = os.environ.get("CLOUDSWEEP_CONTAINER_ENGINE")
    if configured:
        return f"CLOUDSWEEP_CONTAINER_ENGINE={configured} does not answer `info`"
    return "no container engine on this machine (neither `docker info` nor `podman info` works)"


def build_image(engine: Engine) -> Image:
    tag = f"localhost/cloudsweep-test:{uuid.uuid4().hex[:12]}"
    args = ["build", "-t", tag]
    base = os.environ.get("CLOUDSWEEP_PYTHON_IMAGE")
    if base:
        args += ["--build-arg", f"PYTHON_IMAGE={base}"]
    engine.run(*args, str(REPO), timeout=1800)
    return Image(engine, tag)


class _Relay(socketserver.BaseRequestHandler):
    """One TCP client relayed to the unix socket the server was made for, both ways."""

    server: _UnixBridge

    def handle(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
            upstream.connect(self.server.socket_path)
            peers = {self.request: upstream, upstream: self.request}
            while True:
                readable, _, _ = select.select(list(peers), [], [], 1.0)
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    peers[source].sendall(data)


class _UnixBridge(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        super().__init__(("127.0.0.1", 0), _Relay)


@contextlib.contextmanager
def tcp_database_url(database_url: str) -> Iterator[str]:
    """The same database over TCP on 127.0.0.1, for a container on the host's network.

    The embedded server listens only on a unix socket inside its data directory, which is private
    to the server's own user; a container running as user 10001 cannot open it, so a relay in the
    test process carries the connection.
    """
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    hosts = [h for h in query.pop("host", []) if h.startswith("/")]
    if not hosts:
        yield database_url
        return
    port = query.pop("port", ["5432"])[0]
    bridge = _UnixBridge(f"{hosts[0]}/.s.PGSQL.{port}")
    thread = threading.Thread(target=bridge.serve_forever, daemon=True)
    thread.start()
    try:
        user = parts.username or "postgres"
        netloc = f"{user}@127.0.0.1:{bridge.server_address[1]}"
        yield urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, doseq=True)))
    finally:
        bridge.shutdown()
        bridge.server_close()
