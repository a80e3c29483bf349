"""Ask the Kubernetes API server who a caller is (TokenReview) and whether they may do something
(SubjectAccessReview).

The admission webhook uses it for CloudSweep's custom RBAC verbs (``approve`` and ``configure``
on cleanuppolicies): RBAC grants them, but no API request checks them by itself. The metrics
server uses it (``metrics_access``) to serve ``/metrics`` only to authorized scrapers.

The review is made with the operator's own credentials, found the way ``config.login`` finds
them: ``CLOUDSWEEP_KUBE_API_URL`` with ``CLOUDSWEEP_KUBE_TOKEN`` (a `kubectl proxy`, a test
server), else in-cluster (the service account's token, re-read as the kubelet rotates it, and
its CA), else kubeconfig. The operator's ClusterRole allows ``create`` on
``subjectaccessreviews.authorization.k8s.io`` for it. Each review is bounded by
``CONNECT_TIMEOUT_SECONDS`` and ``READ_TIMEOUT_SECONDS`` (with one retry of a failed
connection), well inside the 30 seconds the API server waits for a webhook; whatever goes wrong
raises ``AccessReviewError``, and the caller refuses (fails closed).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import kubernetes.config

import cloudsweep
from cloudsweep.settings import get_settings

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 5.0
USER_AGENT = f"cloudsweep/{cloudsweep.__version__}"

_lock = threading.Lock()
_client: tuple[tuple[str | None, str | None], Any] | None = None


class AccessReviewError(Exception):
    """The API server gave no answer: unreachable, timed out, or it refused the review itself."""


@dataclass(frozen=True)
class Answer:
    allowed: bool
    reason: str = ""  # the authorizer's reason or evaluation error, when it gave one


def review(
    userinfo: Mapping[str, Any],
    *,
    verb: str,
    group: str,
    resource: str,
    namespace: str,
    name: str | None = None,
) -> Answer:
    """May the user of an admission request (its ``userInfo``) do ``verb`` on the resource?"""
    attributes = {
        "namespace": namespace,
        "verb": verb,
        "group": group,
        "resource": resource,
        "name": name,
    }
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            **subject(userinfo),
            "resourceAttributes": {k: v for k, v in attributes.items() if v},
        },
    }
    try:
        data = _create(body)
    except kubernetes.client.ApiException as error:
        if error.status != 401:
            raise AccessReviewError(_describe(error)) from None
        _forget_client()  # expired credentials (kubeconfig's exec plugins): log in again, once
        try:
            data = _create(body)
        except Exception as again:
            raise AccessReviewError(_describe(again)) from None
    except Exception as error:  # connection refused, timed out, unreadable answer
        raise AccessReviewError(_describe(error)) from None
    status = data.get("status") if isinstance(data, Mapping) else None
    if not isinstance(status, Mapping):
        raise AccessReviewError("the SubjectAccessReview came back without a status")
    reason = str(status.get("reason") or status.get("evaluationError") or "")
    return Answer(allowed=status.get("allowed") is True and not status.get("denied"), reason=reason)


def review_path(userinfo: Mapping[str, Any], *, verb: str, path: str) -> Answer:
    """May the user ``verb`` the non-resource URL ``path`` (``get /metrics``)? RBAC grants it
    with ``nonResourceURLs`` in a ClusterRole (deploy/base/rbac.yaml: cloudsweep-metrics-reader)."""
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {**subject(userinfo), "nonResourceAttributes": {"path": path, "verb": verb}},
    }
    return _answer(_call(_create, body))


def authenticate(token: str) -> dict[str, Any] | None:
    """Who the bearer token belongs to (a TokenReview): the user info, or None if the API server
    does not accept the token. Raises ``AccessReviewError`` when it gave no answer."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    data = _call(_create_token_review, body)
    status = data.get("status") if isinstance(data, Mapping) else None
    if not isinstance(status, Mapping):
        raise AccessReviewError("the TokenReview came back without a status")
    user = status.get("user")
    if status.get("authenticated") is not True or not isinstance(user, Mapping):
        return None
    return dict(user)


def _call(create: Any, body: Mapping[str, Any]) -> Any:
    try:
        return create(body)
    except kubernetes.client.ApiException as error:
        if error.status != 401:
            raise AccessReviewError(_describe(error)) from None
        _forget_client()
        try:
            return create(body)
        except Exception as again:
            raise AccessReviewError(_describe(again)) from None
    except Exception as error:
        raise AccessReviewError(_describe(error)) from None


def _answer(data: Any) -> Answer:
    status = data.get("status") if isinstance(data, Mapping) else None
    if not isinstance(status, Mapping):
        raise AccessReviewError("the SubjectAccessReview came back without a status")
    reason = str(status.get("reason") or status.get("evaluationError") or "")
    return Answer(allowed=status.get("allowed") is True and not status.get("denied"), reason=reason)


def subject(userinfo: Mapping[str, Any]) -> dict[str, Any]:
    """A SubjectAccessReview's subject from an admission request's ``userInfo``: all of it (user,
    groups, uid, extra), since RBAC bindings name groups as often as users."""
    spec: dict[str, Any] = {"user": str(userinfo.get("username") or "")}
    groups = userinfo.get("groups")
    if groups:
        spec["groups"] = [str(g) for g in groups]
    if userinfo.get("uid"):
        spec["uid"] = str(userinfo["uid"])
    extra = userinfo.get("extra")
    if isinstance(extra, Mapping) and extra:
        spec["extra"] = {str(k): [str(v) for v in values or []] for k, values in extra.items()}
    return spec


def _create(body: Mapping[str, Any]) -> Any:
    api = kubernetes.client.AuthorizationV1Api(_api_client())
    response = api.create_subject_access_review(
        body,
        _preload_content=False,
        _request_timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
    )
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def _create_token_review(body: Mapping[str, Any]) -> Any:
    api = kubernetes.client.AuthenticationV1Api(_api_client())
    response = api.create_token_review(
        body,
        _preload_content=False,
        _request_timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
    )
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def _describe(error: Exception) -> str:
    if isinstance(error, kubernetes.client.ApiException):
        detail = ""
        try:
            detail = str(json.loads(error.body or "{}").get("message") or "")
        except (ValueError, AttributeError):
            detail = ""
        return f"HTTP {error.status} {error.reason or ''}".strip() + (
            f": {detail}" if detail else ""
        )
    return f"{type(error).__name__}: {error}"


def _credentials() -> tuple[str | None, str | None]:
    url = get_settings().kube_api_url
    return (url, os.environ.get("CLOUDSWEEP_KUBE_TOKEN", "none")) if url else (None, None)


def _api_client() -> Any:
    """One client (one connection pool) per set of credentials; made on first use."""
    global _client
    key = _credentials()
    with _lock:
        if _client is None or _client[0] != key:
            _client = (key, _new_client(*key))
        return _client[1]


def _forget_client() -> None:
    global _client
    with _lock:
        _client = None


def _new_client(url: str | None, token: str | None) -> Any:
    configuration = kubernetes.client.Configuration()
    if url:
        configuration.host = url.rstrip("/")
        configuration.api_key["authorization"] = f"Bearer {token}"
    else:
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(
                client_configuration=configuration, persist_config=False
            )
    configuration.retries = 1
    client = kubernetes.client.ApiClient(configuration)
    client.user_agent = USER_AGENT
    return client
