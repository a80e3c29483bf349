"""The rds-instance ``stop`` and ``final-snapshot-and-delete`` actions against moto over HTTP.

Findings come from the real detector (a stopped instance; an available one with no CloudWatch
datapoints, which the detector reports with low confidence). Faults are injected at the botocore
event layer (``tests.faults``).

moto 5.2.5, as checked: deletion and restore are immediate (no ``deleting`` / ``creating``
states), so "delete in progress" is only reached through the code path that reads the status;
moto names its automated snapshots by the minute (``rds:<id>-YYYY-MM-DD-HH-MM``) and keeps them
after the delete (``DeleteAutomatedBackups=False``), so a restore under the same identifier
within the same minute collides with them; the tests remove those before a rollback (AWS names
automated backups differently and has no such clash). moto does not materialise default option
groups, which is why the restore leaves default parameter and option groups to RDS.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from cloudsweep import aws
from cloudsweep.cleanup import ACTION_TAG, ActionContext, CleanupItem, get
from cloudsweep.cleanup.rds_instance import (
    FinalSnapshotAndDeleteRdsInstance,
    StopRdsInstance,
    final_snapshot_identifier,
)
from cloudsweep.detectors.rds_instance import RdsInstanceDetector
from cloudsweep.domain import utcnow
from tests import faults

from .lb_rds_helpers import Harness, strip_volatile, tags_of

# moto moves it forward on every read
VOLATILE = frozenset({"ResponseMetadata", "LatestRestorableTime"})

DETECTOR = RdsInstanceDetector()
DELETE_CALLS = ("rds:DescribeDBInstances", "rds:DescribeDBSnapshots", "rds:DeleteDBInstance")
STOP_CALLS = ("rds:DescribeDBInstances", "rds:StopDBInstance")
STOP = StopRdsInstance()
DELETE = FinalSnapshotAndDeleteRdsInstance()
PARAMS = DELETE.parameters()
SEEDED_TAGS = [{"Key": "team", "Value": "data"}, {"Key": "env", "Value": "staging"}]
# The restore's arguments that place the instance: groups, subnets, zone, port.
RESTORED_PLACEMENT = (
    "DBParameterGroupName",
    "OptionGroupName",
    "DBSubnetGroupName",
    "AvailabilityZone",
    "MultiAZ",
    "Port",
)


@pytest.fixture
def h(moto_endpoint: str) -> Harness:
    return Harness(moto_endpoint)


def _db(
    h: Harness, identifier: str, *, stopped: bool = False, group: str = "db", **extra: object
) -> str:
    rds = h.seed("rds")
    ec2 = h.seed("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName=f"{identifier}-{group}", Description="db", VpcId=vpc)[
        "GroupId"
    ]
    params = {
        "DBInstanceIdentifier": identifier,
        "DBInstanceClass": "db.m5.large",
        "Engine": "postgres",
        "EngineVersion": "16.3",
        "AllocatedStorage": 200,
        "StorageType": "gp3",
        "Iops": 12000,
        "StorageThroughput": 500,
        "MasterUsername": "cloudsweep",
        "MasterUserPassword": "not-a-real-password",
        "Port": 5433,
        "VpcSecurityGroupIds": [sg],
        "BackupRetentionPeriod": 7,
        "Tags": [{"Key": "team", "Value": "data"}, {"Key": "env", "Value": "staging"}],
        **extra,
    }
    # ``None`` leaves a default parameter out (gp2 storage takes neither Iops nor throughput).
    rds.create_db_instance(**{k: v for k, v in params.items() if v is not None})
    if stopped:
        rds.stop_db_instance(DBInstanceIdentifier=identifier)
    return sg


def _describe(h: Harness, identifier: str) -> dict:
    return h.seed("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def _gone(h: Harness, identifier: str) -> bool:
    rds = h.seed("rds")
    try:
        rds.describe_db_instances(DBInstanceIdentifier=identifier)
    except rds.exceptions.DBInstanceNotFoundFault:
        return True
    return False


def _prepared_delete(h: Harness) -> tuple[CleanupItem, ActionContext, dict[str, Any]]:
    """A stopped reports-staging, its finding, a context, and the delete action's prepare."""
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    ctx = h.context()
    return item, ctx, DELETE.prepare(ctx, item, PARAMS, {})


def _drop_moto_automated_snapshots(h: Harness, identifier: str) -> None:
    rds = h.seed("rds")
    for snap in rds.describe_db_snapshots(
        DBInstanceIdentifier=identifier, SnapshotType="automated"
    )["DBSnapshots"]:
        rds.delete_db_snapshot(DBSnapshotIdentifier=snap["DBSnapshotIdentifier"])


def test_registered_once_under_their_keys():
    assert get("rds-instance", "stop") is StopRdsInstance
    assert get("rds-instance", "final-snapshot-and-delete") is FinalSnapshotAndDeleteRdsInstance
    assert STOP.rollback_possible and DELETE.rollback_possible
    assert "7 days" in (StopRdsInstance.__doc__ or "")


def test_final_snapshot_identifier_is_a_valid_rds_identifier():
    name = final_snapshot_identifier("reports--db-", "1a2b3c4d-0000-0000-0000-000000000000")
    assert name == "cloudsweep-final-reports-db-1a2b3c4d"
    long = final_snapshot_identifier("a" * 300, "ffffffff-0000")
    assert len(long) <= 255 and long.endswith("-ffffffff") and "--" not in long


# --- savings -------------------------------------------------------------------------------


def test_savings_are_the_cost_less_what_each_action_leaves_billed(h):
    """The finding's cost is what the instance costs now; an action saves that less what it
    leaves billed: the final snapshot (delete) or the storage (stop)."""
    _db(h, "reports-staging", stopped=True)
    _db(h, "analytics-dev")
    stopped = h.item(DETECTOR, "reports-staging")
    idle = h.item(DETECTOR, "analytics-dev")
    # us-east-1 gp3, 200 GiB, 12,000 IOPS, 500 MiB/s (baseline 3,000 and 125 below 400 GiB):
    # 200 x 0.115 + 9,000 x 0.02 + 375 x 0.08 = 233.00; db.m5.large PostgreSQL: 129.94.
    assert stopped.monthly_cost == Decimal("233.00")
    assert idle.monthly_cost == Decimal("362.94")

    # The final snapshot kept: 200 GiB of RDS snapshot storage x 0.095 = 19.00 a month.
    assert DELETE.estimated_monthly_savings(stopped) == Decimal("214.00")
    assert DELETE.estimated_monthly_savings(idle) == Decimal("343.94")
    # A stopped instance still pays for its storage: stopping saves the instance hours only.
    assert STOP.estimated_monthly_savings(idle) == Decimal("129.94")
    assert STOP.estimated_monthly_savings(stopped) == Decimal("0.00")


# --- final-snapshot-and-delete -------------------------------------------------------------


