"""The operator under test: kopf against KMock's Kubernetes emulator over HTTP, AWS on a moto
server, a real PostgreSQL. Nothing of CloudSweep is patched.

KMock 0.8 parses ``/api/v1/namespaces`` as the namespace path marker and answers 500; a real API
server serves the namespaces there. ``_kmock_namespaces`` corrects the emulator's path parser for
exactly that (the cluster-scoped namespaces collection and one namespace by name).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Read when cloudsweep.handlers is imported (kopf timers take their intervals then).
os.environ.setdefault("CLOUDSWEEP_STATUS_REFRESH_SECONDS", "1")

import kmock
from kmock._internal import parsing as kmock_parsing

from cloudsweep import aws
from cloudsweep.aws import demo_world
from cloudsweep.settings import Settings, get_settings
from cloudsweep.store import Store

GROUP_VERSION = "cloudsweep.io/v1alpha1"
SIGNING_KEY = "test-signing-key"
_original_parse_path = kmock_parsing.parse_path


def _parse_path(path: str) -> Any:
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"] and len(parts) in (3, 4) and parts[2] == "namespaces":
        return kmock_parsing.ParsedPath(
            "", "v1", "namespaces", None, parts[3] if len(parts) == 4 else None, None
        )
    return _original_parse_path(path)


class _Emulator(kmock.KubernetesEmulator):
    """KMock's emulator plus ``metadata.generateName``, which a real API server honours (kopf
    names its Events that way; without it every Event after the first is a 409 conflict)."""

    async def _handle(self, request: Any) -> Any:
        data = request.data
        if request.action == kmock.action.CREATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
        return await super()._handle(request)


class Cluster:
    """The emulated API server, reached over HTTP like a real one."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    @staticmethod
    def _path(plural: str, namespace: str, name: str | None = None) -> str:
        base = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{plural}"
        return f"{base}/{name}" if name else base

    def create_namespace(self, name: str, uid: str) -> None:
        self.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "uid": uid}},
        )

    def create(
        self, plural: str, kind: str, namespace: str, name: str, spec: dict[str, Any], **meta: Any
    ) -> Any:
        body = {
            "apiVersion": GROUP_VERSION,
            "kind": kind,
            # A real API server assigns these; KMock does not, and kopf's patches test resourceVersion.
            "metadata": {
                "name": name,
                "namespace": namespace,
                "generation": 1,
                "resourceVersion": "1",
                "uid": f"uid-{namespace}-{name}",
                "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **meta,
            },
            "spec": spec,
        }
        return self.request("POST", self._path(plural, namespace), body)

    def get(self, plural: str, namespace: str, name: str) -> Any:
        return self.request("GET", self._path(plural, namespace, name))

    def patch(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        return self.request(
            "PATCH", self._path(plural, namespace, name), patch, "application/merge-patch+json"
        )

    def delete(self, plural: str, namespace: str, name: str) -> Any:
        return self.request("DELETE", self._path(plural, namespace, name))

    def events(self, namespace: str) -> list[dict[str, Any]]:
        listed = self.request("GET", f"/api/v1/namespaces/{namespace}/events") or {}
        return [e for e in listed.get("items") or [] if isinstance(e, dict)]


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (KeyError, TypeError, IndexError):
            last = None
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def condition(obj: Any, kind: str) -> dict[str, Any] | None:
    for c in (obj or {}).get("status", {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    monkeypatch.setattr(kmock_parsing, "parse_path", _parse_path)
    state: dict[str, Any] = {"ready": threading.Event(), "stop": threading.Event()}

    def serve() -> None:
        async def main() -> None:
            async with _Emulator() as emulator, kmock.Server(emulator) as server:
                emulator.resources.load_bundled()
                for plural, kind in (
                    ("awsaccounts", "AwsAccount"),
                    ("scanschedules", "ScanSchedule"),
                    ("cleanuppolicies", "CleanupPolicy"),
                ):
                    emulator.resources[f"{GROUP_VERSION}/{plural}"] = kmock.ResourceInfo(
                        kind=kind,
                        namespaced=True,
                        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                        subresources={"status"},
                        categories={"cloudsweep"},
                    )
                state["url"] = str(server.url)
                state["ready"].set()
                while not state["stop"].is_set():
                    await asyncio.sleep(0.05)

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert state["ready"].wait(10)
    yield Cluster(state["url"])
    state["stop"].set()
    thread.join(10)


@pytest.fixture
def world(moto_endpoint: str) -> demo_world.DemoWorld:
    return demo_world.seed_demo_world(moto_endpoint, regions=("us-east-1",))


@pytest.fixture
def recorder() -> aws.CallRecorder:
    return aws.CallRecorder()


@pytest.fixture
def operator_settings(moto_endpoint: str) -> Settings:
    return Settings(
        aws_endpoint_url=moto_endpoint,
        aws_max_attempts=2,
        schedule_jitter_seconds=0,
        cleanup_takeover_seconds=0,
        approval_signing_key=SIGNING_KEY,
        metrics_port=0,
        health_port=0,
        webhook_port=0,
        status_refresh_seconds=1,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def webhook_port() -> int:
    return _free_port()


@pytest.fixture
def operator(
    cluster: Cluster,
    webhook_port: int,
    database_url: str,
    operator_settings: Settings,
    recorder: aws.CallRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The operator running in a thread; yields its runtime."""
    import kopf

    from cloudsweep import handlers
    from cloudsweep.handlers import runtime

    monkeypatch.setenv("CLOUDSWEEP_KUBE_API_URL", cluster.url)
    monkeypatch.setenv("CLOUDSWEEP_WEBHOOK_PORT", str(webhook_port))
    monkeypatch.setenv("CLOUDSWEEP_WEBHOOK_ADDR", "127.0.0.1")
    monkeypatch.setenv("CLOUDSWEEP_WEBHOOK_INSECURE", "true")
    monkeypatch.setenv("CLOUDSWEEP_WEBHOOK_MANAGED", "false")
    get_settings.cache_clear()
    rt = runtime.Runtime(
        settings=operator_settings, store=Store(database_url), recorder_factory=lambda: recorder
    )
    runtime.configure(rt)
    stop = threading.Event()
    ready = threading.Event()

    def run() -> None:
        asyncio.run(
            kopf.operator(clusterwide=True, standalone=True, stop_flag=stop, ready_flag=ready)
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(20), "the operator did not start"
    try:
        yield rt
    finally:
        stop.set()
        thread.join(20)
        rt.shutdown()
        runtime.configure(None)
        get_settings.cache_clear()
        del handlers
