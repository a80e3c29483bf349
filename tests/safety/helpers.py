"""Shared pieces of the safety suite: small seeded worlds, policies, the ledger oracle, a call
journal that survives SIGKILL, the steps at which a fault is injected, and an enforcing STS check.

Used by every ``tests/safety`` module and by ``crash_worker`` (the child process of the crash,
database-failure and two-worker scenarios). Nothing here edits or patches application code: faults
go in through botocore event handlers on the sessions CloudSweep builds (via a ``session_factory``
wrapping ``aws.AccountSession``) and through SQLAlchemy engine events in the child.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import sqlalchemy as sa
from botocore.awsrequest import AWSResponse

from cloudsweep import aws, cleaning, domain, policies, scanning
from cloudsweep.settings import Settings
from cloudsweep.store import AccountRecord, Store
from cloudsweep.store.engine import get_engine

REGION = "us-east-1"
ACTOR = "safety@example.com"
SCANNER_ROLE = "CloudSweepScanner"
SEEDER_ROLE = "cloudsweep-safety-seeder"
PROTECT_TAG = "cloudsweep.io/protect"
ACTION_TAG = "cloudsweep.io/action-id"
SOURCE_VOLUME_TAG = "cloudsweep.io/source-volume"
REPO_ROOT = Path(__file__).resolve().parents[2]

_SEED_CONFIG = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


# --- worlds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmallWorld:
    """A few unattached volumes and unassociated addresses in one account and region; the
    protected ones are waste-shaped but carry a protection tag (never eligible)."""

    endpoint: str
    account_id: str
    external_id: str
    volumes: tuple[str, ...]
    addresses: tuple[str, ...]
    protected_volumes: tuple[str, ...]
    protected_addresses: tuple[str, ...]

    @property
    def role_arn(self) -> str:
        return role_arn(self.account_id)


def role_arn(account_id: str, name: str = SCANNER_ROLE) -> str:
    return f"arn:aws:iam::{account_id}:role/{name}"


def account_client(endpoint: str, account_id: str, service: str, region: str = REGION) -> Any:
    """A client under a role assumed in ``account_id`` (moto keeps accounts apart this way)."""
    sts = boto3.client("sts", region_name=region, endpoint_url=endpoint, config=_SEED_CONFIG)
    creds = sts.assume_role(RoleArn=role_arn(account_id, SEEDER_ROLE), RoleSessionName="safety")[
        "Credentials"
    ]
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        config=_SEED_CONFIG,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def seed_small_world(
    endpoint: str,
    account_id: str,
    *,
    volumes: int = 2,
    addresses: int = 2,
    protected: bool = True,
    external_id: str | None = None,
    region: str = REGION,
) -> SmallWorld:
    ec2 = account_client(endpoint, account_id, "ec2", region)

    def volume(tags: Mapping[str, str]) -> str:
        spec = [
            {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
        return str(
            ec2.create_volume(
                AvailabilityZone=f"{region}a", Size=10, VolumeType="gp3", TagSpecifications=spec
            )["VolumeId"]
        )

    def address(tags: Mapping[str, str]) -> str:
        spec = [
            {
                "ResourceType": "elastic-ip",
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            }
        ]
        return str(ec2.allocate_address(Domain="vpc", TagSpecifications=spec)["AllocationId"])

    vols = tuple(volume({"Name": f"scratch-{i}", "team": "data"}) for i in range(volumes))
    eips = tuple(address({"Name": f"egress-{i}", "team": "net"}) for i in range(addresses))
    pvols = (volume({"Name": "keep", PROTECT_TAG: "true"}),) if protected else ()
    peips = (address({"Name": "partner", "do-not-delete": "true"}),) if protected else ()
    return SmallWorld(
        endpoint=endpoint,
        account_id=account_id,
        external_id=external_id or f"ext-{account_id}",
        volumes=vols,
        addresses=eips,
        protected_volumes=pvols,
        protected_addresses=peips,
    )


def live_volumes(world: SmallWorld, region: str = REGION) -> set[str]:
    ec2 = account_client(world.endpoint, world.account_id, "ec2", region)
    return {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}


def live_addresses(world: SmallWorld, region: str = REGION) -> set[str]:
    ec2 = account_client(world.endpoint, world.account_id, "ec2", region)
    return {a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]}


def cleanup_snapshots(world: SmallWorld, volume_id: str) -> list[dict[str, Any]]:
    """Snapshots CloudSweep took of ``volume_id`` (tagged with the source volume)."""
    ec2 = account_client(world.endpoint, world.account_id, "ec2")
    found = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": f"tag:{SOURCE_VOLUME_TAG}", "Values": [volume_id]}]
    )["Snapshots"]
    return [dict(s) for s in found]


def scan_world(
    store: Store,
    org_slug: str,
    world: SmallWorld,
    settings: Settings,
    *,
    session_factory: Any = aws.AccountSession,
    recorder: aws.CallRecorder | None = None,
    regions: Iterable[str] = (REGION,),
    options: scanning.ScanOptions | None = None,
) -> AccountRecord:
    """Register the world's account in ``org_slug`` and scan it (volumes and addresses only,
    unless ``options`` say otherwise)."""
    org = store.ensure_organization(org_slug)
    record = store.register_account(
        org.id,
        account_id=world.account_id,
        role_arn=world.role_arn,
        external_id=world.external_id,
        regions=list(regions),
    )
    outcome = scanning.run_scan(
        store,
        record,
        options or scan_options(),
        settings=settings,
        session_factory=session_factory,
        recorder=recorder,
    )
    assert outcome.scan.status == "completed", outcome.scan.error_message
    return record


@dataclass(frozen=True)
class Target:
    """What a destructive test acts on in a scanned ``SmallWorld``: its volumes
    (ebs-volume/snapshot-and-delete) or its addresses (elastic-ip/release)."""

    world: SmallWorld
    volumes: bool

    @property
    def document(self) -> dict[str, Any]:
        return volume_policy() if self.volumes else address_policy()

    @property
    def operation(self) -> str:
        return "DeleteVolume" if self.volumes else "ReleaseAddress"

    @property
    def eligible(self) -> set[str]:
        return set(self.world.volumes if self.volumes else self.world.addresses)

    def live(self) -> set[str]:
        return live_volumes(self.world) if self.volumes else live_addresses(self.world)


def scanned_target(
    resource_type: str,
    endpoint: str,
    account_id: str,
    store: Store,
    org_slug: str,
    settings: Settings,
) -> Target:
    """A small world seeded in ``account_id`` and scanned into ``org_slug``."""
    world = seed_small_world(endpoint, account_id)
    scan_world(store, org_slug, world, settings)
    return Target(world, resource_type == "ebs-volume")


def scan_options() -> scanning.ScanOptions:
    return scanning.ScanOptions(
        detectors=["ebs-volume", "elastic-ip"],
        parameters={"ebs-volume": {"min_age_days": 0}},
    )


def settings_for(endpoint: str, max_attempts: int = 2, takeover_seconds: int = 0) -> Settings:
    """Settings for a worker. ``takeover_seconds`` 0: a rerun reconciles an interrupted attempt at
    once, standing for "the grace period has passed" (a killed worker never comes back); tests of
    a worker that is still alive use the real grace period."""
    return Settings(
        aws_endpoint_url=endpoint,
        aws_max_attempts=max_attempts,
        cleanup_takeover_seconds=takeover_seconds,
    )


# --- policies -----------------------------------------------------------------------------------


def volume_policy(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "scratch-volumes",
        "resourceType": "ebs-volume",
        "action": "snapshot-and-delete",
        "rules": {"minAgeDays": 0, "minConfidence": 50, "maxRiskLevel": "medium"},
        "requireApprovalAbove": "1000.00",
        "maxItemsPerRun": 50,
        "dryRun": False,
        "parameters": {"wait_delay_seconds": 0.2, "wait_max_attempts": 20},
    }
    document.update(overrides)
    return document


def address_policy(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "idle-ips",
        "resourceType": "elastic-ip",
        "action": "release",
        "rules": {"minAgeDays": 0, "minConfidence": 50},
        "requireApprovalAbove": "1000.00",
        "maxItemsPerRun": 50,
        "dryRun": False,
    }
    document.update(overrides)
    return document


def parse(documents: Iterable[Mapping[str, Any]]) -> list[policies.CleanupPolicy]:
    return [policies.parse_policy(d) for d in documents]


def run_cleanup(
    store: Store,
    org_slug: str,
    documents: Iterable[Mapping[str, Any]],
    settings: Settings,
    recorder: aws.CallRecorder,
    **kwargs: Any,
) -> cleaning.RunReport:
    kwargs.setdefault("dry_run", False)
    kwargs.setdefault("actor_email", ACTOR)
    options = cleaning.CleanupOptions(settings=settings, recorder=recorder, **kwargs)
    return cleaning.run_cleanup(store, org_slug, parse(documents), options)


# --- the ledger oracle --------------------------------------------------------------------------


def ledger(url: str, org_slug: str | None = None) -> list[dict[str, Any]]:
    """Every ``cleanup_actions`` row with its item's identity, oldest first."""
    query = (
        "SELECT a.id, a.status, a.dry_run, a.success, a.action, a.action_type, a.error_message, "
        "a.rollback_data, a.aws_response, a.executed_at, a.completed_at, w.resource_id, w.region, "
        "w.resource_type, w.cleanup_status, acc.account_id, o.slug "
        "FROM cleanup_actions a JOIN waste_items w ON w.id = a.waste_item_id "
        "JOIN aws_accounts acc ON acc.id = w.aws_account_id "
        "JOIN organizations o ON o.id = acc.organization_id"
    )
    params: dict[str, Any] = {}
    if org_slug is not None:
        query += " WHERE o.slug = :slug"
        params["slug"] = org_slug
    with get_engine(url).connect() as conn:
        rows = conn.execute(sa.text(query + " ORDER BY a.executed_at, a.id"), params)
        return [dict(row._mapping) for row in rows]