def test_delete_recheck_refusals(h):
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    rds = h.seed("rds")
    assert DELETE.recheck(h.context(), item).still_waste

    rds.modify_db_instance(
        DBInstanceIdentifier="reports-staging", DeletionProtection=True, ApplyImmediately=True
    )
    protected = DELETE.recheck(h.context(), item)
    rds.modify_db_instance(
        DBInstanceIdentifier="reports-staging", DeletionProtection=False, ApplyImmediately=True
    )
    arn = _describe(h, "reports-staging")["DBInstanceArn"]
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "do-not-delete", "Value": "1"}])
    tagged = DELETE.recheck(h.context(), item)
    rds.remove_tags_from_resource(ResourceName=arn, TagKeys=["do-not-delete"])
    rds.start_db_instance(DBInstanceIdentifier="reports-staging")
    started = DELETE.recheck(h.context(), item)
    rds.delete_db_instance(DBInstanceIdentifier="reports-staging", SkipFinalSnapshot=True)
    gone = DELETE.recheck(h.context(), item)

    assert not protected.still_waste
    assert protected.reason == "deletion protection is on (DeletionProtection)"
    assert not tagged.still_waste and "do-not-delete" in tagged.reason
    assert not started.still_waste
    assert started.reason == "it was stopped at the scan and is available now"
    # what the ledger records with each refusal: the instance as the re-check saw it
    assert protected.facts["deletion_protection"] is True
    assert tagged.facts["tags"]["do-not-delete"] == "1"
    assert started.facts["status"] == "available"
    assert not gone.still_waste and "no longer exists" in gone.reason
    assert h.mutating() == []


def test_delete_recheck_refuses_a_read_replica_source(h):
    _db(h, "analytics-dev")
    h.seed("rds").create_db_instance_read_replica(
        DBInstanceIdentifier="analytics-replica", SourceDBInstanceIdentifier="analytics-dev"
    )
    item = h.item(DETECTOR, "analytics-dev")

    result = DELETE.recheck(h.context(), item)

    assert not result.still_waste and "read replicas" in result.reason


def test_delete_dry_run_changes_nothing(h):
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    before = strip_volatile(_describe(h, "reports-staging"), VOLATILE)

    result = DELETE.dry_run(h.context(), item, PARAMS)

    assert result.would_succeed, result.message
    assert "rds:DeleteDBInstance" in result.calls
    assert h.mutating() == []
    assert strip_volatile(_describe(h, "reports-staging"), VOLATILE) == before
    assert h.seed("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []

    h.seed("rds").modify_db_instance(
        DBInstanceIdentifier="reports-staging", DeletionProtection=True, ApplyImmediately=True
    )
    refused = DELETE.dry_run(h.context(), item, PARAMS)
    assert not refused.would_succeed
    assert refused.message == (
        "DeleteDBInstance would fail: deletion protection is on for reports-staging"
    )
    # the permissions the delete needs, as the dry-run report lists them, refused or not
    assert result.calls == refused.calls == DELETE_CALLS


def test_prepare_records_what_restore_needs(h):
    sg = _db(h, "reports-staging", stopped=True, StorageEncrypted=True)
    item = h.item(DETECTOR, "reports-staging")
    now = utcnow()
    ctx = dataclasses.replace(h.context(), now=lambda: now)

    data = DELETE.prepare(ctx, item, PARAMS, {})
    # a finding stored without its ARN: the record takes RDS's
    without_arn = DELETE.prepare(ctx, dataclasses.replace(item, resource_arn=None), PARAMS, {})

    assert h.checkpoints == data and h.mutating() == []
    assert without_arn == data
    assert data["db_instance_arn"] == _describe(h, "reports-staging")["DBInstanceArn"]
    assert data["storage_encrypted"] is True and data["recorded_at"] == now.isoformat()
    assert data["final_snapshot_identifier"] == (
        f"cloudsweep-final-reports-staging-{str(ctx.action_id)[:8]}"
    )
    assert data["engine"] == "postgres" and data["engine_version"] == "16.3"
    assert data["status_before"] == "stopped"
    restore = data["restore"]
    assert restore["DBInstanceClass"] == "db.m5.large"
    assert restore["StorageType"] == "gp3" and restore["AllocatedStorage"] == 200
    assert restore["Iops"] == 12000 and restore["StorageThroughput"] == 500
    assert restore["MultiAZ"] is False and restore["Port"] == 5433
    assert restore["VpcSecurityGroupIds"] == [sg]
    assert restore["BackupRetentionPeriod"] == 7
    assert restore["DeletionProtection"] is False
    assert tags_of(data["tags"]) == {"team": "data", "env": "staging"}
    assert DELETE.prepare(h.context(), item, PARAMS, data) == data  # a rerun keeps the record
    # switched on after the re-check: recorded as it is (the delete will then fail)
    h.seed("rds").modify_db_instance(
        DBInstanceIdentifier="reports-staging", DeletionProtection=True, ApplyImmediately=True
    )
    assert DELETE.prepare(h.context(), item, PARAMS, {})["restore"]["DeletionProtection"] is True


def test_execute_deletes_with_a_final_snapshot(h):
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    ctx = h.context()
    # The name recorded before the call is the one the delete gives, whatever this version
    # would name it now (the record of an interrupted attempt made by an earlier version).
    data = {
        **DELETE.prepare(ctx, item, PARAMS, {}),
        "final_snapshot_identifier": "cloudsweep-final-reports-staging-recorded",
    }

    outcome = DELETE.execute(ctx, item, PARAMS, data)

    assert not outcome.already_done
    assert _gone(h, "reports-staging")
    (call,) = h.recorder.mutating()
    assert call.operation == "DeleteDBInstance"
    assert call.params["FinalDBSnapshotIdentifier"] == data["final_snapshot_identifier"]
    assert call.params["SkipFinalSnapshot"] is False
    assert call.params["DeleteAutomatedBackups"] is False
    snapshot = h.seed("rds").describe_db_snapshots(
        DBSnapshotIdentifier=data["final_snapshot_identifier"]
    )["DBSnapshots"][0]
    assert snapshot["DBInstanceIdentifier"] == "reports-staging"


def test_an_instance_deleted_meanwhile_by_someone_else_is_gone_without_a_final_snapshot(h):
    """Deleted (without a final snapshot) between the re-read and DeleteDBInstance: done, and
    the outcome says that nothing can be rolled back."""
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    faults.on_call(
        h.session.events,
        "rds",
        "DeleteDBInstance",
        lambda: h.seed("rds").delete_db_instance(
            DBInstanceIdentifier="reports-staging", SkipFinalSnapshot=True
        ),
    )
    ctx = h.context()
    data = DELETE.prepare(ctx, item, PARAMS, {})

    outcome = DELETE.execute(ctx, item, PARAMS, data)

    snapshot = data["final_snapshot_identifier"]
    assert outcome.already_done
    assert outcome.note == (
        f"reports-staging is already gone, but the final snapshot {snapshot} is missing: "
        "rollback will not be possible"
    )
    assert h.recorder.count(operation="DeleteDBInstance") == 1  # refused: DBInstanceNotFound


def test_lost_delete_response_then_retry_is_one_delete(h):
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    lost = faults.lose_response(h.session.events, "rds", "DeleteDBInstance")
    ctx = h.context()
    data = DELETE.prepare(ctx, item, PARAMS, {})

    with pytest.raises(aws.AwsError):
        DELETE.execute(ctx, item, PARAMS, data)
    outcome = DELETE.execute(ctx, item, PARAMS, data)

    assert lost.hits == 1
    assert outcome.already_done and "final snapshot" in outcome.note
    assert "missing" not in outcome.note
    assert h.recorder.count(operation="DeleteDBInstance") == 1
    manual = h.seed("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"] for s in manual] == [data["final_snapshot_identifier"]]


