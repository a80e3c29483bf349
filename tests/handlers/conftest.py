"""The operator under test: kopf against KMock's Kubernetes emulator over HTTP, AWS on a moto
server, a real PostgreSQL. Nothing of CloudSweep is patched.

KMock 0.8 parses ``/api/v1/namespaces`` as the namespace path marker and answers 500; a real API
server serves the namespaces there. ``_kmock_namespaces`` corrects the emulator's path parser for
exactly that (the cluster-scoped namespaces collection and one namespace by name).

API server failures are injected with ``Cluster.inject`` (errors, hung requests, silent watches),
checked before the emulator applies a request, so a rejected write is really not written;
``Cluster.down``/``up`` close and reopen its port (the emulator keeps its objects).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import pytest

from tests import waiting
from tests.net import free_port

# Read when cloudsweep.handlers is imported (kopf timers take their intervals then).
os.environ.setdefault("CLOUDSWEEP_STATUS_REFRESH_SECONDS", "1")

import kmock
from kmock._internal import parsing as kmock_parsing

from cloudsweep import aws
from cloudsweep.demo import world as demo_world
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


@dataclass
class Fault:
    """An API server misbehaviour for the requests that match ``method``, ``path`` (a regular
    expression searched in the URL path), ``watch`` (watch requests only, or none) and ``body``
    (a substring of the request body).

    It answers ``status`` with a Kubernetes Status, or with ``stall`` keeps the request open and
    never answers (with ``stall_headers``: a watch that sends its headers, then nothing). With
    ``applied`` the request takes effect first and only the answer is lost (a proxy's 504 after
    the write). ``times``: how many requests it catches (None: until cleared); ``hits`` counts.
    """

    method: str | None = None
    path: str | None = None
    watch: bool | None = None
    body: str | None = None
    status: int = 503
    reason: str = "ServiceUnavailable"
    stall: bool = False
    stall_headers: bool = False
    applied: bool = False
    stream_error: int | None = None  # a watch answered 200 with one ERROR event of this code
    times: int | None = 1
    hits: int = 0

    def matches(self, request: Any) -> bool:
        if self.method is not None and str(request.method.value).upper() != self.method.upper():
            return False
        if self.path is not None and not re.search(self.path, request.url.path):
            return False
        if self.watch is not None and (request.params.get("watch") == "true") != self.watch:
            return False
        return self.body is None or self.body in (request.text or "")


class _Emulator(kmock.KubernetesEmulator):
    """KMock's emulator plus ``metadata.generateName``, which a real API server honours (kopf
    names its Events that way; without it every Event after the first is a 409 conflict), and
    injected faults (``Fault``)."""

    faults: list[Fault]
    faults_lock: threading.Lock
    stopping: threading.Event

    def _take_fault(self, request: Any) -> Fault | None:
        with self.faults_lock:
            for fault in self.faults:
                if fault.matches(request):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        self.faults.remove(fault)
                    return fault
        return None

    async def _misbehave(self, fault: Fault, request: Any) -> Any:
        if fault.stream_error is not None:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": fault.stream_error,
                "reason": fault.reason,
                "message": f"injected {fault.stream_error} in the stream",
            }
            event = json.dumps({"type": "ERROR", "object": status}) + "\n"
            return aiohttp.web.Response(status=200, text=event, content_type="application/json")
        if not fault.stall:
            raise kmock.KubernetesError(
                status=fault.status,
                reason=fault.reason,
                message=f"injected {fault.status}",
                details={"kind": "injected"},  # not KMock's default: a traceback
            )
        response = None
        if fault.stall_headers:
            response = aiohttp.web.StreamResponse(
                status=200, headers={"Content-Type": "application/json"}
            )
            await response.prepare(request._raw_request)
        # Until the client gives up (aiohttp then cancels this handler) or the cluster stops.
        while not self.stopping.is_set():
            await asyncio.sleep(0.05)
        return response if response is not None else aiohttp.web.Response(status=503)

    async def _handle(self, request: Any) -> Any:
        fault = self._take_fault(request)
        if fault is not None and not fault.applied:
            return await self._misbehave(fault, request)
        data = request.data
        if request.action == kmock.action.CREATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:8]}"
        response = await super()._handle(request)
        if fault is not None:
            return await self._misbehave(fault, request)
        return response


class Cluster:
    """The emulated API server, reached over HTTP like a real one."""

    def __init__(self, emulator: _Emulator, loop: asyncio.AbstractEventLoop) -> None:
        self.emulator = emulator
        self.loop = loop
        self.port: int | None = None  # any free port at first, then always that one
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- failures ----------------------------------------------------------------------------

    def inject(self, **fault: Any) -> Fault:
        """Misbehave for matching requests from now on (see ``Fault``); returns it to count hits."""
        injected = Fault(**fault)
        with self.emulator.faults_lock:
            self.emulator.faults.append(injected)
        return injected

    def clear_faults(self) -> None:
        with self.emulator.faults_lock:
            self.emulator.faults.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[Any]:
        """The requests the API server received (KMock records every one), optionally filtered."""
        return [r for r in list(self.emulator) if Fault(method=method, path=path).matches(r)]

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def up(self) -> None:
        """Listen on the cluster's port (again): the same emulator, so every object is kept."""

        async def start() -> Any:
            server = kmock.Server(self.emulator, port=self.port)
            await server.__aenter__()
            return server

        assert self.server is None
        self.server = self._run(start())
        self.port = self.server.port

    def down(self) -> None:
        """Close the port, and every open connection: clients get "connection refused"."""

        async def stop(server: Any) -> None:
            for connection in server.server.runner.server.connections:
                connection.force_close()  # open watches too: aiohttp would wait a minute
            await server.__aexit__(None, None, None)

        server, self.server = self.server, None
        if server is not None:
            self._run(stop(server))

    # --- objects -----------------------------------------------------------------------------

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
    return waiting.wait_for(check, timeout, what)


