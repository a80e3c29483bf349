"""Operator start-up and shut-down: kopf settings, login, database, metrics, admission webhook.

Registered when ``cloudsweep.handlers`` is imported (``cloudsweep operator``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from cloudsweep.handlers import certificates, runtime
from cloudsweep.settings import get_settings
from cloudsweep.store import Store, database

FINALIZER = "cloudsweep.io/finalizer"
log = logging.getLogger(__name__)


@kopf.on.login(id="login")
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """CLOUDSWEEP_KUBE_API_URL (a `kubectl proxy`, a test server), else in-cluster or kubeconfig."""
    url = get_settings().kube_api_url
    if url:
        return kopf.ConnectionInfo(
            server=url, scheme="Bearer", token=os.environ.get("CLOUDSWEEP_KUBE_TOKEN", "none")
        )
    return kopf.login_via_client(**kwargs)


@kopf.on.startup(id="configure")
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    cfg = get_settings()
    # Our own prefixes: the finalizer and kopf's bookkeeping say whose they are.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="cloudsweep.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="cloudsweep.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # Events for what users must see, not every log line
    # Bounded retries against an unreachable or erroring API server.
    settings.networking.error_backoffs = [1, 2, 5, 10, 30, 60]
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 8
    # Always serve the webhook: kopf refuses to run admission handlers without a server.
    certfile, keyfile, cafile = cfg.webhook_certfile, cfg.webhook_keyfile, None
    if not cfg.webhook_insecure and certfile is None:
        hosts = [h for h in (cfg.webhook_host, "localhost", "127.0.0.1") if h]
        certfile, keyfile = certificates.self_signed(hosts)
        cafile = certfile
    settings.admission.server = kopf.WebhookServer(
        addr=cfg.webhook_addr,
        port=cfg.webhook_port or None,
        host=cfg.webhook_host,
        certfile=str(certfile) if certfile else None,
        pkeyfile=str(keyfile) if keyfile else None,
        cafile=str(cafile) if cafile else None,
        insecure=cfg.webhook_insecure,
    )
    if cfg.webhook_managed:
        settings.admission.managed = "cloudsweep.io"
    if not runtime.configured():
        from cloudsweep import aws, metrics, notify

        handle = database.open_database(cfg)
        runtime.configure(
            runtime.Runtime(
                settings=cfg,
                store=Store(handle.url),
                # Every AWS call feeds the per-process API call metrics.
                recorder_factory=lambda: aws.CallRecorder(listeners=[metrics.observe_aws_call]),
                notifier=notify.Notifier(handle.url),
            )
        )
        if cfg.metrics_port:
            metrics.start_metrics_server(cfg.metrics_port, handle.url)


@kopf.on.cleanup(id="shutdown")
def shutdown(**_: Any) -> None:
    if runtime.configured():
        runtime.get().shutdown()