def test_gone_without_its_final_snapshot_is_done_but_says_so(h):
    item, ctx, data = _prepared_delete(h)
    h.seed("rds").delete_db_instance(DBInstanceIdentifier="reports-staging", SkipFinalSnapshot=True)

    outcome = DELETE.execute(ctx, item, PARAMS, data)

    assert outcome.already_done and "is missing" in outcome.note
    assert h.mutating() == []


def test_snapshot_exists_while_the_instance_remains_refuses_a_second_snapshot(h):
    item, ctx, data = _prepared_delete(h)
    # what an earlier attempt that failed after its snapshot leaves behind
    h.seed("rds").create_db_snapshot(
        DBInstanceIdentifier="reports-staging",
        DBSnapshotIdentifier=data["final_snapshot_identifier"],
    )

    with pytest.raises(aws.AwsError) as raised:
        DELETE.execute(ctx, item, PARAMS, data)

    assert raised.value.code == "DBSnapshotAlreadyExists"
    assert "refusing" in raised.value.message
    assert not _gone(h, "reports-staging")
    manual = h.seed("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    assert len(manual) == 1


def test_throttled_delete_is_a_throttled_error_and_nothing_is_deleted(h):
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    throttled = faults.throttle(h.session.events, "rds", "DeleteDBInstance")
    ctx = h.context()
    data = DELETE.prepare(ctx, item, PARAMS, {})

    with pytest.raises(aws.AwsError) as raised:
        DELETE.execute(ctx, item, PARAMS, data)

    assert raised.value.kind is aws.ErrorKind.THROTTLED and throttled.hits == 2
    assert str(raised.value) == (
        "rds:DeleteDBInstance in us-east-1 failed (throttled, Throttling): Rate exceeded"
    )
    assert not _gone(h, "reports-staging")


def test_rollback_restores_the_recorded_instance_and_is_idempotent(h):
    sg = _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    before = _describe(h, "reports-staging")
    ctx = h.context()
    data = DELETE.prepare(ctx, item, PARAMS, {})
    DELETE.execute(ctx, item, PARAMS, data)
    _drop_moto_automated_snapshots(h, "reports-staging")
    undo = h.context()

    outcome = DELETE.rollback(undo, data, PARAMS)

    assert not outcome.already_done
    # What RDS was asked for: the recorded configuration, and no default parameter or option
    # group (RDS applies the engine's defaults itself; naming them fails where they are not
    # materialised yet). moto restores much of it from the snapshot whatever the call says.
    (restore,) = [c for c in h.recorder.records if c.operation == "RestoreDBInstanceFromDBSnapshot"]
    assert restore.params == {
        "DBInstanceIdentifier": "reports-staging",
        "DBSnapshotIdentifier": data["final_snapshot_identifier"],
        "Tags": [
            {"Key": "team", "Value": "data"},
            {"Key": "env", "Value": "staging"},
            {"Key": ACTION_TAG, "Value": str(undo.action_id)},
        ],
        "DBInstanceClass": "db.m5.large",
        "StorageType": "gp3",
        "AllocatedStorage": 200,
        "Iops": 12000,
        "StorageThroughput": 500,
        "MultiAZ": False,
        "AutoMinorVersionUpgrade": True,
        "LicenseModel": "general-public-license",
        "CopyTagsToSnapshot": False,
        "EnableIAMDatabaseAuthentication": False,
        "DeletionProtection": False,
        "CACertificateIdentifier": "rds-ca-default",
        "BackupRetentionPeriod": 7,
        "PreferredBackupWindow": before["PreferredBackupWindow"],
        "Port": 5433,
        "AvailabilityZone": "us-east-1a",
        "VpcSecurityGroupIds": [sg],
    }
    db = _describe(h, "reports-staging")
    assert db["DBInstanceStatus"] == "available"
    assert db["DBInstanceClass"] == "db.m5.large"
    assert db["Engine"] == "postgres" and db["EngineVersion"] == "16.3"
    assert db["StorageType"] == "gp3" and db["AllocatedStorage"] == 200
    assert db["Iops"] == 12000 and db["StorageThroughput"] == 500
    assert db["Endpoint"]["Port"] == 5433
    assert [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]] == [sg]
    assert tags_of(db["TagList"]) == {
        "team": "data",
        "env": "staging",
        ACTION_TAG: str(undo.action_id),
    }

    again = DELETE.rollback(undo, data, PARAMS)

    assert again.already_done
    assert h.recorder.count(operation="RestoreDBInstanceFromDBSnapshot") == 1


def test_rollback_refuses_an_instance_it_did_not_restore(h):
    item, ctx, data = _prepared_delete(h)
    DELETE.execute(ctx, item, PARAMS, data)
    _drop_moto_automated_snapshots(h, "reports-staging")
    _db(h, "reports-staging", group="other")  # someone made a new one under the name

    with pytest.raises(aws.AwsError) as raised:
        DELETE.rollback(h.context(), data, PARAMS)

    assert raised.value.code == "DBInstanceAlreadyExists"


# --- stop ----------------------------------------------------------------------------------


def test_stop_recheck_refusals(h):
    _db(h, "analytics-dev")
    item = h.item(DETECTOR, "analytics-dev")
    assert STOP.recheck(h.context(), item).still_waste
    rds = h.seed("rds")
    arn = _describe(h, "analytics-dev")["DBInstanceArn"]

    rds.add_tags_to_resource(
        ResourceName=arn, Tags=[{"Key": "cloudsweep.io/protect", "Value": "y"}]
    )
    tagged = STOP.recheck(h.context(), item)
    rds.remove_tags_from_resource(ResourceName=arn, TagKeys=["cloudsweep.io/protect"])
    rds.stop_db_instance(DBInstanceIdentifier="analytics-dev")
    stopped = STOP.recheck(h.context(), item)

    assert not tagged.still_waste and "cloudsweep.io/protect" in tagged.reason
    assert not stopped.still_waste and "already stopped" in stopped.reason
    assert h.mutating() == []


