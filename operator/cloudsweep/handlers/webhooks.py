"""The admission webhook server, and how the API server is told to reach it.

kopf's ``WebhookServer`` describes itself to the managed webhook configurations by URL
(``https://HOST:PORT/...``). An API server resolves that host with its own resolver, which on
most clusters (kind, EKS, GKE) does not know cluster DNS names such as
``cloudsweep-webhook.cloudsweep.svc``; with a fail-closed webhook every CleanupPolicy write would
then be refused. ``ServiceWebhookServer`` describes itself by Service reference instead, which the
API server routes itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kopf

# Where Kubernetes mounts the pod's namespace (with the service account token).
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def service_reference(value: str, namespace_file: Path = _NAMESPACE_FILE) -> dict[str, Any]:
    """``[namespace/]name[:port]`` as a clientConfig.service (namespace: the pod's own)."""
    namespace, _, rest = value.rpartition("/")
    name, _, port = rest.partition(":")
    if not namespace:
        try:
            namespace = namespace_file.read_text().strip()
        except OSError:
            raise ValueError(
                f"CLOUDSWEEP_WEBHOOK_SERVICE ({value!r}) names no namespace and the operator is not "
                f"in a pod ({namespace_file} is missing): write it as namespace/{rest}"
            ) from None
    return {"namespace": namespace, "name": name, "port": int(port or 443)}


class ServiceWebhookServer(kopf.WebhookServer):  # type: ignore[misc]
    """kopf's server, announced to the API server as a Service reference with the same CA."""

    def __init__(self, *, service: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for config in super().__call__(fn):
            announced: dict[str, Any] = {"service": {**self.service, "path": self.path or ""}}
            if "caBundle" in config:
                announced["caBundle"] = config["caBundle"]
            yield announced
