"""Cleanup of idle or stopped RDS instances: stop, or delete with a final snapshot.

Registered in ``cloudsweep.cleanup`` by ``@cleanup.register``; driven by the cleanup executor for
findings of the ``rds-instance`` detector.

Example CleanupPolicy entry::

    actions:
      - resourceType: rds-instance
        action: final-snapshot-and-delete    # or: stop
        minConfidence: 80
        requireApproval: true

Both re-checks refuse an available instance that had more connections over the last day
(``GetMetricData``, ``DatabaseConnections`` maximum) than the scan's ``max_connections``: the
scan would not call it idle now.

``rollback_data`` of ``stop``::

    {"db_instance_identifier": "analytics-dev", "db_instance_arn": "...", "status_before": "available"}

``rollback_data`` of ``final-snapshot-and-delete`` (the arguments RestoreDBInstanceFromDBSnapshot
needs to bring the same instance back)::

    {"db_instance_identifier": "analytics-dev", "db_instance_arn": "...",
     "final_snapshot_identifier": "cloudsweep-final-analytics-dev-1a2b3c4d",
     "engine": "postgres", "engine_version": "16.3", "status_before": "available",
     "restore": {"DBInstanceClass": ..., "StorageType": ..., "AllocatedStorage": ..., ...},
     "tags": [{"Key": ..., "Value": ...}], "recorded_at": "..."}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import common
from cloudsweep.cleanup.base import (
    ACTION_TAG,
    ActionContext,
    ActionParameters,
    CleanupAction,
    CleanupItem,
    DryRunResult,
    Outcome,
    Recheck,
)
from cloudsweep.cleanup.service_calls import call
from cloudsweep.domain import ActionType, money
from cloudsweep.pricing import PriceCatalog

_RDS = "rds"
_SNAPSHOT_ID_MAX = 255


def describe(ctx: ActionContext, identifier: str) -> dict[str, Any] | None:
    """The instance as RDS describes it now, or ``None`` if it does not exist."""
    return common.describe_one(
        lambda: call(ctx, _RDS, "DescribeDBInstances", DBInstanceIdentifier=identifier),
        "DBInstances",
    )


def describe_snapshot(ctx: ActionContext, identifier: str) -> dict[str, Any] | None:
    return common.describe_one(
        lambda: call(ctx, _RDS, "DescribeDBSnapshots", DBSnapshotIdentifier=identifier),
        "DBSnapshots",
    )


def final_snapshot_identifier(db_identifier: str, action_id: object) -> str:
    """``cloudsweep-final-<db id>-<first 8 of the action ID>``, made a valid RDS identifier.

    RDS identifiers: letters, digits and hyphens, a letter first, no two hyphens in a row, no
    hyphen last, at most 255 characters (snapshots). The action ID part is always kept whole, so
    two actions on one instance never pick the same name.
    """
    suffix = str(action_id).replace("-", "")[:8].lower()
    middle = re.sub(r"[^a-z0-9-]+", "-", db_identifier.lower())
    prefix = "cloudsweep-final-"
    room = _SNAPSHOT_ID_MAX - len(prefix) - len(suffix) - 1
    name = f"{prefix}{middle[:room]}-{suffix}"
    name = re.sub(r"-{2,}", "-", name)
    return name.strip("-")


def _common_refusal(ctx: ActionContext, db: Mapping[str, Any]) -> str | None:
    """Reasons that refuse any action on an instance, or ``None``."""
    protected = common.protected_by(common.tag_map(db.get("TagList")), ctx.protection_tags)
    if protected:
        return f"protection tag {protected} is set"
    if db.get("DBClusterIdentifier"):
        return (
            f"it is a member of Aurora cluster {db['DBClusterIdentifier']}: storage, stop and "
            "deletion belong to the cluster"
        )
    if db.get("ReadReplicaDBInstanceIdentifiers"):
        replicas = ", ".join(db["ReadReplicaDBInstanceIdentifiers"])
        return f"read replicas replicate from it ({replicas})"
    if db.get("ReadReplicaSourceDBInstanceIdentifier"):
        return (
            f"it is a read replica of {db['ReadReplicaSourceDBInstanceIdentifier']}: RDS can "
            "neither stop it nor take a final snapshot of it"
        )
    return None


def connected_since_scan(ctx: ActionContext, item: CleanupItem) -> str | None:
    """Why the instance is no longer idle by the scan's own ``max_connections`` over the last
    day, or None. A finding from before the threshold was recorded is held to 0, the
    detector's default and its strictest value. Missing datapoints say nothing either way
    (the finding already says so)."""
    limit = float(item.resource_details.get("max_connections") or 0)
    end = ctx.now().replace(second=0, microsecond=0)
    query = {
        "Id": "connections",
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/RDS",
                "MetricName": "DatabaseConnections",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": item.resource_id}],
            },
            "Period": 3600,
            "Stat": "Maximum",
        },
    }
    with aws.translated("cloudwatch", "GetMetricData", ctx.region):
        answer = ctx.client("cloudwatch").get_metric_data(
            MetricDataQueries=[query], StartTime=end - timedelta(days=1), EndTime=end
        )
    values = [v for r in answer.get("MetricDataResults", []) for v in r.get("Values", [])]
    peak = max(values, default=0.0)
    if peak > limit:
        return (
            f"in use since the scan: {peak:.0f} connections at the peak of the last day "
            f"(idle at <= {limit:.0f})"
        )
    return None


def _already_in(
    ctx: ActionContext, identifier: str, error: aws.AwsError, statuses: tuple[str, ...]
) -> Outcome | None:
    """After a stop or start refused with ``InvalidDBInstanceState``: done when the instance is
    in one of ``statuses`` (an earlier attempt whose response was lost), else None."""
    if error.code != "InvalidDBInstanceState":
        return None
    db = describe(ctx, identifier)
    status = db.get("DBInstanceStatus") if db else None
    if status not in statuses:
        return None
    return Outcome(
        {"db_instance_identifier": identifier, "status": status},
        already_done=True,
        note=f"{identifier} is already {status}",
    )


def _facts(db: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": db.get("DBInstanceStatus"),
        "deletion_protection": bool(db.get("DeletionProtection")),
        "instance_class": db.get("DBInstanceClass"),
        "engine": db.get("Engine"),
        # The executor applies the scan's and the policy's tag rules to them.
        "tags": common.tag_map(db.get("TagList")),
    }


@cleanup.register
class StopRdsInstance(CleanupAction):
    """Stop an idle, available RDS instance; rollback starts it again.

    A stopped instance still pays for its storage, and AWS starts it again by itself after 7 days:
    stopping is a pause, not a removal. Stopping an instance that is already stopped is
    pointless, so the recheck refuses it. The savings estimate is the instance hours only.

    Example CleanupPolicy entry::

        actions:
          - resourceType: rds-instance
            action: stop
    """

    resource_type = "rds-instance"
    action = "stop"
    action_type = ActionType.STOP
    rollback_possible = True
    rollback_note = "starts the instance again (StartDBInstance)"
    permissions = (
        "cloudwatch:GetMetricData",  # the recheck: connections since the scan
        "rds:DescribeDBInstances",
        "rds:StopDBInstance",
        "rds:StartDBInstance",
    )

    def estimated_monthly_savings(self, item: CleanupItem) -> Decimal:
        """The instance's cost less its storage (as the scan priced it), which a stopped
        instance still pays for; for as long as it stays stopped (AWS starts it after 7 days)."""
        storage = (item.resource_details.get("pricing") or {}).get("storage_monthly")
        if storage is None:
            return item.monthly_cost
        return max(money(0), money(item.monthly_cost - Decimal(str(storage))))

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        db = describe(ctx, item.resource_id)
        if db is None:
            return Recheck.gone(f"DB instance {item.resource_id} no longer exists")
        facts = _facts(db)
        refusal = _common_refusal(ctx, db)
        if refusal:
            return Recheck(False, refusal, facts)
        status = db.get("DBInstanceStatus")
        if status in ("stopped", "stopping"):
            return Recheck.gone(f"already {status}: stopping it again changes nothing", **facts)
        if status != "available":
            return Recheck(False, f"status is {status}, not available", facts)
        busy = connected_since_scan(ctx, item)
        if busy:
            return Recheck(False, busy, facts)
        return Recheck(True, "still available, idle and not protected", facts)

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        # StopDBInstance has no DryRun parameter: check what would make it fail, read-only.
        calls = ("rds:DescribeDBInstances", "rds:StopDBInstance")
        db = describe(ctx, item.resource_id)
        if db is None:
            return DryRunResult(False, f"{item.resource_id} no longer exists", calls)
        status = db.get("DBInstanceStatus")
        if status != "available":
            return DryRunResult(
                False, f"StopDBInstance would fail: {item.resource_id} is {status}", calls
            )
        return DryRunResult(True, f"would stop {item.resource_id}", calls)

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        if recorded.get("db_instance_identifier"):
            return dict(recorded)
        db = describe(ctx, item.resource_id) or {}
        data = {
            "db_instance_identifier": item.resource_id,
            "db_instance_arn": db.get("DBInstanceArn") or item.resource_arn,
            "status_before": db.get("DBInstanceStatus"),
        }
        ctx.checkpoint(data)
        return data

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        identifier = item.resource_id
        try:
            answer = call(ctx, _RDS, "StopDBInstance", DBInstanceIdentifier=identifier)
        except aws.AwsError as exc:
            if exc.kind is aws.ErrorKind.NOT_FOUND:
                return Outcome(
                    {"db_instance_identifier": identifier},
                    already_done=True,
                    note=f"DB instance {identifier} no longer exists: nothing left to stop",
                )
            done = _already_in(ctx, identifier, exc, ("stopping", "stopped"))
            if done is None:
                raise
            return done
        status = answer.get("DBInstance", {}).get("DBInstanceStatus")
        return Outcome(
            {"db_instance_identifier": identifier, "status": status},
            note=f"stopping {identifier}; AWS starts it again by itself after 7 days",
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        identifier = str(rollback_data["db_instance_identifier"])
        try:
            answer = call(ctx, _RDS, "StartDBInstance", DBInstanceIdentifier=identifier)
        except aws.AwsError as exc:
            done = _already_in(ctx, identifier, exc, ("available", "starting"))
            if done is None:
                raise
            return done
        return Outcome(
            {
                "db_instance_identifier": identifier,
                "status": answer.get("DBInstance", {}).get("DBInstanceStatus"),
            },
            note=f"starting {identifier}",
        )


# What RestoreDBInstanceFromDBSnapshot takes, and where DescribeDBInstances reports it.
_RESTORE_FIELDS: tuple[tuple[str, str], ...] = (
    ("DBInstanceClass", "DBInstanceClass"),
    ("StorageType", "StorageType"),
    ("AllocatedStorage", "AllocatedStorage"),
    ("Iops", "Iops"),
    ("StorageThroughput", "StorageThroughput"),
    ("MultiAZ", "MultiAZ"),
    ("PubliclyAccessible", "PubliclyAccessible"),
    ("AutoMinorVersionUpgrade", "AutoMinorVersionUpgrade"),
    ("LicenseModel", "LicenseModel"),
    ("CopyTagsToSnapshot", "CopyTagsToSnapshot"),
    ("EnableIAMDatabaseAuthentication", "IAMDatabaseAuthenticationEnabled"),
    ("EnableCloudwatchLogsExports", "EnabledCloudwatchLogsExports"),
    ("DeletionProtection", "DeletionProtection"),
    ("NetworkType", "NetworkType"),
    ("CACertificateIdentifier", "CACertificateIdentifier"),
    ("BackupRetentionPeriod", "BackupRetentionPeriod"),
    ("PreferredBackupWindow", "PreferredBackupWindow"),
)


def restore_parameters(db: Mapping[str, Any]) -> dict[str, Any]:
    """The RestoreDBInstanceFromDBSnapshot arguments that give back ``db``'s configuration."""
    params: dict[str, Any] = {}
    for argument, field in _RESTORE_FIELDS:
        value = db.get(field)
        if value not in (None, "", []):
            params[argument] = value
    if db.get("StorageType") not in ("io1", "io2", "gp3"):
        # gp2/standard report a baseline Iops that the restore refuses as an argument.
        params.pop("Iops", None)
    if db.get("StorageType") != "gp3":
        params.pop("StorageThroughput", None)
    endpoint_port = (db.get("Endpoint") or {}).get("Port") or db.get("DbInstancePort")
    if endpoint_port:
        params["Port"] = endpoint_port
    if not db.get("MultiAZ") and db.get("AvailabilityZone"):
        params["AvailabilityZone"] = db["AvailabilityZone"]
    subnet_group = (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
    if subnet_group:
        params["DBSubnetGroupName"] = subnet_group
    groups = [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups") or []]
    if groups:
        params["VpcSecurityGroupIds"] = groups
    # Default parameter and option groups are per engine version and applied by RDS anyway;
    # naming them explicitly only fails where a default group is not materialised yet.
    parameter_groups = [
        g["DBParameterGroupName"]
        for g in db.get("DBParameterGroups") or []
        if not str(g["DBParameterGroupName"]).startswith("default.")
    ]
    if parameter_groups:
        params["DBParameterGroupName"] = parameter_groups[0]
    option_groups = [
        g["OptionGroupName"]
        for g in db.get("OptionGroupMemberships") or []
        if not str(g["OptionGroupName"]).startswith("default:")
    ]
    if option_groups:
        params["OptionGroupName"] = option_groups[0]
    # It was off when the instance was deleted (the recheck demands it).
    params["DeletionProtection"] = bool(db.get("DeletionProtection"))
    return params


@cleanup.register
class FinalSnapshotAndDeleteRdsInstance(CleanupAction):
    """Delete an RDS instance, RDS taking a final snapshot as part of the deletion.

    The final snapshot is named ``cloudsweep-final-<db id>-<first 8 of the action ID>``; the
    instance's automated backups are kept (``DeleteAutomatedBackups=False``) for their retention
    period. Rollback restores an instance with the same identifier (so the same endpoint host
    name) and the recorded class, storage, network, groups and tags, holding the data of the final
    snapshot. The snapshot costs RDS snapshot storage until someone deletes it, and the savings
    estimate subtracts it, priced at the allocated storage: an upper bound (a snapshot holds the
    data written, and the region's free backup storage may cover some of it), so the estimate is
    a lower bound, as for an EBS volume's snapshot. The automated backups kept for their
    retention period are not subtracted.

    Example CleanupPolicy entry::

        actions:
          - resourceType: rds-instance
            action: final-snapshot-and-delete
    """

    resource_type = "rds-instance"
    action = "final-snapshot-and-delete"
    action_type = ActionType.DELETE
    rollback_possible = True
    rollback_note = (
        "restores the instance under its identifier from the final snapshot, with the recorded "
        "configuration and tags"
    )
    permissions = (
        "cloudwatch:GetMetricData",  # the recheck: connections since the scan
        "rds:DescribeDBInstances",
        "rds:DescribeDBSnapshots",
        "rds:DeleteDBInstance",
        "rds:CreateDBSnapshot",  # DeleteDBInstance with FinalDBSnapshotIdentifier needs it
        "rds:AddTagsToResource",
        "rds:RestoreDBInstanceFromDBSnapshot",
    )

    def estimated_monthly_savings(self, item: CleanupItem) -> Decimal:
        """The instance's cost less the final snapshot's storage (see the class docstring); an
        unpriced snapshot is not subtracted."""
        return common.savings_keeping(
            item, "allocated_storage_gib", PriceCatalog.rds_snapshot_monthly
        )

    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck:
        db = describe(ctx, item.resource_id)
        if db is None:
            return Recheck.gone(f"DB instance {item.resource_id} no longer exists")
        facts = _facts(db)
        if db.get("DeletionProtection"):
            return Recheck(False, "deletion protection is on (DeletionProtection)", facts)
        refusal = _common_refusal(ctx, db)
        if refusal:
            return Recheck(False, refusal, facts)
        status = db.get("DBInstanceStatus")
        if status == "deleting":
            return Recheck.gone(f"DB instance {item.resource_id} is being deleted", **facts)
        if status not in ("available", "stopped"):
            return Recheck(False, f"status is {status}, not available or stopped", facts)
        if item.resource_details.get("stopped") and status != "stopped":
            return Recheck(False, f"it was stopped at the scan and is {status} now", facts)
        busy = connected_since_scan(ctx, item) if status == "available" else None
        if busy:
            return Recheck(False, busy, facts)
        return Recheck(True, f"still {status}, idle and not protected", facts)

    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult:
        # DeleteDBInstance has no DryRun parameter: check read-only what would make it fail.
        snapshot = final_snapshot_identifier(item.resource_id, ctx.action_id)
        calls = (
            "rds:DescribeDBInstances",
            "rds:DescribeDBSnapshots",
            "rds:DeleteDBInstance",
        )
        db = describe(ctx, item.resource_id)
        if db is None:
            return DryRunResult(False, f"{item.resource_id} no longer exists", calls)
        if db.get("DeletionProtection"):
            return DryRunResult(
                False,
                f"DeleteDBInstance would fail: deletion protection is on for {item.resource_id}",
                calls,
            )
        status = db.get("DBInstanceStatus")
        if status not in ("available", "stopped"):
            return DryRunResult(
                False, f"DeleteDBInstance would fail: {item.resource_id} is {status}", calls
            )
        if describe_snapshot(ctx, snapshot) is not None:
            return DryRunResult(
                False,
                f"a snapshot named {snapshot} exists already; it would not be replaced",
                calls,
            )
        return DryRunResult(
            True, f"would delete {item.resource_id} with final snapshot {snapshot}", calls
        )

    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        # A record from an interrupted attempt is the configuration before the delete: keep it.
        if recorded.get("restore") and recorded.get("final_snapshot_identifier"):
            return dict(recorded)
        identifier = item.resource_id
        db = describe(ctx, identifier)
        if db is None:
            raise common.gone_before_recorded(
                ctx, _RDS, "DescribeDBInstances", "DBInstanceNotFound", identifier
            )
        data: dict[str, Any] = {
            "db_instance_identifier": identifier,
            "db_instance_arn": db.get("DBInstanceArn") or item.resource_arn,
            "final_snapshot_identifier": final_snapshot_identifier(identifier, ctx.action_id),
            "engine": db.get("Engine"),
            "engine_version": db.get("EngineVersion"),
            "status_before": db.get("DBInstanceStatus"),
            "storage_encrypted": bool(db.get("StorageEncrypted")),
            "restore": restore_parameters(db),
            "tags": [
                {"Key": t["Key"], "Value": t.get("Value", "")} for t in db.get("TagList") or []
            ],
            "recorded_at": ctx.now().isoformat(),
        }
        ctx.checkpoint(data)
        return data

    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome:
        identifier = item.resource_id
        snapshot_id = str(
            rollback_data.get("final_snapshot_identifier")
            or final_snapshot_identifier(identifier, ctx.action_id)
        )
        db = describe(ctx, identifier)
        if db is None or db.get("DBInstanceStatus") == "deleting":
            return self._gone(ctx, identifier, snapshot_id, db)
        try:
            answer = call(
                ctx,
                _RDS,
                "DeleteDBInstance",
                DBInstanceIdentifier=identifier,
                FinalDBSnapshotIdentifier=snapshot_id,
                SkipFinalSnapshot=False,
                DeleteAutomatedBackups=False,
            )
        except aws.AwsError as exc:
            if exc.kind is aws.ErrorKind.NOT_FOUND and exc.code.startswith("DBInstanceNotFound"):
                return self._gone(ctx, identifier, snapshot_id, None)
            if not exc.code.startswith("DBSnapshotAlreadyExists"):
                raise
            return self._snapshot_exists(ctx, identifier, snapshot_id, exc)
        status = answer.get("DBInstance", {}).get("DBInstanceStatus")
        return Outcome(
            {
                "db_instance_identifier": identifier,
                "final_snapshot_identifier": snapshot_id,
                "status": status,
            },
            note=f"deleting {identifier}; final snapshot {snapshot_id}",
        )

    def _gone(
        self, ctx: ActionContext, identifier: str, snapshot_id: str, db: Mapping[str, Any] | None
    ) -> Outcome:
        snapshot = describe_snapshot(ctx, snapshot_id)
        response = {
            "db_instance_identifier": identifier,
            "final_snapshot_identifier": snapshot_id,
            "status": db.get("DBInstanceStatus") if db else "deleted",
            "final_snapshot_status": snapshot.get("Status") if snapshot else None,
        }
        state = "is being deleted" if db else "is already gone"
        if snapshot is None:
            return Outcome(
                response,
                already_done=True,
                note=f"{identifier} {state}, but the final snapshot {snapshot_id} is missing: "
                "rollback will not be possible",
            )
        return Outcome(
            response,
            already_done=True,
            note=f"{identifier} {state}; final snapshot {snapshot_id} is {snapshot.get('Status')}",
        )

    def _snapshot_exists(
        self, ctx: ActionContext, identifier: str, snapshot_id: str, error: aws.AwsError
    ) -> Outcome:
        # The snapshot name carries this action's ID, so it is an earlier attempt's final
        # snapshot. Re-read the instance: a delete in progress or done is this action's delete.
        db = describe(ctx, identifier)
        if db is None or db.get("DBInstanceStatus") == "deleting":
            return self._gone(ctx, identifier, snapshot_id, db)
        # Still there: the earlier delete failed after its snapshot. Deleting without a fresh
        # snapshot could lose what was written since, and a second final snapshot is never made.
        raise aws.AwsError(
            aws.ErrorKind.TERMINAL,
            service=_RDS,
            operation="DeleteDBInstance",
            code=error.code,
            message=f"final snapshot {snapshot_id} exists from an earlier attempt while "
            f"{identifier} is still {db.get('DBInstanceStatus')}; refusing both a second final "
            "snapshot and a delete without one: check the instance, delete or rename the "
            "snapshot, and run the cleanup again",
            region=ctx.region,
        )

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        identifier = str(rollback_data["db_instance_identifier"])
        snapshot_id = str(rollback_data["final_snapshot_identifier"])
        marker = str(ctx.action_id)
        existing = describe(ctx, identifier)
        if existing is not None:
            if common.tag_map(existing.get("TagList")).get(ACTION_TAG) == marker:
                return Outcome(
                    _restored(existing),
                    already_done=True,
                    note=f"{identifier} was already restored by this rollback",
                )
            raise aws.AwsError(
                aws.ErrorKind.TERMINAL,
                service=_RDS,
                operation="RestoreDBInstanceFromDBSnapshot",
                code="DBInstanceAlreadyExists",
                message=f"a DB instance named {identifier} exists and was not restored by this "
                "rollback; rename or delete it, then roll back again",
                region=ctx.region,
            )
        snapshot = describe_snapshot(ctx, snapshot_id)
        if snapshot is None:
            raise aws.AwsError(
                aws.ErrorKind.NOT_FOUND,
                service=_RDS,
                operation="RestoreDBInstanceFromDBSnapshot",
                code="DBSnapshotNotFound",
                message=f"final snapshot {snapshot_id} of {identifier} does not exist: "
                "the instance cannot be restored",
                region=ctx.region,
            )
        if snapshot.get("Status") != "available":
            raise aws.AwsError(
                aws.ErrorKind.RECOVERABLE,
                service=_RDS,
                operation="RestoreDBInstanceFromDBSnapshot",
                code="DBSnapshotNotAvailable",
                message=f"final snapshot {snapshot_id} is {snapshot.get('Status')}; "
                "roll back again once it is available",
                region=ctx.region,
            )
        tags = [
            *(t for t in rollback_data.get("tags") or [] if t["Key"] != ACTION_TAG),
            {"Key": ACTION_TAG, "Value": marker},
        ]
        answer = call(
            ctx,
            _RDS,
            "RestoreDBInstanceFromDBSnapshot",
            DBInstanceIdentifier=identifier,
            DBSnapshotIdentifier=snapshot_id,
            Tags=tags,
            **dict(rollback_data.get("restore") or {}),
        )
        restored = dict(answer.get("DBInstance") or {})
        return Outcome(
            _restored(restored),
            note=f"restoring {identifier} from final snapshot {snapshot_id} (status "
            f"{restored.get('DBInstanceStatus')}); it holds the data as of the snapshot, and the "
            "snapshot is kept",
        )


def _restored(db: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "db_instance_identifier": db.get("DBInstanceIdentifier"),
        "db_instance_arn": db.get("DBInstanceArn"),
        "status": db.get("DBInstanceStatus"),
        "endpoint": (db.get("Endpoint") or {}).get("Address"),
    }