def real_rows(url: str, org_slug: str | None = None) -> list[dict[str, Any]]:
    return [r for r in ledger(url, org_slug) if not r["dry_run"]]


def assert_ledger_complete(
    url: str, deleted: Iterable[str], *, org_slug: str | None = None
) -> dict[str, dict[str, Any]]:
    """Each deleted item: exactly one real row, succeeded (one intent, one outcome); no row is
    left ``started``; no succeeded row for an item that was not deleted. Returns the rows."""
    rows = real_rows(url, org_slug)
    assert not [r for r in rows if r["status"] == "started"], "an attempt was left started"
    deleted = set(deleted)
    by_item: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_item.setdefault(row["resource_id"], []).append(row)
    for resource_id in deleted:
        item_rows = by_item.get(resource_id, [])
        assert [r["status"] for r in item_rows] == ["succeeded"], (resource_id, item_rows)
    succeeded = {r["resource_id"] for r in rows if r["status"] == "succeeded"}
    assert succeeded == deleted
    return {rid: by_item[rid][0] for rid in deleted}


def started_row_exists(url: str, resource_id: str) -> bool:
    """Is a real attempt on ``resource_id`` committed as ``started`` (read on a new connection,
    so only committed data is seen)?"""
    engine = sa.create_engine(
        _psycopg(url), poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT count(*) FROM cleanup_actions a JOIN waste_items w "
                    "ON w.id = a.waste_item_id WHERE w.resource_id = :r AND NOT a.dry_run "
                    "AND a.status = 'started'"
                ),
                {"r": resource_id},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(found) > 0