def test_stop_dry_run_execute_lost_response_and_rollback(h):
    _db(h, "analytics-dev")
    item = h.item(DETECTOR, "analytics-dev")
    lost = faults.lose_response(h.session.events, "rds", "StopDBInstance")
    ctx = h.context()

    dry = STOP.dry_run(ctx, item, PARAMS)
    assert dry.would_succeed and dry.calls == ("rds:DescribeDBInstances", "rds:StopDBInstance")
    assert h.mutating() == [] and _describe(h, "analytics-dev")["DBInstanceStatus"] == "available"

    data = STOP.prepare(ctx, item, PARAMS, {})
    assert data["status_before"] == "available" and h.checkpoints == data

    with pytest.raises(aws.AwsError):
        STOP.execute(ctx, item, PARAMS, data)
    outcome = STOP.execute(ctx, item, PARAMS, data)
    assert lost.hits == 1 and outcome.already_done
    assert _describe(h, "analytics-dev")["DBInstanceStatus"] == "stopped"

    undo = STOP.rollback(h.context(), data, PARAMS)
    assert not undo.already_done
    assert _describe(h, "analytics-dev")["DBInstanceStatus"] == "available"
    assert STOP.rollback(h.context(), data, PARAMS).already_done


# --- what the re-checks, dry runs and undo decide beyond the happy path --------------------


def _connections(h: Harness, identifier: str, peak: float, *, hours_ago: float = 1) -> None:
    h.seed("cloudwatch").put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "DatabaseConnections",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}],
                "Value": peak,
                "Timestamp": utcnow() - timedelta(hours=hours_ago),
            }
        ],
    )


def _scanned_with(item: CleanupItem, **details: object) -> CleanupItem:
    """The item as a scan with other detector parameters (or an older scan) would have stored it."""
    return dataclasses.replace(item, resource_details={**item.resource_details, **details})


def test_rechecks_refuse_connections_above_the_scans_own_threshold(h):
    """The scan judged the instance idle at <= max_connections (here 3): a peak of 3 in the last
    day keeps it idle, 4 refuses both actions; a finding without the threshold is held to 0
    (a single connection refuses it).

    The query is asserted as CloudWatch received it: moto 5.2.5 ignores the namespace when
    dimensions are given and checks neither the query's Id (AWS: a lower-case letter first) nor
    the period (AWS: a multiple of 60), so a wrong one passes here and fails (or finds no
    connections) on AWS. The window is the day up to the re-check's minute."""
    _db(h, "analytics-dev")
    _db(h, "reports-dev")
    _db(h, "quiet-dev")
    item = _scanned_with(h.item(DETECTOR, "analytics-dev"), max_connections=3)
    older = _scanned_with(h.item(DETECTOR, "analytics-dev"), max_connections=None)
    quiet = _scanned_with(h.item(DETECTOR, "quiet-dev"), max_connections=None)
    _connections(h, "reports-dev", 50)  # another instance's connections say nothing
    _connections(h, "analytics-dev", 40, hours_ago=30)  # before the last day: not looked at
    _connections(h, "analytics-dev", 3)
    _connections(h, "quiet-dev", 1)
    now = utcnow().replace(second=42, microsecond=123456)
    at_minute = dataclasses.replace(h.context(), now=lambda: now)

    at_threshold = [a.recheck(at_minute, item) for a in (STOP, DELETE)]
    held_to_zero = [a.recheck(h.context(), c) for a in (STOP, DELETE) for c in (older, quiet)]
    _connections(h, "analytics-dev", 4, hours_ago=2)
    above = [a.recheck(h.context(), item) for a in (STOP, DELETE)]

    assert all(r.still_waste for r in at_threshold), at_threshold
    assert not any(r.still_waste for r in held_to_zero), held_to_zero
    assert held_to_zero[1].reason == (
        "in use since the scan: 1 connections at the peak of the last day (idle at <= 0)"
    )
    for refused in above:
        assert not refused.still_waste and refused.facts["status"] == "available"
        assert refused.reason == (
            "in use since the scan: 4 connections at the peak of the last day (idle at <= 3)"
        )
    minute = now.replace(second=0, microsecond=0)
    query = {
        "Id": "connections",
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/RDS",
                "MetricName": "DatabaseConnections",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": "analytics-dev"}],
            },
            "Period": 3600,
            "Stat": "Maximum",
        },
    }
    window = {"StartTime": minute - timedelta(days=1), "EndTime": minute}
    first, second = [c.params for c in h.recorder.records if c.operation == "GetMetricData"][:2]
    assert first == second == {"MetricDataQueries": [query], **window}
    assert h.mutating() == []


def test_a_recheck_that_cannot_read_the_connections_fails_and_names_the_call(h):
    _db(h, "analytics-dev")
    item = h.item(DETECTOR, "analytics-dev")
    faults.throttle_json(h.session.events, "cloudwatch", "GetMetricData")

    for action in (STOP, DELETE):
        with pytest.raises(aws.AwsError) as raised:
            action.recheck(h.context(), item)
        assert str(raised.value) == (
            "cloudwatch:GetMetricData in us-east-1 failed (throttled, Throttling): Rate exceeded"
        )
    assert h.mutating() == []


def test_delete_recheck_of_a_stopped_instance_ignores_connections_before_the_stop(h):
    """A stopped instance has no connections: those of the hours before it was stopped do not
    make it busy (the scan reports a stopped instance whatever its metrics said)."""
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    _connections(h, "reports-staging", 25)

    result = DELETE.recheck(h.context(), item)

    assert result.still_waste, result.reason


def test_rechecks_refuse_an_aurora_member_and_a_read_replica(h):
    """Storage, stop and deletion of an Aurora member belong to its cluster; RDS can neither
    stop a read replica nor snapshot it: both actions refuse, and say why."""
    _db(h, "analytics-dev")
    rds = h.seed("rds")
    for replica_id in ("analytics-replica", "analytics-replica-2"):
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=replica_id, SourceDBInstanceIdentifier="analytics-dev"
        )
    rds.create_db_cluster(
        DBClusterIdentifier="orders",
        Engine="aurora-postgresql",
        MasterUsername="cloudsweep",
        MasterUserPassword="not-a-real-password",
    )
    rds.create_db_instance(
        DBInstanceIdentifier="orders-1",
        DBInstanceClass="db.r5.large",
        Engine="aurora-postgresql",
        DBClusterIdentifier="orders",
    )
    source = h.item(DETECTOR, "analytics-dev")
    replica = h.item(DETECTOR, "analytics-replica")
    # The scan never reports cluster members; an item under that name is one the instance
    # became (or one a store holds from elsewhere): the re-check reads what AWS says now.
    member = dataclasses.replace(source, resource_id="orders-1")

    for action in (STOP, DELETE):
        on_source = action.recheck(h.context(), source)
        on_replica = action.recheck(h.context(), replica)
        on_member = action.recheck(h.context(), member)
        assert not on_source.still_waste
        assert on_source.reason == (
            "read replicas replicate from it (analytics-replica, analytics-replica-2)"
        )
        assert not on_replica.still_waste
        assert on_replica.reason == (
            "it is a read replica of analytics-dev: RDS can neither stop it nor take a final "
            "snapshot of it"
        )
        assert not on_member.still_waste
        assert on_member.reason == (
            "it is a member of Aurora cluster orders: storage, stop and deletion belong to the "
            "cluster"
        )
        assert on_member.facts["engine"] == "aurora-postgresql"
    assert h.mutating() == []