def alive(operator: Any) -> bool:
    """The operator's liveness endpoint answers (as the kubelet's probe sees it): kopf stops
    serving it when the operator stops, for whatever reason."""
    try:
        with urllib.request.urlopen(operator.healthz, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


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
            async with _Emulator() as emulator:
                emulator.faults = []
                emulator.faults_lock = threading.Lock()
                emulator.stopping = state["stop"]
                emulator.resources.load_bundled()
                for plural, kind in (
                    ("awsaccounts", "AwsAccount"),
                    ("scanschedules", "ScanSchedule"),
                    ("cleanuppolicies", "CleanupPolicy"),
                    ("cleanupapprovals", "CleanupApproval"),
                ):
                    emulator.resources[f"{GROUP_VERSION}/{plural}"] = kmock.ResourceInfo(
                        kind=kind,
                        namespaced=True,
                        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                        subresources={"status"},
                        categories={"cloudsweep"},
                    )
                state["cluster"] = Cluster(emulator, asyncio.get_running_loop())
                state["ready"].set()
                try:
                    while not state["stop"].is_set():
                        await asyncio.sleep(0.05)
                finally:
                    server = state["cluster"].server
                    if server is not None:
                        with contextlib.suppress(Exception):
                            await server.__aexit__(None, None, None)

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert state["ready"].wait(10)
    cluster: Cluster = state["cluster"]
    cluster.up()
    yield cluster
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


@pytest.fixture
def webhook_port() -> int:
    return free_port()


@pytest.fixture
def operator_env() -> dict[str, str]:
    """More environment for the operator's start-up (kopf settings); parametrize to change."""
    return {}


@pytest.fixture
def operator(
    cluster: Cluster,
    webhook_port: int,
    database_url: str,
    operator_settings: Settings,
    operator_env: dict[str, str],
    recorder: aws.CallRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The operator running in a thread; yields its runtime."""
    import kopf

    from cloudsweep import handlers
    from cloudsweep.handlers import runtime

    for name, value in operator_env.items():
        monkeypatch.setenv(name, value)
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

    healthz = f"http://127.0.0.1:{free_port()}/healthz"

    def run() -> None:
        asyncio.run(
            kopf.operator(
                clusterwide=True,
                standalone=True,
                stop_flag=stop,
                ready_flag=ready,
                liveness_endpoint=healthz,
            )
        )

    thread = threading.Thread(target=run, daemon=True, name="operator")
    thread.start()
    assert ready.wait(20), "the operator did not start"
    rt.healthz = healthz  # type: ignore[attr-defined]  # see alive()
    try:
        yield rt
    finally:
        stop.set()
        thread.join(20)
        rt.shutdown()
        runtime.configure(None)
        get_settings.cache_clear()
        del handlers


# --- SubjectAccessReviews --------------------------------------------------------------------

SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


@dataclass
class AccessReviews:
    """The emulated API server's answers to SubjectAccessReviews (KMock evaluates no RBAC).

    ``grants`` holds (subject, verb, namespace): a subject is a user name or ``group:NAME``, and a
    review is allowed when its user or one of its groups has the verb in the namespace (on
    cleanuppolicies.cloudsweep.io; other resources are never allowed). ``failure``: answer that
    HTTP status instead; ``stall``: never answer (until the client gives up or the cluster
    stops). ``received``: every review's body, in order.
    """

    grants: set[tuple[str, str, str]]
    failure: int | None = None
    stall: bool = False
    received: list[dict[str, Any]] | None = None

    def allow(self, subject: str, verb: str, namespace: str) -> None:
        self.grants.add((subject, verb, namespace))

    def decide(self, review: dict[str, Any]) -> bool:
        spec = review.get("spec") or {}
        attributes = spec.get("resourceAttributes") or {}
        if (attributes.get("group"), attributes.get("resource")) != (
            "cloudsweep.io",
            "cleanuppolicies",
        ):
            return False
        subjects = {spec.get("user")} | {f"group:{g}" for g in spec.get("groups") or []}
        return any(
            (subject, attributes.get("verb"), attributes.get("namespace")) in self.grants
            for subject in subjects
        )


@pytest.fixture
def access_reviews(cluster: Cluster) -> AccessReviews:
    """Make the cluster answer SubjectAccessReviews from a table (see ``AccessReviews``).

    KMock's emulator would store each review as an object (and refuse the second one, which has
    no name either, as a conflict), so they are answered before it sees them; KMock still
    records the request (``cluster.requests``).
    """
    reviews = AccessReviews(grants=set(), received=[])
    emulator = cluster.emulator
    handle = emulator._handle

    async def answer(request: Any) -> Any:
        if (
            str(request.method.value).upper() != "POST"
            or request.url.path.rstrip("/") != SUBJECT_ACCESS_REVIEWS
        ):
            return await handle(request)
        review = request.data if isinstance(request.data, dict) else {}
        assert reviews.received is not None
        reviews.received.append(review)
        if reviews.stall:
            deadline = time.monotonic() + 30
            while not emulator.stopping.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return aiohttp.web.Response(status=503)
        if reviews.failure is not None:
            status = {
                "apiVersion": "v1",
                "kind": "Status",
                "status": "Failure",
                "message": "injected failure",
                "code": reviews.failure,
            }
            return aiohttp.web.json_response(status, status=reviews.failure)
        allowed = reviews.decide(review)
        return aiohttp.web.json_response(
            {
                **review,
                "status": {"allowed": allowed, **({} if allowed else {"reason": "no RBAC rule"})},
            },
            status=201,
        )

    emulator._handle = answer  # type: ignore[method-assign]  # this cluster's emulator only
    return reviews
