"""Operator start-up and shut-down: kopf settings, login, database, metrics, admission webhook.

Registered when ``cloudsweep.handlers`` is imported (``cloudsweep operator``).
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path
from typing import Any

import kopf

from cloudsweep.handlers import certificates, metrics_access, resilience, runtime, webhooks
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
    # An unreachable, erroring or hung API server only delays the operator (see resilience).
    settings.networking.error_backoffs = resilience.RetryBackoffs(
        cfg.kube_retry_max_backoff_seconds
    )
    settings.networking.request_timeout = cfg.kube_request_timeout_seconds
    settings.networking.connect_timeout = cfg.kube_connect_timeout_seconds
    settings.watching.server_timeout = cfg.kube_watch_timeout_seconds
    settings.watching.client_timeout = cfg.kube_watch_timeout_seconds + 30
    settings.watching.inactivity_timeout = cfg.kube_watch_inactivity_seconds
    resilience.guard_timer_patches()
    resilience.guard_watch_errors(cfg.kube_retry_max_backoff_seconds)
    settings.execution.max_workers = 8
    # A deleted object's timers stop within moments; without this kopf re-checks them only every
    # minute (cancellation_polling), so a finalizer (a CleanupApproval's withdrawal) waited a
    # minute for nothing.
    settings.background.instant_exit_timeout = 2.0
    # Always serve the webhook: kopf refuses to run admission handlers without a server.
    certfile, keyfile, cafile = cfg.webhook_certfile, cfg.webhook_keyfile, None
    if not cfg.webhook_insecure and certfile is None:
        hosts = [h for h in (cfg.webhook_host, "localhost", "127.0.0.1") if h]
        certfile, keyfile = certificates.self_signed(hosts)
        cafile = certfile
    server = webhook_server_options(cfg, certfile, keyfile, cafile)
    if cfg.webhook_service:
        try:
            service = webhooks.service_reference(cfg.webhook_service)
        except ValueError as error:
            raise kopf.PermanentError(str(error)) from None
        settings.admission.server = webhooks.ServiceWebhookServer(service=service, **server)
    else:
        settings.admission.server = kopf.WebhookServer(**server)
    if cfg.webhook_managed:
        settings.admission.managed = "cloudsweep.io"
    if not runtime.configured():
        from cloudsweep import aws, metrics, notify

        try:
            handle = database.open_database(cfg)
        except database.SchemaOutOfDate as error:
            # Waiting would not help: stop, so the pod restarts after `cloudsweep db upgrade`.
            raise kopf.PermanentError(str(error)) from None
        except database.DatabaseUnavailable as error:
            # One line per attempt, not a traceback; kopf retries start-up until it succeeds.
            raise kopf.TemporaryError(str(error), delay=10) from None
        runtime.configure(
            runtime.Runtime(
                settings=cfg,
                store=Store(handle.url),
                # Every AWS call feeds the per-process API call metrics.
                recorder_factory=lambda: aws.CallRecorder(listeners=[metrics.observe_aws_call]),
                notifier=notify.Notifier(handle.url),
            )
        )
        if cfg.scan_executor == "job":
            from cloudsweep.handlers import scanschedules

            scanschedules.start_scan_jobs()
        if cfg.metrics_port:
            # The metrics name every tenant's accounts: authorized scrapers only, over TLS.
            secure = cfg.metrics_auth and certfile is not None and keyfile is not None
            if cfg.metrics_auth and not secure:
                log.warning(
                    "metrics: CLOUDSWEEP_METRICS_AUTH needs a TLS certificate (the webhook's); "
                    "without one /metrics asks for tokens over plain HTTP"
                )
            metrics.start_metrics_server(
                cfg.metrics_port,
                handle.url,
                authorize=metrics_access.MetricsAccess() if cfg.metrics_auth else None,
                certfile=str(certfile) if secure else None,
                keyfile=str(keyfile) if secure else None,
            )


def webhook_server_options(
    cfg: Any, certfile: Path | None, keyfile: Path | None, cafile: Path | None
) -> dict[str, Any]:
    """kopf's ``WebhookServer`` arguments. With ``webhook_client_ca`` the TLS handshake requires
    a client certificate signed by it: only the API server (given one) can call the webhook."""
    server: dict[str, Any] = {
        "addr": cfg.webhook_addr,
        "port": cfg.webhook_port or None,
        "host": cfg.webhook_host,
        "certfile": str(certfile) if certfile else None,
        "pkeyfile": str(keyfile) if keyfile else None,
        "cafile": str(cafile) if cafile else None,
        "insecure": cfg.webhook_insecure,
    }
    if cfg.webhook_client_ca is not None:
        server["verify_cafile"] = str(cfg.webhook_client_ca)
        server["verify_mode"] = ssl.CERT_REQUIRED
    return server


@kopf.on.cleanup(id="shutdown")
def shutdown(**_: Any) -> None:
    if runtime.configured():
        runtime.get().shutdown()