def test_rechecks_report_the_facts_the_executor_applies_its_rules_to(h):
    _db(h, "analytics-dev", DeletionProtection=False)
    item = h.item(DETECTOR, "analytics-dev")

    for action in (STOP, DELETE):
        facts = action.recheck(h.context(), item).facts
        assert facts["status"] == "available" and facts["deletion_protection"] is False
        assert facts["instance_class"] == "db.m5.large" and facts["engine"] == "postgres"
        assert facts["tags"] == {"team": "data", "env": "staging"}


def test_rechecks_refuse_an_instance_in_between_states_and_a_stop_under_way_is_done(h):
    """RDS refuses to stop or delete an instance that is being modified or backed up; a stop
    already under way (``stopping``) is the stop's effect. moto never reports these states, so
    its answers are rewritten as AWS sends them."""
    _db(h, "analytics-dev")
    item = h.item(DETECTOR, "analytics-dev")
    modifying, stopping = Harness(h.endpoint), Harness(h.endpoint)
    _report(modifying, "DescribeDBInstances", "DBInstances", "DBInstanceStatus", "modifying")
    _report(stopping, "DescribeDBInstances", "DBInstances", "DBInstanceStatus", "stopping")

    stop, delete = (a.recheck(modifying.context(), item) for a in (STOP, DELETE))
    under_way = STOP.recheck(stopping.context(), item)

    assert not stop.still_waste and stop.reason == "status is modifying, not available"
    assert not delete.still_waste
    assert delete.reason == "status is modifying, not available or stopped"
    assert stop.facts["status"] == delete.facts["status"] == "modifying"
    assert not under_way.still_waste and under_way.facts["gone"] is True
    assert under_way.reason == "already stopping: stopping it again changes nothing"
    assert under_way.facts["status"] == "stopping"
    assert h.mutating() == []


def test_stop_dry_run_refuses_a_stopped_or_missing_instance(h):
    _db(h, "analytics-dev")
    item = h.item(DETECTOR, "analytics-dev")
    ctx = h.context()
    available = DELETE.dry_run(ctx, item, PARAMS)  # an available instance can be deleted too
    h.seed("rds").stop_db_instance(DBInstanceIdentifier="analytics-dev")

    stopped = STOP.dry_run(h.context(), item, PARAMS)
    h.seed("rds").delete_db_instance(DBInstanceIdentifier="analytics-dev", SkipFinalSnapshot=True)
    missing = STOP.dry_run(h.context(), item, PARAMS)
    delete_missing = DELETE.dry_run(h.context(), item, PARAMS)

    snapshot = final_snapshot_identifier("analytics-dev", ctx.action_id)
    assert available.would_succeed
    assert available.message == f"would delete analytics-dev with final snapshot {snapshot}"
    assert not stopped.would_succeed
    assert stopped.message == "StopDBInstance would fail: analytics-dev is stopped"
    assert not missing.would_succeed and missing.message == "analytics-dev no longer exists"
    assert stopped.calls == missing.calls == STOP_CALLS
    assert not delete_missing.would_succeed and delete_missing.calls == DELETE_CALLS
    assert h.mutating() == []


def test_delete_dry_run_refuses_a_taken_snapshot_name_and_a_missing_instance(h):
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    ctx = h.context()
    assert DELETE.dry_run(ctx, item, PARAMS).would_succeed
    snapshot = final_snapshot_identifier("reports-staging", ctx.action_id)
    h.seed("rds").create_db_snapshot(
        DBInstanceIdentifier="reports-staging", DBSnapshotIdentifier=snapshot
    )

    taken = DELETE.dry_run(ctx, item, PARAMS)
    other = DELETE.dry_run(h.context(), item, PARAMS)  # another action picks another name
    h.seed("rds").start_db_instance(DBInstanceIdentifier="reports-staging")
    started = DELETE.dry_run(h.context(), item, PARAMS)  # an available one can be deleted too
    h.seed("rds").delete_db_instance(DBInstanceIdentifier="reports-staging", SkipFinalSnapshot=True)
    missing = DELETE.dry_run(ctx, item, PARAMS)

    assert not taken.would_succeed and taken.calls == DELETE_CALLS
    assert taken.message == f"a snapshot named {snapshot} exists already; it would not be replaced"
    assert other.would_succeed, other.message
    assert started.would_succeed, started.message
    assert not missing.would_succeed and missing.calls == DELETE_CALLS
    assert missing.message == "reports-staging no longer exists"
    assert h.mutating() == []


def test_stop_of_a_missing_instance_is_done_and_its_undo_fails(h):
    """Nothing left to stop is done (no error); starting it again cannot be, and says so."""
    _db(h, "analytics-dev")
    item = h.item(DETECTOR, "analytics-dev")
    ctx = h.context()
    data = STOP.prepare(ctx, item, PARAMS, {})
    h.seed("rds").delete_db_instance(DBInstanceIdentifier="analytics-dev", SkipFinalSnapshot=True)

    outcome = STOP.execute(ctx, item, PARAMS, data)
    with pytest.raises(aws.AwsError) as raised:
        STOP.rollback(h.context(), data, PARAMS)

    assert outcome.already_done and "no longer exists" in outcome.note
    assert raised.value.kind is aws.ErrorKind.NOT_FOUND
    # the failure names the call that failed (and so the permission, were it refused)
    assert str(raised.value).startswith(
        "rds:StartDBInstance in us-east-1 failed (not-found, DBInstanceNotFound): "
    )
    assert h.recorder.count(operation="StartDBInstance") == 1  # tried, refused by AWS


def test_stop_prepare_records_the_instance_and_keeps_an_earlier_record(h):
    _db(h, "analytics-dev")
    item = h.item(DETECTOR, "analytics-dev")
    arn = _describe(h, "analytics-dev")["DBInstanceArn"]

    data = STOP.prepare(h.context(), item, PARAMS, {})
    # a finding stored without its ARN: the record takes RDS's
    without_arn = STOP.prepare(
        h.context(), dataclasses.replace(item, resource_arn=None), PARAMS, {}
    )
    earlier = {"db_instance_identifier": "analytics-dev", "status_before": "available"}
    kept = STOP.prepare(h.context(), item, PARAMS, earlier)

    assert data == {
        "db_instance_identifier": "analytics-dev",
        "db_instance_arn": arn,
        "status_before": "available",
    }
    assert without_arn == data
    assert kept == earlier and h.mutating() == []