def terminate_other_backends(url: str) -> int:
    """Break every other connection to the database, as a PostgreSQL restart would."""
    engine = sa.create_engine(_psycopg(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            conn.commit()
    finally:
        engine.dispose()
    return int(killed)


def terminate_lock_holders(url: str) -> int:
    """Break only the connections holding an advisory lock (an item's lock), as when that one
    TCP connection dies; the worker's other connections stay up."""
    engine = sa.create_engine(_psycopg(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            conn.commit()
    finally:
        engine.dispose()
    return int(killed)


def _psycopg(url: str) -> str:
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


# --- a journal of AWS calls that survives SIGKILL ----------------------------------------------

_TARGET_KEYS = (
    "VolumeId",
    "AllocationId",
    "PublicIp",
    "SnapshotId",
    "DBInstanceIdentifier",
    "LoadBalancerArn",
    "LoadBalancerName",
    # The actions of issue 15: as they go on the wire (EC2's query lists number their members;
    # CloudWatch Logs sends JSON; S3 names the bucket in the URL, see ``_request_params``).
    "InstanceId",
    "InstanceId.1",
    "NatGatewayId",
    "ImageId",
    "logGroupName",
    "Bucket",
)


def target_resource_id(target: str) -> str:
    """The finding's resource ID for a request's target (an ELBv2 ARN ends with it)."""
    return target.split(":loadbalancer/", 1)[-1]


@dataclass
class Journal:
    """Wire-level AWS sends (each HTTP attempt), with the caller account and, for mutating calls,
    whether a committed ``started`` intent existed for the target at that moment.

    A ``CallRecorder`` lives in memory and dies with a SIGKILLed child, so the child also writes
    this journal, one flushed JSON line per event, to a file the parent reads afterwards.
    """

    path: Path | None = None
    database_url: str | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.entries.append(entry)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(entry, default=str) + "\n")
                    out.flush()

    def attach(self, events: Any, caller_account: str | None) -> None:
        def on_send(request: Any, **kwargs: Any) -> None:
            operation = kwargs.get("event_name", "").rsplit(".", 1)[-1]
            service = kwargs.get("event_name", "").split(".")[1]
            body = _request_params(service, request)
            params = {k: body[k] for k in body if k in (*_TARGET_KEYS, "DryRun")}
            entry = {
                "pid": os.getpid(),
                "event": "send",
                "service": service,
                "operation": operation,
                "caller_account": caller_account,
                "params": params,
                "dry_run": body.get("DryRun") == "true",
            }
            mutating = aws.CallRecord(caller_account, None, service, operation, {}).mutating
            if mutating and not entry["dry_run"] and self.database_url is not None:
                target = next((params[k] for k in _TARGET_KEYS if k in params), None)
                if target is not None:
                    entry["intent_committed"] = started_row_exists(
                        self.database_url, target_resource_id(target)
                    )
            self.write(entry)

        events.register("before-send", on_send, unique_id=f"journal-{id(self)}-{caller_account}")

    @classmethod
    def read(cls, path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _request_params(service: str, request: Any) -> dict[str, str]:
    """The request's top-level string parameters, whatever the protocol: a query form (EC2,
    ELB, RDS), a JSON document (CloudWatch Logs), or, for S3, the bucket its URL names."""
    if service == "s3":
        url = urllib.parse.urlsplit(str(request.url))
        bucket = url.path.lstrip("/").split("/", 1)[0]
        return {"Bucket": urllib.parse.unquote(bucket)} if bucket else {}
    body = request.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str) and body.lstrip().startswith("{"):
        document = json.loads(body)
        return {k: v for k, v in document.items() if isinstance(v, str)}
    return _form(body)


def _form(body: Any) -> dict[str, str]:
    if body is None:
        return {}
    if isinstance(body, bytes):
        body = body.decode()
    if not isinstance(body, str):
        return {}
    return dict(urllib.parse.parse_qsl(body))


def sends(entries: Iterable[Mapping[str, Any]], operation: str) -> list[str]:
    """Targets of real (not DryRun) sends of ``operation``."""
    return [
        next(e["params"][k] for k in _TARGET_KEYS if k in e["params"])
        for e in entries
        if e["event"] == "send" and e["operation"] == operation and not e["dry_run"]
    ]


def recorded_mutations(recorder: aws.CallRecorder, operation: str) -> list[str]:
    """Targets of non-DryRun calls of ``operation`` in a ``CallRecorder``."""
    return [
        next(str(c.params[k]) for k in _TARGET_KEYS if k in c.params)
        for c in recorder.calls(operation=operation)
        if not c.params.get("DryRun")
    ]


def assert_no_mutation_without_intent(entries: Iterable[Mapping[str, Any]]) -> None:
    unproven = [e for e in entries if e.get("intent_committed") is False]
    assert not unproven, f"mutating calls sent without a committed intent: {unproven}"


# --- the steps of a cleanup at which a fault is injected ----------------------------------------

VOLUME_STEPS = (
    "before-assume-role",
    "after-intent",
    "after-create-snapshot",
    "after-checkpoint",
    "before-delete",
    "after-delete",
    "before-outcome",
)
ADDRESS_STEPS = (
    "before-assume-role",
    "after-intent",
    "before-delete",
    "after-delete",
    "before-outcome",
)
_DESTRUCTIVE = {"ebs-volume": "DeleteVolume", "elastic-ip": "ReleaseAddress"}
_RECHECK = {"ebs-volume": "DescribeVolumes", "elastic-ip": "DescribeAddresses"}


class StepHooks:
    """Fire ``fault`` once, at ``step`` of the first item's cleanup.

    - ``before-assume-role``: ``before-call.sts.AssumeRole`` of the base session (sessions are
      made lazily, after the first claim, so the intent is already committed then);
    - ``after-intent``: before the re-check's ``Describe*`` call;
    - ``after-create-snapshot``: ``after-call.ec2.CreateSnapshot`` (before the checkpoint);
    - ``after-checkpoint``: the first ``DescribeSnapshots`` by ID after ``CreateSnapshot`` (the
      waiter's, or ``execute``'s check when moto reports the snapshot complete at once);
    - ``before-delete``: ``before-call`` of the non-DryRun ``DeleteVolume``/``ReleaseAddress``;
    - ``after-delete``: its ``after-call`` (the effect happened in moto);
    - ``before-outcome``: SQLAlchemy ``before_cursor_execute`` of the ``UPDATE cleanup_actions``
      that records ``succeeded`` (the outcome's transaction never commits).
    """

    def __init__(self, step: str, resource_type: str, fault: Callable[[], None]) -> None:
        self.step = step
        self.resource_type = resource_type
        self.fault = fault
        self.fired = False
        self.snapshot_created = False
        self._lock = threading.Lock()

    def _fire(self) -> None:
        with self._lock:
            if self.fired:
                return
            self.fired = True
        self.fault()

    def install_base(self, events: Any) -> None:
        if self.step == "before-assume-role":
            events.register("before-call.sts.AssumeRole", lambda **_: self._fire())

    def install_account(self, events: Any) -> None:
        destructive = _DESTRUCTIVE[self.resource_type]
        step = self.step
        if step == "after-intent":
            events.register(
                f"before-call.ec2.{_RECHECK[self.resource_type]}", lambda **_: self._fire()
            )
        elif step == "after-create-snapshot":
            events.register("after-call.ec2.CreateSnapshot", lambda **_: self._fire())
        elif step == "after-checkpoint":

            def created(**_: Any) -> None:
                self.snapshot_created = True

            def describe(params: Any, **_: Any) -> None:
                body = params.get("body") or {}
                if self.snapshot_created and any(k.startswith("SnapshotId") for k in body):
                    self._fire()

            events.register("after-call.ec2.CreateSnapshot", created)
            events.register("before-call.ec2.DescribeSnapshots", describe)
        elif step == "before-delete":

            def before(params: Any, **_: Any) -> None:
                if (params.get("body") or {}).get("DryRun") != "true":
                    self._fire()

            events.register(f"before-call.ec2.{destructive}", before)
        elif step == "after-delete":

            def after(http_response: Any, **_: Any) -> None:
                if getattr(http_response, "status_code", 500) < 300:
                    self._fire()

            events.register(f"after-call.ec2.{destructive}", after)

    def install_database(self) -> None:
        if self.step == "after-claim":
            # Right after the INSERT of a new intent (a claim, or a rollback's start).
            def after_insert(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
                if statement.lstrip().upper().startswith("INSERT INTO CLEANUP_ACTIONS"):
                    self._fire()

            self._listener = after_insert
            sa.event.listen(sa.engine.Engine, "after_cursor_execute", after_insert)
            return
        if self.step != "before-outcome":
            return

        def before_execute(
            conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any
        ) -> None:
            if statement.lstrip().upper().startswith(
                "UPDATE CLEANUP_ACTIONS"
            ) and "succeeded" in repr(parameters):
                self._fire()

        self._listener = before_execute
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", before_execute)

    def uninstall_database(self) -> None:
        listener = getattr(self, "_listener", None)
        if listener is not None:
            for event in ("before_cursor_execute", "after_cursor_execute"):
                if sa.event.contains(sa.engine.Engine, event, listener):
                    sa.event.remove(sa.engine.Engine, event, listener)
            self._listener = None

    def session_factory(
        self,
        journal: Journal | None = None,
        extra: Callable[[aws.AccountSession], None] | None = None,
        base_factory: Callable[[], boto3.Session] = boto3.Session,
    ) -> Callable[..., aws.AccountSession]:
        def factory(*args: Any, **kwargs: Any) -> aws.AccountSession:
            base = kwargs.pop("base_session", None) or base_factory()
            self.install_base(base.events)
            if journal is not None:
                journal.attach(base.events, None)
            session = aws.AccountSession(*args, base_session=base, **kwargs)
            self.install_account(session.events)
            if journal is not None:
                journal.attach(session.events, session.account_id)
            if extra is not None:
                extra(session)
            return session

        return factory


def sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


# --- child processes ----------------------------------------------------------------------------


def spawn_worker(config: Mapping[str, Any], tmp: Path, name: str) -> subprocess.Popen[bytes]:
    """Start ``python -m tests.safety.crash_worker`` with ``config`` (see that module)."""
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(config))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "tests.safety.crash_worker", str(path)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish_worker(process: subprocess.Popen[bytes], timeout: float = 90) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out.decode(errors="replace")


# --- an enforcing STS in front of moto ----------------------------------------------------------


def enforcing_sts(trust: Mapping[str, str]) -> Callable[[], boto3.Session]:
    """A base-session factory whose ``AssumeRole`` is refused (AccessDenied, as AWS answers a
    wrong ExternalId) unless the request's ExternalId is the one ``trust[role_arn]`` expects.

    moto does not check ExternalIds; this ``before-send`` handler on the base boto3 session is
    the trust policy's ``sts:ExternalId`` condition. Roles not in ``trust`` pass through.
    """

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        body = _form(request.body)
        if body.get("Action") != "AssumeRole":
            return None
        role = body.get("RoleArn", "")
        if role in trust and body.get("ExternalId") != trust[role]:
            message = (
                f"User: arn:aws:iam::123456789012:user/cloudsweep is not authorized to perform: "
                f"sts:AssumeRole on resource: {role}"
            )
            xml = (
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                f"<Message>{message}</Message></Error><RequestId>enforced</RequestId></ErrorResponse>"
            ).encode()
            return AWSResponse(request.url, 403, {}, _Raw(xml))
        return None

    def factory() -> boto3.Session:
        session = boto3.Session()
        session.events.register("before-send.sts.AssumeRole", handler)
        return session

    return factory


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def monthly(value: str) -> Decimal:
    return Decimal(value).quantize(domain.CENTS)


# --- whose credentials moto saw -----------------------------------------------------------------

_CREDENTIAL_RE = re.compile(r"Credential=(?P<key>[^/]+)/")


class CredentialOracle:
    """Which account's credentials signed each request, as moto itself answers it.

    On the wire (``before-send`` of the sessions CloudSweep builds), every request's SigV4
    ``Credential=`` access key ID is recorded with its operation. The secret halves come from the
    ``AssumeRole`` answers moto gave the base session (``after-call``). Afterwards, for each access
    key seen, moto is asked ``GetCallerIdentity`` under exactly those credentials by a plain boto3
    client of the test: the account in moto's answer is the oracle, not CloudSweep's own label.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.issued: dict[str, dict[str, str]] = {}
        self.sent: list[tuple[str, str, str]] = []  # (service, operation, access key ID)
        self._lock = threading.Lock()

    def attach_base(self, events: Any) -> None:
        def issued(parsed: Any, **_: Any) -> None:
            creds = (parsed or {}).get("Credentials")
            if creds:
                with self._lock:
                    self.issued[creds["AccessKeyId"]] = dict(creds)

        events.register("after-call.sts.AssumeRole", issued, unique_id=f"oracle-{id(self)}")

    def attach(self, events: Any) -> None:
        def on_send(request: Any, event_name: str = "", **_: Any) -> None:
            header = request.headers.get("Authorization", b"")
            if isinstance(header, bytes):
                header = header.decode()
            match = _CREDENTIAL_RE.search(header)
            if match:
                _, service, operation = event_name.split(".", 2)
                with self._lock:
                    self.sent.append((service, operation, match.group("key")))

        events.register("before-send", on_send, unique_id=f"oracle-send-{id(self)}")

    def account_of(self, access_key: str) -> str:
        creds = self.issued.get(access_key)
        assert creds is not None, f"{access_key} was not issued by an AssumeRole this test saw"
        sts = boto3.client(
            "sts",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        return str(sts.get_caller_identity()["Account"])

    def accounts_seen(self, *, skip_services: tuple[str, ...] = ("sts",)) -> dict[str, int]:
        """Accounts (per moto) whose credentials signed the requests, with request counts."""
        counts: dict[str, int] = {}
        for service, _operation, key in self.sent:
            if service in skip_services:
                continue
            account = self.account_of(key)
            counts[account] = counts.get(account, 0) + 1
        return counts

    def session_factory(
        self, base_factory: Callable[[], boto3.Session] = boto3.Session
    ) -> Callable[..., aws.AccountSession]:
        def factory(*args: Any, **kwargs: Any) -> aws.AccountSession:
            base = kwargs.pop("base_session", None) or base_factory()
            self.attach_base(base.events)
            session = aws.AccountSession(*args, base_session=base, **kwargs)
            self.attach(session.events)
            return session

        return factory
