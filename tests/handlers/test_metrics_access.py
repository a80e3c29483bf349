"""``/metrics`` answers only authorized scrapers: TokenReview + SubjectAccessReview, over TLS.

The emulated API server answers TokenReviews and SubjectAccessReviews from tables (KMock
evaluates no authentication or RBAC), as a cluster with the ClusterRole
``cloudsweep-metrics-reader`` bound to Prometheus's service account would.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest

from cloudsweep import metrics
from cloudsweep.handlers import access, certificates, metrics_access
from cloudsweep.settings import get_settings

from .conftest import SUBJECT_ACCESS_REVIEWS, Cluster

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
PROMETHEUS = "system:serviceaccount:monitoring:prometheus-k8s"
TOKENS = {
    "prometheus-token": {"username": PROMETHEUS, "groups": ["system:serviceaccounts"]},
    "tenant-token": {"username": "system:serviceaccount:team-a:default", "groups": []},
}


@pytest.fixture
def reviews(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The cluster authenticates ``TOKENS`` and lets only Prometheus get /metrics."""
    monkeypatch.setenv("CLOUDSWEEP_KUBE_API_URL", cluster.url)
    monkeypatch.setenv("CLOUDSWEEP_KUBE_TOKEN", "operator-token")
    get_settings.cache_clear()
    access._forget_client()
    received: list[dict[str, Any]] = []
    handle = cluster.emulator._handle

    async def answer(request: Any) -> Any:
        path = request.url.path.rstrip("/")
        if str(request.method.value).upper() != "POST" or path not in (
            TOKEN_REVIEWS,
            SUBJECT_ACCESS_REVIEWS,
        ):
            return await handle(request)
        review = request.data if isinstance(request.data, dict) else {}
        received.append(review)
        spec = review.get("spec") or {}
        if path == TOKEN_REVIEWS:
            user = TOKENS.get(str(spec.get("token")))
            status = {"authenticated": True, "user": user} if user else {"authenticated": False}
        else:
            attributes = spec.get("nonResourceAttributes") or {}
            allowed = (spec.get("user"), attributes.get("verb"), attributes.get("path")) == (
                PROMETHEUS,
                "get",
                "/metrics",
            )
            status = {"allowed": allowed}
        return aiohttp.web.json_response({**review, "status": status}, status=201)

    cluster.emulator._handle = answer  # type: ignore[method-assign]
    yield received
    get_settings.cache_clear()
    access._forget_client()


@pytest.fixture
def server(
    reviews: list[dict[str, Any]], database_url: str, tmp_path: Path
) -> Iterator[tuple[metrics.MetricsServer, Path]]:
    certfile, keyfile = certificates.self_signed(["127.0.0.1"], tmp_path)
    running = metrics.serve(
        0,
        database_url,
        addr="127.0.0.1",
        authorize=metrics_access.MetricsAccess(),
        certfile=str(certfile),
        keyfile=str(keyfile),
    )
    yield running, certfile
    running.stop()


def scrape(
    server: tuple[metrics.MetricsServer, Path], token: str | None, path: str = "/metrics"
) -> tuple[int, str, dict[str, str]]:
    running, certfile = server
    request = urllib.request.Request(f"https://127.0.0.1:{running.port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(certfile))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_metrics_need_an_authenticated_and_authorized_token(
    server: tuple[metrics.MetricsServer, Path], reviews: list[dict[str, Any]]
) -> None:
    status, body, headers = scrape(server, None)
    assert status == 401 and "bearer token" in body
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert reviews == []  # no token, no question to the API server

    status, body, _ = scrape(server, "stolen-or-made-up")
    assert status == 401 and "does not accept this token" in body
    assert "cloudsweep_" not in body

    status, body, _ = scrape(server, "tenant-token")
    assert status == 403
    assert "system:serviceaccount:team-a:default may not get /metrics" in body
    assert "cloudsweep_" not in body

    status, body, _ = scrape(server, "prometheus-token")
    assert status == 200, body
    assert "cloudsweep_aws_api_calls_total" in body or "# HELP cloudsweep_" in body

    # What was asked: the token itself (TokenReview), then the user's right to the path.
    token_reviews = [r for r in reviews if r["kind"] == "TokenReview"]
    access_reviews = [r for r in reviews if r["kind"] == "SubjectAccessReview"]
    assert [r["spec"]["token"] for r in token_reviews] == [
        "stolen-or-made-up",
        "tenant-token",
        "prometheus-token",
    ]
    assert access_reviews[-1]["spec"]["user"] == PROMETHEUS
    assert access_reviews[-1]["spec"]["nonResourceAttributes"] == {
        "path": "/metrics",
        "verb": "get",
    }

    # Scrapes every few seconds: the answer is kept for a minute, not asked for each scrape.
    asked = len(reviews)
    assert scrape(server, "prometheus-token")[0] == 200
    assert scrape(server, "tenant-token")[0] == 403
    assert len(reviews) == asked


def test_plain_http_gets_nothing(server: tuple[metrics.MetricsServer, Path]) -> None:
    running, _ = server
    request = urllib.request.Request(f"http://127.0.0.1:{running.port}/metrics")
    request.add_header("Authorization", "Bearer prometheus-token")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(request, timeout=5).read()


def test_an_unreachable_api_server_refuses_and_is_not_remembered(
    cluster: Cluster, server: tuple[metrics.MetricsServer, Path], reviews: list[dict[str, Any]]
) -> None:
    cluster.down()
    try:
        status, body, _ = scrape(server, "prometheus-token")
    finally:
        cluster.up()
    assert status == 503 and "could not check the token" in body
    assert "prometheus-token" not in body
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and scrape(server, "prometheus-token")[0] != 200:
        time.sleep(0.2)
    assert scrape(server, "prometheus-token")[0] == 200
