"""Who may scrape ``/metrics``: what controller-runtime's secure metrics and kube-rbac-proxy do.

The metrics show every tenant's account IDs and top resources, so the operator serves them only
to a caller whose bearer token the Kubernetes API server authenticates (a TokenReview) and whose
user may ``get`` the non-resource URL (a SubjectAccessReview on ``/metrics``; the ClusterRole
``cloudsweep-metrics-reader`` grants it, bound to Prometheus's service account). Called by the
metrics server (``cloudsweep.metrics``) for each request; set up by ``config.configure``.

Answers are kept for ``CACHE_SECONDS`` per token, as kube-rbac-proxy does, so a scrape every
few seconds costs the API server two reviews a minute, not two per scrape; a revoked binding
therefore takes effect within that time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from cloudsweep.handlers import access

CACHE_SECONDS = 60.0
CACHE_ENTRIES = 256
UNAUTHORIZED, FORBIDDEN, UNAVAILABLE, OK = 401, 403, 503, 200

Authorizer = Callable[[str | None, str], tuple[int, str]]


class MetricsAccess:
    """``(bearer token or None, path) -> (HTTP status, message)``; 200 lets the scrape through."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], tuple[float, int, str]] = {}

    def __call__(self, token: str | None, path: str) -> tuple[int, str]:
        if not token:
            return UNAUTHORIZED, "send a bearer token (a service account token of your scraper)"
        # Only the token's digest is kept: the cache never holds a credential.
        key = (hashlib.sha256(token.encode()).hexdigest(), path)
        now = self._clock()
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        status, message = self._decide(token, path)
        if status != UNAVAILABLE:  # an outage is not remembered: the next scrape asks again
            with self._lock:
                if len(self._answers) >= CACHE_ENTRIES:
                    self._answers.clear()
                self._answers[key] = (now + CACHE_SECONDS, status, message)
        return status, message

    @staticmethod
    def _decide(token: str, path: str) -> tuple[int, str]:
        try:
            user = access.authenticate(token)
            if user is None:
                return UNAUTHORIZED, "the Kubernetes API server does not accept this token"
            answer = access.review_path(user, verb="get", path=path)
        except access.AccessReviewError as error:
            return UNAVAILABLE, f"could not check the token with the Kubernetes API ({error})"
        if not answer.allowed:
            name = str(user.get("username") or "this user")
            return FORBIDDEN, (
                f"{name} may not get {path}: bind the ClusterRole cloudsweep-metrics-reader to it"
            )
        return OK, ""