def test_delete_prepare_of_a_missing_instance_records_nothing(h):
    _db(h, "reports-staging", stopped=True)
    item = h.item(DETECTOR, "reports-staging")
    h.seed("rds").delete_db_instance(DBInstanceIdentifier="reports-staging", SkipFinalSnapshot=True)

    with pytest.raises(aws.AwsError) as raised:
        DELETE.prepare(h.context(), item, PARAMS, {})

    assert raised.value.kind is aws.ErrorKind.NOT_FOUND
    assert str(raised.value) == (
        "rds:DescribeDBInstances in us-east-1 failed (not-found, DBInstanceNotFound): "
        "reports-staging is gone before its configuration was recorded"
    )
    assert h.checkpoints == {}


def test_delete_rollback_without_its_final_snapshot_restores_nothing(h):
    item, ctx, data = _prepared_delete(h)
    DELETE.execute(ctx, item, PARAMS, data)
    _drop_moto_automated_snapshots(h, "reports-staging")
    h.seed("rds").delete_db_snapshot(DBSnapshotIdentifier=data["final_snapshot_identifier"])

    with pytest.raises(aws.AwsError) as raised:
        DELETE.rollback(h.context(), data, PARAMS)

    assert raised.value.code == "DBSnapshotNotFound"
    assert raised.value.kind is aws.ErrorKind.NOT_FOUND
    assert h.recorder.count(operation="RestoreDBInstanceFromDBSnapshot") == 0
    assert _gone(h, "reports-staging")


def test_rollback_restores_groups_subnets_and_zone_of_a_single_az_instance(h):
    """Non-default parameter and option groups, the subnet group and the zone of a single-AZ
    instance come back; gp2 storage is restored without the IOPS AWS reports for it."""
    rds, ec2 = h.seed("rds"), h.seed("ec2")
    rds.create_db_parameter_group(
        DBParameterGroupName="reports-params", DBParameterGroupFamily="postgres13", Description="r"
    )
    rds.create_option_group(
        OptionGroupName="reports-options",
        EngineName="postgres",
        MajorEngineVersion="13",
        OptionGroupDescription="r",
    )
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    rds.create_db_subnet_group(
        DBSubnetGroupName="reports-subnets", DBSubnetGroupDescription="r", SubnetIds=subnets
    )
    _db(
        h,
        "reports-staging",
        stopped=True,
        EngineVersion="13.7",
        StorageType="gp2",
        Iops=None,
        StorageThroughput=None,
        AllocatedStorage=100,
        DBParameterGroupName="reports-params",
        OptionGroupName="reports-options",
        DBSubnetGroupName="reports-subnets",
        AvailabilityZone="us-east-1b",
    )
    item = h.item(DETECTOR, "reports-staging")
    ctx = h.context()
    data = DELETE.prepare(ctx, item, PARAMS, {})
    DELETE.execute(ctx, item, PARAMS, data)
    _drop_moto_automated_snapshots(h, "reports-staging")

    DELETE.rollback(h.context(), data, PARAMS)

    db = _describe(h, "reports-staging")
    assert [g["DBParameterGroupName"] for g in db["DBParameterGroups"]] == ["reports-params"]
    assert [g["OptionGroupName"] for g in db["OptionGroupMemberships"]] == ["reports-options"]
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == "reports-subnets"
    assert db["AvailabilityZone"] == "us-east-1b" and db["StorageType"] == "gp2"
    (restore,) = [c for c in h.recorder.records if c.operation == "RestoreDBInstanceFromDBSnapshot"]
    assert "Iops" not in restore.params and "StorageThroughput" not in restore.params
    # asked for by name (moto would restore some of them from the snapshot anyway)
    assert {k: restore.params.get(k) for k in RESTORED_PLACEMENT} == {
        "DBParameterGroupName": "reports-params",
        "OptionGroupName": "reports-options",
        "DBSubnetGroupName": "reports-subnets",
        "AvailabilityZone": "us-east-1b",
        "MultiAZ": False,
        "Port": 5433,
    }


_ABSENT = object()


def _answer_with(h: Harness, **fields: object) -> None:
    """Every instance in ``h``'s DescribeDBInstances answers reports ``fields`` (``_ABSENT``: the
    field left out), as AWS reports what moto reports otherwise."""

    def rewrite(parsed, **_):
        for db in parsed.get("DBInstances", []):
            for name, value in fields.items():
                if value is _ABSENT:
                    db.pop(name, None)
                else:
                    db[name] = value

    h.session.events.register("after-call.rds.DescribeDBInstances", rewrite)


@pytest.mark.parametrize(
    ("create", "reported", "asked"),
    [
        pytest.param(
            {"StorageType": "gp2", "Iops": None, "StorageThroughput": None},
            # AWS reports gp2's baseline IOPS, a throughput of 0, the instance port 0 (only a
            # cluster member's differs), and a tag without a value without its Value; an empty
            # field is left to RDS's default
            {
                "Iops": 300,
                "StorageThroughput": 0,
                "DbInstancePort": 0,
                "TagList": [{"Key": "team", "Value": "data"}, {"Key": "owner"}],
                "CACertificateIdentifier": "",
                "EnabledCloudwatchLogsExports": [],
            },
            {
                "StorageType": "gp2",
                "Port": 5433,
                "AvailabilityZone": "us-east-1a",
                "Tags": [{"Key": "team", "Value": "data"}, {"Key": "owner", "Value": ""}],
            },
            id="gp2-as-aws-reports-it",
        ),
        pytest.param(
            {"StorageType": "io1", "Iops": 3000, "StorageThroughput": None},
            {},
            {
                "StorageType": "io1",
                "Iops": 3000,
                "Port": 5433,
                "AvailabilityZone": "us-east-1a",
                "Tags": SEEDED_TAGS,
            },
            id="io1",
        ),
        pytest.param(
            {"StorageType": "io2", "Iops": 4000, "StorageThroughput": None},
            {"StorageThroughput": 0},
            {
                "StorageType": "io2",
                "Iops": 4000,
                "Port": 5433,
                "AvailabilityZone": "us-east-1a",
                "Tags": SEEDED_TAGS,
            },
            id="io2",
        ),
        pytest.param(
            {"MultiAZ": True},
            {},
            # RDS picks the zones of a Multi-AZ instance: a zone with MultiAZ is refused
            {
                "StorageType": "gp3",
                "Iops": 12000,
                "StorageThroughput": 500,
                "Port": 5433,
                "Tags": SEEDED_TAGS,
            },
            id="multi-az",
        ),
        pytest.param(
            {},
            {"Endpoint": _ABSENT, "DbInstancePort": 5433},
            {
                "StorageType": "gp3",
                "Iops": 12000,
                "StorageThroughput": 500,
                "Port": 5433,
                "AvailabilityZone": "us-east-1a",
                "Tags": SEEDED_TAGS,
            },
            id="no-endpoint-in-the-answer",
        ),
    ],
)
def test_the_restore_asks_for_the_storage_zone_and_port_the_instance_had(
    h, create, reported, asked
):
    """IOPS only for provisioned-IOPS storage (io1, io2, gp3), throughput only for gp3, the zone
    only of a single-AZ instance, the port from the endpoint (else the instance's own port),
    a tag's missing value as an empty one: what RestoreDBInstanceFromDBSnapshot accepts."""
    _db(h, "reports-staging", stopped=True, **create)
    item = h.item(DETECTOR, "reports-staging")
    as_aws = Harness(h.endpoint)
    _answer_with(as_aws, **reported)
    ctx = h.context()
    data = DELETE.prepare(as_aws.context(ctx.action_id), item, PARAMS, {})
    DELETE.execute(ctx, item, PARAMS, data)
    _drop_moto_automated_snapshots(h, "reports-staging")

    undo = h.context()
    DELETE.rollback(undo, data, PARAMS)

    (restore,) = [c for c in h.recorder.records if c.operation == "RestoreDBInstanceFromDBSnapshot"]
    looked_at = ("StorageType", "Iops", "StorageThroughput", "Port", "AvailabilityZone", "Tags")
    given = {k: restore.params[k] for k in looked_at if k in restore.params}
    *tags, marker = given.pop("Tags")
    assert marker == {"Key": ACTION_TAG, "Value": str(undo.action_id)}
    assert {**given, "Tags": tags} == asked
    assert restore.params["MultiAZ"] is bool(create.get("MultiAZ"))
    assert [k for k, v in restore.params.items() if v in ("", [])] == []
    assert _describe(h, "reports-staging")["DBInstanceStatus"] == "available"


