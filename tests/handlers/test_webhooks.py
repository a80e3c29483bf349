"""How the API server is told to reach the webhook: a Service reference."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloudsweep.handlers import certificates, webhooks
from tests.net import free_port


def test_service_reference_takes_the_pods_namespace_and_port_443(tmp_path: Path) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("tools\n")
    assert webhooks.service_reference("cloudsweep-webhook", namespace_file) == {
        "namespace": "tools",
        "name": "cloudsweep-webhook",
        "port": 443,
    }
    assert webhooks.service_reference("ops/hook:8443", namespace_file) == {
        "namespace": "ops",
        "name": "hook",
        "port": 8443,
    }


def test_service_reference_outside_a_pod_needs_a_namespace(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="write it as namespace/cloudsweep-webhook"):
        webhooks.service_reference("cloudsweep-webhook", tmp_path / "missing")


async def _answer(review: Any, **_: Any) -> dict[str, Any]:
    return {"answered": review["request"]["uid"]}


def _announced(server: webhooks.ServiceWebhookServer, port: int | None = None) -> dict[str, Any]:
    """What the server tells the webhook configurations once it listens, after it answered one
    review on ``port`` (plain HTTP) through the handler it serves (then it stops)."""

    def post(path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=b'{"request": {"uid": "u-1"}}', method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    async def first() -> dict[str, Any]:
        configs = server(_answer)
        try:
            config = dict(await anext(configs))
            if port is not None:
                assert await asyncio.to_thread(post, config["service"]["path"] + "/hook") == {
                    "answered": "u-1"
                }
            return config
        finally:
            await configs.aclose()

    return asyncio.run(first())


def test_the_api_server_is_told_the_service_its_path_and_the_ca(tmp_path: Path) -> None:
    """Announced as a Service reference (never a URL whose host the API server would have to
    resolve), with the server's path, and with the CA bundle when it serves TLS."""
    certfile, keyfile = certificates.self_signed(["127.0.0.1"], tmp_path)
    service = {"namespace": "ops", "name": "hook", "port": 8443}
    tls = webhooks.ServiceWebhookServer(
        service=service,
        addr="127.0.0.1",
        certfile=certfile,
        pkeyfile=keyfile,
        cafile=certfile,
        path="/hooks",
    )
    assert _announced(tls) == {
        "service": {**service, "path": "/hooks"},
        "caBundle": base64.b64encode(certfile.read_bytes()).decode("ascii"),
    }
    port = free_port()
    plain = webhooks.ServiceWebhookServer(
        service=service, addr="127.0.0.1", port=port, insecure=True
    )
    assert _announced(plain, port) == {"service": {**service, "path": ""}}
