"""``CLOUDSWEEP_WEBHOOK_CLIENT_CA``: the webhook's TLS handshake requires a client certificate
signed by that CA, so only the API server (given one through an AdmissionConfiguration) can call
it; a caller inside the cluster without it gets no answer at all (docs/approvals.md)."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest

from cloudsweep.handlers import certificates, config
from cloudsweep.settings import Settings
from tests.net import free_port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, Path, tuple[Path, Path], tuple[Path, Path]]]:
    for name in ("server", "api", "stranger"):
        (tmp_path / name).mkdir()
    server_cert, server_key = certificates.self_signed(["127.0.0.1"], tmp_path / "server")
    api_server = certificates.self_signed(["kube-apiserver"], tmp_path / "api")
    stranger = certificates.self_signed(["mallory"], tmp_path / "stranger")
    port = free_port()
    settings = Settings(
        webhook_addr="127.0.0.1", webhook_port=port, webhook_client_ca=api_server[0]
    )
    options = config.webhook_server_options(settings, server_cert, server_key, server_cert)
    server = kopf.WebhookServer(**options)
    stop = threading.Event()
    ready = threading.Event()

    async def answer(data: Any, **_: Any) -> Any:
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "x", "allowed": True},
        }

    def run() -> None:
        async def main() -> None:
            async for _ in server(answer):
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)
                return

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield port, server_cert, api_server, stranger
    stop.set()
    thread.join(10)


def call(port: int, ca: Path, client: tuple[Path, Path] | None) -> Any:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/record-approval",
        data=json.dumps({"request": {"uid": "x"}}).encode(),
        method="POST",
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return json.loads(response.read())


def test_only_a_client_with_the_api_servers_certificate_is_answered(served: Any) -> None:
    port, server_cert, api_server, stranger = served
    assert call(port, server_cert, api_server)["response"]["allowed"] is True
    for client in (None, stranger):
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            call(port, server_cert, client)
