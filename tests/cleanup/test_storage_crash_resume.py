"""Crash and resume of the storage types' actions through the real executor and ledger.

The intent is recorded, the AWS call takes effect, its answer is lost (a read time-out at the
botocore layer): the attempt stays open ("interrupted"). The next run re-checks AWS, finds the
effect there and records the attempt as done once, without a second mutating call. Checked from
AWS (moto's state and the recorded calls) and from the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ReadTimeoutError

from cloudsweep import aws, cleaning, policies, scanning
from cloudsweep.cleanup import s3_multipart
from cloudsweep.demo import world as demo_world
from cloudsweep.demo.seeding import Account
from cloudsweep.settings import Settings
from cloudsweep.store import Store
from cloudsweep.store.engine import get_engine
from tests import faults

ORG = "storage-org"
ACTOR = "ops@example.com"
REGION = "us-east-1"


@dataclass(frozen=True)
class Case:
    resource_type: str
    action: str
    event_service: str  # botocore's event name of the service
    service: str  # the recorder's service name
    operation: str
    done: Callable[[Account, str], bool]  # is the effect there, seen from AWS
    parameters: dict[str, Any]


def _gp3(account: Account, volume_id: str) -> bool:
    (volume,) = account.ec2(REGION).describe_volumes(VolumeIds=[volume_id])["Volumes"]
    return volume["VolumeType"] == "gp3"


def _deregistered(account: Account, image_id: str) -> bool:
    return not account.ec2(REGION).describe_images(ImageIds=[image_id])["Images"]


def _retention(account: Account, name: str) -> bool:
    groups = account.logs(REGION).describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next(g for g in groups if g["logGroupName"] == name).get("retentionInDays") == 60


def _abort_rule(account: Account, bucket: str) -> bool:
    rules = account.s3(REGION).get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    return [r["ID"] for r in rules].count(s3_multipart.RULE_ID) == 1


CASES = [
    Case("ebs-gp3-candidate", "modify-to-gp3", "ec2", "ec2", "ModifyVolume", _gp3, {}),
    Case("ami", "deregister", "ec2", "ec2", "DeregisterImage", _deregistered, {}),
    Case(
        "cloudwatch-log-group",
        "set-retention",
        "cloudwatch-logs",
        "logs",
        "PutRetentionPolicy",
        _retention,
        {"retention_days": 60},
    ),
    Case(
        "s3-incomplete-multipart",
        "add-abort-multipart-rule",
        "s3",
        "s3",
        "PutBucketLifecycleConfiguration",
        _abort_rule,
        {},
    ),
]


@pytest.fixture
def world(moto_endpoint: str) -> demo_world.DemoWorld:
    return demo_world.seed_demo_world(moto_endpoint, regions=(REGION,))


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    # Takeover 0: the rerun reconciles the interrupted attempt at once (its worker is gone).
    return Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=2, cleanup_takeover_seconds=0)


@pytest.fixture
def store(database_url: str, world: demo_world.DemoWorld, settings: Settings) -> Store:
    store = Store(database_url)
    org = store.ensure_organization(ORG)
    account = store.register_account(
        org.id,
        account_id=world.account_id,
        role_arn=world.scanner_role_arn,
        external_id=world.external_id,
        regions=[REGION],
    )
    assert scanning.run_scan(store, account, settings=settings).scan.status == "completed"
    return store


def _policy(case: Case) -> policies.CleanupPolicy:
    return policies.parse_policy(
        {
            "name": f"storage-{case.resource_type}",
            "resourceType": case.resource_type,
            "action": case.action,
            "rules": {"minAgeDays": 0, "minConfidence": 50, "maxRiskLevel": "medium"},
            "requireApprovalAbove": "100000.00",
            "maxCostPerRun": "100000.00",
            "maxItemsPerRun": 1,
            "parameters": case.parameters,
            "dryRun": False,
        }
    )


def _rows(store: Store, resource_id: str) -> list[dict[str, Any]]:
    with get_engine(store.url).connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT a.status, a.rollback_data FROM cleanup_actions a JOIN waste_items w "
                "ON w.id = a.waste_item_id WHERE w.resource_id = :rid AND NOT a.dry_run"
            ),
            {"rid": resource_id},
        )
        return [dict(r._mapping) for r in rows]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.resource_type}/{c.action}")
def test_a_lost_answer_is_resumed_once_without_a_second_call(
    case: Case, store: Store, settings: Settings, world: demo_world.DemoWorld, moto_endpoint: str
) -> None:
    recorder = aws.CallRecorder()
    policy = _policy(case)

    def lossy(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)
        faults.lose_response(session.events, case.event_service, case.operation, times=1)
        return session

    options = cleaning.CleanupOptions(
        settings=settings, recorder=recorder, dry_run=False, actor_email=ACTOR
    )
    first = cleaning.run_cleanup(
        store,
        ORG,
        [policy],
        cleaning.CleanupOptions(
            settings=settings,
            recorder=recorder,
            dry_run=False,
            actor_email=ACTOR,
            session_factory=lossy,
        ),
    )
    [result] = first.results
    assert result.outcome == "interrupted", result.message
    account = Account(moto_endpoint, world.account_id)
    assert case.done(account, result.resource_id), "the call took effect; its answer was lost"
    assert [r["status"] for r in _rows(store, result.resource_id)] == ["started"]

    second = cleaning.run_cleanup(store, ORG, [policy], options)

    [again] = [r for r in second.results if r.item_id == result.item_id]
    assert again.outcome == "recovered", again.message
    mutations = [
        c
        for c in recorder.calls(operation=case.operation)
        if c.service == case.service
        and not c.params.get("DryRun")
        and result.resource_id in c.params.values()
    ]
    assert len(mutations) == 1, mutations
    assert case.done(account, result.resource_id)
    rows = _rows(store, result.resource_id)
    assert [r["status"] for r in rows] == ["succeeded"]
    assert rows[0]["rollback_data"], "the undo data recorded before the call is kept"


def test_a_resumed_modification_records_when_its_own_call_was_made(
    store: Store, settings: Settings, world: demo_world.DemoWorld, moto_endpoint: str
) -> None:
    """The first attempt records ``modify_requested_at`` and its ModifyVolume never leaves (a
    read time-out before the request is sent). The rerun makes the call: the ledger must say when
    that call was made, since the rollback's six-hour cooldown counts from it, not from the first
    attempt's time."""
    case = CASES[0]
    recorder = aws.CallRecorder()
    policy = _policy(case)
    first_at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    rerun_at = first_at + timedelta(hours=2)

    def never_sent(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, **kwargs)

        def lost(**_: Any) -> None:  # every try, retries included
            raise ReadTimeoutError(endpoint_url="injected://never-sent")

        session.events.register("before-call.ec2.ModifyVolume", lost)
        return session

    def options(at: datetime, **extra: Any) -> cleaning.CleanupOptions:
        return cleaning.CleanupOptions(
            settings=settings,
            recorder=recorder,
            dry_run=False,
            actor_email=ACTOR,
            now=lambda: at,
            **extra,
        )

    first = cleaning.run_cleanup(
        store, ORG, [policy], options(first_at, session_factory=never_sent)
    )
    [result] = first.results
    assert result.outcome == "interrupted", result.message
    account = Account(moto_endpoint, world.account_id)
    assert not case.done(account, result.resource_id), "the call never left"
    [intent] = _rows(store, result.resource_id)
    assert intent["rollback_data"]["modify_requested_at"] == first_at.isoformat()

    second = cleaning.run_cleanup(store, ORG, [policy], options(rerun_at))

    [again] = [r for r in second.results if r.item_id == result.item_id]
    assert again.outcome == "succeeded", again.message
    assert case.done(account, result.resource_id)
    [row] = _rows(store, result.resource_id)
    assert row["status"] == "succeeded"
    assert row["rollback_data"]["modify_requested_at"] == rerun_at.isoformat()
    assert (
        row["rollback_data"]["original_volume_type"]
        == intent["rollback_data"]["original_volume_type"]
    )
    modified = [
        c
        for c in recorder.calls(operation="ModifyVolume")
        if c.outcome == "ok" and result.resource_id in c.params.values()
    ]
    assert len(modified) == 1, modified
