"""Process-wide settings from the environment (``CLOUDSWEEP_*``); read by the front doors and store."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cloudsweep"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDSWEEP_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL under data_dir is started.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the embedded PostgreSQL keeps its files ($XDG_DATA_HOME/cloudsweep).",
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        description="Send every AWS call to this endpoint (a moto server in tests and the demo). "
        "AWS_ENDPOINT_URL is honoured too.",
    )
    price_catalog: Path | None = Field(
        default=None,
        description="A price catalog JSON to use instead of the bundled one "
        "(`cloudsweep pricing refresh` writes one under data_dir).",
    )
    scan_concurrency: int = Field(
        default=8, ge=1, le=64, description="Regions x detectors at once."
    )
    cleanup_takeover_seconds: int = Field(
        default=900,
        ge=0,
        description="A started cleanup attempt whose worker shows no sign of life for this long (and "
        "whose lock is free) is reconciled from AWS by another run. Longer than any AWS call can be "
        "in flight (read time-out x attempts), so a database restart never lets two workers act.",
    )
    max_concurrent_scans: int = Field(
        default=4, ge=1, le=64, description="Operator: scans running at once (one per account)."
    )
    scan_executor: Literal["inprocess", "job"] = Field(
        default="inprocess",
        description="Operator: where a ScanSchedule's scans run unless its spec.executor says: "
        "`inprocess` on the operator's own pool, or `job`: one Kubernetes Job per account in "
        "the operator's namespace, running the operator's image (docs/scan-jobs.md).",
    )
    max_concurrent_scan_jobs: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Operator: scan Jobs running at once; further due scans wait for a slot.",
    )
    operator_namespace: str | None = Field(
        default=None,
        description="Operator: its own namespace, where scan Jobs run. Unset: the pod's "
        "(the service account's namespace file).",
    )
    scan_job_deployment: str = Field(
        default="cloudsweep",
        description="Operator: its own Deployment. Scan Jobs are owned by it (deleted with it) and "
        "copy its pod's image, service account and the environment of its container "
        "(secret references stay references: no secret value is copied into a Job).",
    )
    scan_job_container: str = Field(
        default="operator", description="Operator: the container of that Deployment to copy."
    )
    scan_job_ttl_seconds: int = Field(
        default=3600,
        ge=0,
        description="Operator: a finished scan Job (and its pod, with its logs) is deleted this "
        "long after it ended (ttlSecondsAfterFinished); the operator reads its outcome first.",
    )
    scan_job_deadline_seconds: int = Field(
        default=7200,
        ge=60,
        description="Operator: a scan Job running longer is stopped and its scan counts as "
        "failed (activeDeadlineSeconds).",
    )
    scan_job_backoff_limit: int = Field(
        default=0,
        ge=0,
        le=3,
        description="Operator: retries of a failed scan Job's pod (backoffLimit); the next "
        "scheduled run is the usual retry.",
    )
    scan_job_resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        description="Operator: the scan Job container's resources, as JSON in the environment: "
        '\'{"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}\'.',
    )
    scan_job_poll_seconds: float = Field(
        default=5,
        gt=0,
        le=300,
        description="Operator: how often it reads the state of its running scan Jobs.",
    )
    schedule_jitter_seconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="Operator: a due schedule fires within this many seconds, spread per object, so "
        "a restart never starts every scan at once.",
    )
    account_recheck_seconds: int = Field(
        default=900,
        ge=30,
        description="Operator: how often an AwsAccount's connection is re-verified.",
    )
    default_monthly_scan_limit: int | None = Field(
        default=1000,
        ge=0,
        description="Operator: monthly_scan_limit of organizations it creates (their plan's limit).",
    )
    approval_signing_key: str | None = Field(
        default=None,
        description="Operator: secret key that signs CleanupPolicy approvals stamped by the admission "
        "webhook; approvals without a valid signature are ignored. Unset: approvals are disabled.",
    )
    kube_api_url: str | None = Field(
        default=None,
        description="Operator: talk to this Kubernetes API URL (e.g. `kubectl proxy`) instead of the "
        "in-cluster or kubeconfig credentials.",
    )
    log_format: Literal["full", "plain", "json"] = Field(
        default="full",
        description="Operator: log lines as `full` text (time, logger, level), `plain` messages, or "
        "`json` objects for log pipelines; objects' namespace and name are included.",
    )
    kube_request_timeout_seconds: float = Field(
        default=60,
        gt=0,
        description="Operator: a Kubernetes API request (not a watch) that takes longer is "
        "abandoned and retried, so a hung API server never blocks a handler for long.",
    )
    kube_connect_timeout_seconds: float = Field(
        default=10,
        gt=0,
        description="Operator: time allowed to connect to the Kubernetes API server.",
    )
    kube_watch_timeout_seconds: int = Field(
        default=300,
        ge=1,
        description="Operator: the API server ends each watch request after this long and the "
        "operator resumes it; the operator itself gives up on one 30 s later.",
    )
    kube_watch_inactivity_seconds: float = Field(
        default=70,
        gt=0,
        description="Operator: a watch that delivers nothing, not even a bookmark (the API server "
        "sends one about every minute), for this long is dropped and reopened: a stalled "
        "connection is noticed in this time, not at the end of the watch.",
    )
    kube_retry_max_backoff_seconds: float = Field(
        default=60,
        gt=0,
        description="Operator: Kubernetes API calls failing with 5xx, 429, 403, a time-out or a "
        "connection error are retried after 1, 2, 5, 10 and 30 s, then every this many seconds, "
        "without a limit: an API server outage only delays the operator.",
    )
    status_refresh_seconds: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="Operator: how often scan outcomes and policy evaluations reach objects' status.",
    )
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="Operator: /metrics port.")
    metrics_auth: bool = Field(
        default=True,
        description="Operator: serve /metrics over HTTPS (the webhook's certificate) only to "
        "scrapers whose bearer token the Kubernetes API authenticates (TokenReview) and "
        "authorizes for `get` on `/metrics` (SubjectAccessReview; ClusterRole "
        "cloudsweep-metrics-reader), as controller-runtime's secure metrics do. false: plain "
        "HTTP to anyone who reaches the port; then limit it with a NetworkPolicy.",
    )
    health_port: int = Field(default=8080, ge=0, le=65535, description="Operator: /healthz port.")
    webhook_port: int = Field(
        default=9443,
        ge=0,
        le=65535,
        description="Operator: admission webhook port (0: any free port).",
    )
    webhook_addr: str = Field(default="0.0.0.0", description="Operator: admission webhook address.")
    webhook_host: str | None = Field(
        default=None,
        description="Operator: the host name the API server uses for the webhook (its Service's DNS "
        "name), written into the managed webhook configurations.",
    )
    webhook_service: str | None = Field(
        default=None,
        pattern=r"^([a-z0-9-]+/)?[a-z0-9-]+(:[0-9]+)?$",
        description="Operator: `[namespace/]name[:port]` of the Service in front of the webhook; the "
        "managed webhook configurations then name it (clientConfig.service, which every API server "
        "can reach) instead of a URL (CLOUDSWEEP_WEBHOOK_HOST, which needs the API server to resolve "
        "cluster DNS). Namespace: the operator's own; port: 443.",
    )
    webhook_certfile: Path | None = Field(
        default=None, description="Operator: webhook TLS certificate."
    )
    webhook_keyfile: Path | None = Field(
        default=None, description="Operator: webhook TLS private key."
    )
    webhook_client_ca: Path | None = Field(
        default=None,
        description="Operator: a CA bundle; the webhook then accepts only TLS clients with a "
        "certificate it signed: the API server, given a client certificate for webhooks with an "
        "AdmissionConfiguration kubeConfigFile (self-managed control planes; docs/approvals.md).",
    )
    webhook_insecure: bool = Field(
        default=False, description="Operator: serve the webhook over plain HTTP (tests only)."
    )
    webhook_managed: bool = Field(
        default=True,
        description="Operator: let kopf create and keep the Mutating- and "
        "ValidatingWebhookConfiguration `cloudsweep.io` up to date.",
    )
    aws_max_attempts: int = Field(default=5, ge=1, le=20, description="botocore standard retries.")
    aws_rate_budget: bool = Field(
        default=True,
        description="Share one AWS request budget per account, region and service among every "
        "scan, cleanup and rollback of every CloudSweep process (a token bucket in PostgreSQL; "
        "throttling halves the rate for all of them).",
    )
    aws_request_rates: dict[str, float] = Field(
        default_factory=dict,
        description="Requests a second per AWS service (botocore service id: ec2, rds, "
        "elastic-load-balancing-v2, cloudwatch, ...), replacing CloudSweep's defaults, which "
        "stay below AWS's documented limits; as JSON in the environment: "
        "'{\"ec2\": 10}'.",
    )
    allow_shared_accounts: bool = Field(
        default=False,
        description="Single-team installs only. Off (the default): an AWS account belongs to the "
        "first organization (namespace) that registers it and is refused to every other one "
        "(AccountClaimedByAnotherOrganization), and an account whose role can be assumed without "
        "its ExternalId is neither connected, scanned nor cleaned (ExternalIdNotEnforced). On: "
        "several organizations may register the same account, and roles that do not enforce the "
        "ExternalId are used (with a warning condition).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