# --- what the user reads: outcomes, notes and refusals, exactly -----------------------------
#
# An outcome's response goes into the ledger (``aws_response``) and its note into the action's
# history; an error's ``str()`` is the failure the policy's status shows. moto deletes and
# restores at once, so the states AWS reports meanwhile (``deleting``, a snapshot still
# ``creating``) are put into moto's answers on their way back, as AWS would send them.


def _report(h: Harness, operation: str, key: str, field: str, value: str, *, after: int = 0):
    """Rewrite ``field`` of every entry of ``key`` in the answers to ``operation``, from the
    call after the first ``after`` on (those are left as moto sent them)."""
    seen = []

    def rewrite(parsed, **_):
        seen.append(operation)
        if len(seen) > after:
            for entry in parsed.get(key, []):
                entry[field] = value

    h.session.events.register(f"after-call.rds.{operation}", rewrite)


def test_a_delete_in_progress_is_done_once_and_says_so(h):
    """An earlier attempt's delete still running (AWS: ``deleting``, its final snapshot being
    made): no second delete; the outcome names the state and the final snapshot."""
    item, ctx, data = _prepared_delete(h)
    snapshot = data["final_snapshot_identifier"]
    h.seed("rds").create_db_snapshot(
        DBInstanceIdentifier="reports-staging", DBSnapshotIdentifier=snapshot
    )
    later = Harness(h.endpoint)  # a session made after the rewrite is registered sees it
    _report(later, "DescribeDBInstances", "DBInstances", "DBInstanceStatus", "deleting")
    ctx = later.context(ctx.action_id)

    recheck = DELETE.recheck(ctx, item)
    dry = DELETE.dry_run(ctx, item, PARAMS)
    outcome = DELETE.execute(ctx, item, PARAMS, data)

    assert not recheck.still_waste and recheck.facts["gone"] is True
    assert recheck.facts["status"] == "deleting"
    assert recheck.reason == "DB instance reports-staging is being deleted"
    assert not dry.would_succeed and dry.calls == DELETE_CALLS
    assert dry.message == "DeleteDBInstance would fail: reports-staging is deleting"
    assert outcome.already_done
    assert outcome.response == {
        "db_instance_identifier": "reports-staging",
        "final_snapshot_identifier": snapshot,
        "status": "deleting",
        "final_snapshot_status": "available",
    }
    assert (
        outcome.note == f"reports-staging is being deleted; final snapshot {snapshot} is available"
    )
    assert later.recorder.count(operation="DeleteDBInstance") == 0


def test_a_delete_begun_by_an_earlier_attempt_meanwhile_is_this_actions_delete(h):
    """The final snapshot exists (its name carries this action's ID) and the instance is being
    deleted by the time DeleteDBInstance refuses the name: the earlier attempt's delete, done."""
    item, ctx, data = _prepared_delete(h)
    snapshot = data["final_snapshot_identifier"]
    h.seed("rds").create_db_snapshot(
        DBInstanceIdentifier="reports-staging", DBSnapshotIdentifier=snapshot
    )
    # the read before the delete sees it stopped; the one after the refusal, deleting
    later = Harness(h.endpoint)
    _report(later, "DescribeDBInstances", "DBInstances", "DBInstanceStatus", "deleting", after=1)

    outcome = DELETE.execute(later.context(ctx.action_id), item, PARAMS, data)

    assert outcome.already_done
    assert outcome.response["status"] == "deleting"
    assert (
        outcome.note == f"reports-staging is being deleted; final snapshot {snapshot} is available"
    )
    assert later.recorder.count(operation="DeleteDBInstance") == 1  # refused: the name is taken


def test_delete_outcomes_name_the_instance_and_its_final_snapshot(h):
    _db(h, "reports-staging", stopped=True)
    _db(h, "analytics-dev", stopped=True)
    items = {i: h.item(DETECTOR, i) for i in ("reports-staging", "analytics-dev")}
    ctx = h.context()
    done = DELETE.prepare(ctx, items["reports-staging"], PARAMS, {})
    lost = DELETE.prepare(ctx, items["analytics-dev"], PARAMS, {})
    h.seed("rds").delete_db_instance(DBInstanceIdentifier="analytics-dev", SkipFinalSnapshot=True)

    deleted = DELETE.execute(ctx, items["reports-staging"], PARAMS, done)
    again = DELETE.execute(ctx, items["reports-staging"], PARAMS, done)
    missing = DELETE.execute(ctx, items["analytics-dev"], PARAMS, lost)

    snapshot = done["final_snapshot_identifier"]
    assert not deleted.already_done
    assert deleted.response == {
        "db_instance_identifier": "reports-staging",
        "final_snapshot_identifier": snapshot,
        "status": "deleting",
    }
    assert deleted.note == f"deleting reports-staging; final snapshot {snapshot}"
    assert again.already_done
    assert again.response == {
        "db_instance_identifier": "reports-staging",
        "final_snapshot_identifier": snapshot,
        "status": "deleted",
        "final_snapshot_status": "available",
    }
    assert again.note == f"reports-staging is already gone; final snapshot {snapshot} is available"
    gone_snapshot = lost["final_snapshot_identifier"]
    assert missing.already_done
    assert missing.response == {
        "db_instance_identifier": "analytics-dev",
        "final_snapshot_identifier": gone_snapshot,
        "status": "deleted",
        "final_snapshot_status": None,
    }
    assert missing.note == (
        f"analytics-dev is already gone, but the final snapshot {gone_snapshot} is missing: "
        "rollback will not be possible"
    )
    assert h.recorder.count(operation="DeleteDBInstance") == 1


def test_a_second_final_snapshot_is_refused_in_words_that_say_what_to_do(h):
    item, ctx, data = _prepared_delete(h)
    snapshot = data["final_snapshot_identifier"]
    h.seed("rds").create_db_snapshot(
        DBInstanceIdentifier="reports-staging", DBSnapshotIdentifier=snapshot
    )

    with pytest.raises(aws.AwsError) as raised:
        DELETE.execute(ctx, item, PARAMS, data)

    assert raised.value.kind is aws.ErrorKind.TERMINAL
    assert str(raised.value) == (
        "rds:DeleteDBInstance in us-east-1 failed (terminal, DBSnapshotAlreadyExists): "
        f"final snapshot {snapshot} exists from an earlier attempt while reports-staging is "
        "still stopped; refusing both a second final snapshot and a delete without one: check "
        "the instance, delete or rename the snapshot, and run the cleanup again"
    )


def test_rollback_outcomes_and_refusals_say_what_happened_and_what_to_do(h):
    item, ctx, data = _prepared_delete(h)
    DELETE.execute(ctx, item, PARAMS, data)
    _drop_moto_automated_snapshots(h, "reports-staging")
    snapshot = data["final_snapshot_identifier"]
    creating = Harness(h.endpoint)
    _report(creating, "DescribeDBSnapshots", "DBSnapshots", "Status", "creating")
    undo = h.context()

    with pytest.raises(aws.AwsError) as not_yet:
        DELETE.rollback(creating.context(undo.action_id), data, PARAMS)
    restored = DELETE.rollback(undo, data, PARAMS)
    again = DELETE.rollback(undo, data, PARAMS)
    with pytest.raises(aws.AwsError) as taken:
        DELETE.rollback(h.context(), data, PARAMS)

    assert not_yet.value.kind is aws.ErrorKind.RECOVERABLE
    assert str(not_yet.value) == (
        "rds:RestoreDBInstanceFromDBSnapshot in us-east-1 failed (recoverable, "
        f"DBSnapshotNotAvailable): final snapshot {snapshot} is creating; roll back again once "
        "it is available"
    )
    db = _describe(h, "reports-staging")
    expected = {
        "db_instance_identifier": "reports-staging",
        "db_instance_arn": db["DBInstanceArn"],
        "status": "available",
        "endpoint": db["Endpoint"]["Address"],
    }
    assert restored.response == expected and not restored.already_done
    assert restored.note == (
        f"restoring reports-staging from final snapshot {snapshot} (status available); it holds "
        "the data as of the snapshot, and the snapshot is kept"
    )
    assert again.response == expected and again.already_done
    assert again.note == "reports-staging was already restored by this rollback"
    assert str(taken.value) == (
        "rds:RestoreDBInstanceFromDBSnapshot in us-east-1 failed (terminal, "
        "DBInstanceAlreadyExists): a DB instance named reports-staging exists and was not "
        "restored by this rollback; rename or delete it, then roll back again"
    )
    h.seed("rds").delete_db_instance(DBInstanceIdentifier="reports-staging", SkipFinalSnapshot=True)
    h.seed("rds").delete_db_snapshot(DBSnapshotIdentifier=snapshot)
    with pytest.raises(aws.AwsError) as missing:
        DELETE.rollback(h.context(), data, PARAMS)
    assert str(missing.value) == (
        "rds:RestoreDBInstanceFromDBSnapshot in us-east-1 failed (not-found, DBSnapshotNotFound): "
        f"final snapshot {snapshot} of reports-staging does not exist: the instance cannot be "
        "restored"
    )


def test_stop_outcomes_name_the_instance_and_its_state(h):
    _db(h, "analytics-dev")
    item = h.item(DETECTOR, "analytics-dev")
    ctx = h.context()
    data = STOP.prepare(ctx, item, PARAMS, {})
    busy = Harness(h.endpoint)
    faults.throttle(busy.session.events, "rds", "StopDBInstance")
    # RDS refuses a second stop or start (InvalidDBInstanceState) while the first is under way
    stopping, starting = Harness(h.endpoint), Harness(h.endpoint)
    _report(stopping, "DescribeDBInstances", "DBInstances", "DBInstanceStatus", "stopping")
    _report(starting, "DescribeDBInstances", "DBInstances", "DBInstanceStatus", "starting")

    with pytest.raises(aws.AwsError) as throttled:
        STOP.execute(busy.context(), item, PARAMS, data)
    stopped = STOP.execute(ctx, item, PARAMS, data)
    again = STOP.execute(ctx, item, PARAMS, data)
    under_way = STOP.execute(stopping.context(), item, PARAMS, data)
    started = STOP.rollback(h.context(), data, PARAMS)
    restarted = STOP.rollback(h.context(), data, PARAMS)
    start_under_way = STOP.rollback(starting.context(), data, PARAMS)
    h.seed("rds").delete_db_instance(DBInstanceIdentifier="analytics-dev", SkipFinalSnapshot=True)
    missing = STOP.execute(ctx, item, PARAMS, data)

    assert str(throttled.value) == (
        "rds:StopDBInstance in us-east-1 failed (throttled, Throttling): Rate exceeded"
    )
    assert stopped.response == {"db_instance_identifier": "analytics-dev", "status": "stopped"}
    assert stopped.note == "stopping analytics-dev; AWS starts it again by itself after 7 days"
    assert not stopped.already_done
    assert again.response == {"db_instance_identifier": "analytics-dev", "status": "stopped"}
    assert again.note == "analytics-dev is already stopped" and again.already_done
    assert started.response == {"db_instance_identifier": "analytics-dev", "status": "available"}
    assert started.note == "starting analytics-dev" and not started.already_done
    assert restarted.response == {"db_instance_identifier": "analytics-dev", "status": "available"}
    assert restarted.note == "analytics-dev is already available" and restarted.already_done
    assert under_way.response == {"db_instance_identifier": "analytics-dev", "status": "stopping"}
    assert under_way.note == "analytics-dev is already stopping" and under_way.already_done
    assert start_under_way.note == "analytics-dev is already starting"
    assert start_under_way.already_done
    assert missing.response == {"db_instance_identifier": "analytics-dev"}
    assert missing.note == "DB instance analytics-dev no longer exists: nothing left to stop"
    assert missing.already_done
