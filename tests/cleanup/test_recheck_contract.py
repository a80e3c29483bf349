"""Contract: the re-check at execution is never laxer than the scan and the policy, for EVERY
registered cleanup action (the registry is walked, so an action added later is covered, and
fails here until its resource type has a builder in ``BUILDERS``).

Each case builds the action's resource in moto (over HTTP), scans it with the real scan run into
PostgreSQL under a ScanSchedule-like protection tag of its own, builds the item as the executor
does (``cleaning.cleanup_item`` from the stored candidate and the policy), then changes the
resource's tags in AWS the way a person would after approval, and asks the executor's re-check
(``cleaning.recheck_item``: the action's own re-check plus the selection rules) whether it may
act. Rules walked:

- a protection tag named only by the scan's detector parameters (not CloudSweep's defaults);
- a tag the policy's ``excludeTags`` lists;
- a tag the policy's ``includeTags`` requires, changed to another value;
- CloudSweep's default protection tag;
- none (the baseline: the re-check passes, so a refusal above is the rule's doing).

A second walk (``IN_USE_AGAIN``, one entry per resource type) changes the resource after
selection so that its scan would no longer report it: used again (attached, associated, launched
from, targets registered), or busy beyond the scan's own threshold (CPU, connections, bytes
through a NAT gateway, an instance started and stopped again inside ``min_stopped_days``). The
re-check must refuse it. Both walks refuse to run for a type without its entry.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from cloudsweep import cleaning, cleanup, domain, policies, scanning
from cloudsweep.settings import Settings
from cloudsweep.store import Store

from .lb_rds_helpers import ACCOUNT, EXTERNAL_ID, LATER, REGION, ROLE_ARN, Harness

SCAN_PROTECTION = "finops/keep"  # only the scan's parameters name it
OWNER = {"owner": "ops"}  # every built resource carries it; the policies include it


@dataclass(frozen=True)
class Built:
    """A resource in moto and how to change its tags."""

    tag: Callable[[dict[str, str]], None]
    # Its ID, where the world holds other findings of its type (an instance's root volume).
    resource_id: str | None = None


def _ec2_tagger(h: Harness, resource_id: str) -> Callable[[dict[str, str]], None]:
    def tag(tags: dict[str, str]) -> None:
        h.seed("ec2").create_tags(
            Resources=[resource_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )

    return tag


def _volume(h: Harness) -> Built:
    ec2 = h.seed("ec2")
    volume = ec2.create_volume(
        AvailabilityZone=f"{REGION}a",
        Size=10,
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(OWNER)}],
    )["VolumeId"]
    return Built(_ec2_tagger(h, volume))


def _snapshot(h: Harness) -> Built:
    ec2 = h.seed("ec2")
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8, VolumeType="gp3")["VolumeId"]
    snapshot = ec2.create_snapshot(
        VolumeId=volume,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(OWNER)}],
    )["SnapshotId"]
    ec2.delete_volume(VolumeId=volume)  # an orphaned snapshot
    return Built(_ec2_tagger(h, snapshot))


def _address(h: Harness) -> Built:
    allocation = h.seed("ec2").allocate_address(
        Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": _tags(OWNER)}]
    )["AllocationId"]
    return Built(_ec2_tagger(h, allocation))


def _load_balancer(h: Harness) -> Built:
    ec2, elbv2 = h.seed("ec2"), h.seed("elbv2")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    arn = elbv2.create_load_balancer(Name="idle-alb", Subnets=subnets, Tags=_tags(OWNER))[
        "LoadBalancers"
    ][0]["LoadBalancerArn"]

    def tag(tags: dict[str, str]) -> None:
        elbv2.add_tags(ResourceArns=[arn], Tags=_tags(tags))

    return Built(tag)


def _db_instance(h: Harness) -> Built:
    rds = h.seed("rds")
    arn = rds.create_db_instance(
        DBInstanceIdentifier="idle-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="cloudsweep",
        MasterUserPassword="not-a-real-password",
        Tags=_tags(OWNER),
    )["DBInstance"]["DBInstanceArn"]

    def tag(tags: dict[str, str]) -> None:
        rds.add_tags_to_resource(ResourceName=arn, Tags=_tags(tags))

    return Built(tag)


def _image(h: Harness) -> Built:
    ec2 = h.seed("ec2")
    image = ec2.register_image(Name="web-2023.01", Architecture="x86_64")["ImageId"]
    tagger = _ec2_tagger(h, image)
    tagger(OWNER)  # the emulator drops RegisterImage's TagSpecifications
    return Built(tagger)


def _log_group(h: Harness) -> Built:
    logs = h.seed("logs")
    name = "/app/orders"
    logs.create_log_group(logGroupName=name, tags=OWNER)
    logs.create_log_stream(logGroupName=name, logStreamName="app")
    logs.put_log_events(  # stored bytes: a never-expiring group without data is no waste
        logGroupName=name,
        logStreamName="app",
        logEvents=[{"timestamp": int(domain.utcnow().timestamp() * 1000), "message": "x" * 4000}],
    )
    (group,) = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    arn = str(group.get("logGroupArn") or group["arn"].removesuffix(":*"))

    def tag(tags: dict[str, str]) -> None:
        logs.tag_resource(resourceArn=arn, tags=tags)

    return Built(tag)


def _instance(h: Harness, **extra: Any) -> str:
    return str(
        h.seed("ec2").run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            Placement={"AvailabilityZone": f"{REGION}a"},
            **extra,
        )["Instances"][0]["InstanceId"]
    )


def _gp3_candidate(h: Harness) -> Built:
    ec2 = h.seed("ec2")
    volume = ec2.create_volume(
        AvailabilityZone=f"{REGION}a",
        Size=100,
        VolumeType="gp2",
        TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(OWNER)}],
    )["VolumeId"]
    # Attached (only in-use volumes are rightsized); the instance's root volume is gp2 as well.
    ec2.attach_volume(VolumeId=volume, InstanceId=_instance(h), Device="/dev/sdf")
    return Built(_ec2_tagger(h, volume), resource_id=volume)


def _running_instance(h: Harness) -> Built:
    # No CloudWatch datapoints: the scan reports it (at a low confidence), and the re-check's
    # look at the last day finds nothing busy.
    instance = _instance(h, TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(OWNER)}])
    return Built(_ec2_tagger(h, instance))


def _stopped_instance(h: Harness) -> Built:
    instance = _instance(h, TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(OWNER)}])
    # moto writes the stop time into StateTransitionReason; the scan runs LATER.
    h.seed("ec2").stop_instances(InstanceIds=[instance])
    return Built(_ec2_tagger(h, instance))


def _nat_gateway(h: Harness) -> Built:
    ec2 = h.seed("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(
        SubnetId=subnet,
        AllocationId=allocation,
        TagSpecifications=[{"ResourceType": "natgateway", "Tags": _tags(OWNER)}],
    )["NatGateway"]["NatGatewayId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    return Built(_ec2_tagger(h, nat))


def _multipart_bucket(h: Harness) -> Built:
    s3 = h.seed("s3")
    bucket = "media-uploads"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tags(OWNER)})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="videos/a.mp4")["UploadId"]
    s3.upload_part(
        Bucket=bucket, Key="videos/a.mp4", UploadId=upload, PartNumber=1, Body=b"x" * 5 * 2**20
    )

    def tag(tags: dict[str, str]) -> None:
        # PutBucketTagging replaces the whole set: a person adds to what is there.
        current = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        merged = {t["Key"]: t["Value"] for t in current} | tags
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tags(merged)})

    return Built(tag)


BUILDERS: dict[str, Callable[[Harness], Built]] = {
    "ebs-volume": _volume,
    "ebs-snapshot": _snapshot,
    "elastic-ip": _address,
    "load-balancer": _load_balancer,
    "rds-instance": _db_instance,
    "ami": _image,
    "cloudwatch-log-group": _log_group,
    "ebs-gp3-candidate": _gp3_candidate,
    "ec2-instance": _running_instance,
    "ec2-stopped-instance": _stopped_instance,
    "nat-gateway": _nat_gateway,
    "s3-incomplete-multipart": _multipart_bucket,
}

# rule -> (tags set in AWS after selection, what the refusal says)
RULES: dict[str, tuple[dict[str, str], str]] = {
    "scan-protection-tag": ({SCAN_PROTECTION: "yes"}, SCAN_PROTECTION),
    "policy-exclude-tag": ({"env": "prod"}, "env"),
    "policy-include-tag": ({"owner": "someone-else"}, "owner"),
    "default-protection-tag": ({"cloudsweep.io/protect": "true"}, "cloudsweep.io/protect"),
    "baseline": ({}, ""),
}


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


# --- in use again: what the scan's criterion (a threshold, a state) would no longer report ---

InUseAgain = Callable[[Harness, cleanup.CleanupItem], str]


def _datapoint(h: Harness, namespace: str, metric: str, dims: dict[str, str], value: float) -> None:
    """One datapoint an hour ago: inside the last day the re-checks read (their clock is now)."""
    h.seed("cloudwatch").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                "Value": value,
                "Timestamp": domain.utcnow() - timedelta(hours=1),
            }
        ],
    )


def _volume_attached(h: Harness, item: cleanup.CleanupItem) -> str:
    h.seed("ec2").attach_volume(
        VolumeId=item.resource_id, InstanceId=_instance(h), Device="/dev/sdf"
    )
    return "attached"


def _snapshot_kept_for_an_image(h: Harness, item: cleanup.CleanupItem) -> str:
    # The ami action's deregistration adopts it as an image's undo copy (the scan skips those).
    # An AMI registered from it would be the plainer case, but the emulator ignores the
    # snapshots RegisterImage names; test_ebs_snapshot.py covers that re-check on an image
    # made by CreateImage.
    until = (domain.utcnow() + timedelta(days=30)).isoformat()
    tags = {domain.RETAIN_UNTIL_TAG: until, domain.DEREGISTERED_IMAGE_TAG: "ami-0123456789abcdef0"}
    _ec2_tagger(h, item.resource_id)(tags)
    return "kept until"


def _address_associated(h: Harness, item: cleanup.CleanupItem) -> str:
    h.seed("ec2").associate_address(AllocationId=item.resource_id, InstanceId=_instance(h))
    return "associated again"


def _targets_registered(h: Harness, item: cleanup.CleanupItem) -> str:
    elbv2 = h.seed("elbv2")
    [lb] = elbv2.describe_load_balancers(Names=["idle-alb"])["LoadBalancers"]
    group = elbv2.create_target_group(
        Name="web", Protocol="HTTP", Port=80, VpcId=lb["VpcId"], TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
    )
    elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": _instance(h)}])
    return "target(s)"  # registered since the scan, and healthy (moto: at once)


def _db_connected(h: Harness, item: cleanup.CleanupItem) -> str:
    dims = {"DBInstanceIdentifier": item.resource_id}
    _datapoint(h, "AWS/RDS", "DatabaseConnections", dims, 12)
    return "connections"


def _image_launched(h: Harness, item: cleanup.CleanupItem) -> str:
    h.seed("ec2").run_instances(ImageId=item.resource_id, MinCount=1, MaxCount=1)
    return "used by instance"


def _retention_set(h: Harness, item: cleanup.CleanupItem) -> str:
    h.seed("logs").put_retention_policy(logGroupName=item.resource_id, retentionInDays=14)
    return "retention"


def _volume_resized(h: Harness, item: cleanup.CleanupItem) -> str:
    # The scan's min_savings_percent held for the size it priced; not for another one.
    h.seed("ec2").modify_volume(VolumeId=item.resource_id, Size=400)
    return "size"


def _instance_busy(h: Harness, item: cleanup.CleanupItem) -> str:
    _datapoint(h, "AWS/EC2", "CPUUtilization", {"InstanceId": item.resource_id}, 90.0)
    return "busy since the scan"


def _instance_restarted(h: Harness, item: cleanup.CleanupItem) -> str:
    """Started, used and stopped again: stopped for a moment, not the scan's min_stopped_days."""
    ec2 = h.seed("ec2")

    def reason() -> str:
        [reservation] = ec2.describe_instances(InstanceIds=[item.resource_id])["Reservations"]
        return str(reservation["Instances"][0].get("StateTransitionReason"))

    before = reason()
    while reason() == before:  # AWS (and moto) say the stop time to the second
        time.sleep(0.5)
        ec2.start_instances(InstanceIds=[item.resource_id])
        ec2.stop_instances(InstanceIds=[item.resource_id])
    return "stopped again"


def _nat_busy(h: Harness, item: cleanup.CleanupItem) -> str:
    dims = {"NatGatewayId": item.resource_id}
    _datapoint(h, "AWS/NATGateway", "BytesInFromSource", dims, 5e9)
    return "traffic again"


def _uploads_aborted(h: Harness, item: cleanup.CleanupItem) -> str:
    s3 = h.seed("s3")
    for upload in s3.list_multipart_uploads(Bucket=item.resource_id).get("Uploads", []):
        s3.abort_multipart_upload(
            Bucket=item.resource_id, Key=upload["Key"], UploadId=upload["UploadId"]
        )
    return "no incomplete multipart uploads"


# resource type -> how its resource stops being the waste its scan reported, after selection
IN_USE_AGAIN: dict[str, InUseAgain] = {
    "ebs-volume": _volume_attached,
    "ebs-snapshot": _snapshot_kept_for_an_image,
    "elastic-ip": _address_associated,
    "load-balancer": _targets_registered,
    "rds-instance": _db_connected,
    "ami": _image_launched,
    "cloudwatch-log-group": _retention_set,
    "ebs-gp3-candidate": _volume_resized,
    "ec2-instance": _instance_busy,
    "ec2-stopped-instance": _instance_restarted,
    "nat-gateway": _nat_busy,
    "s3-incomplete-multipart": _uploads_aborted,
}


def test_every_registered_action_has_a_builder() -> None:
    types = {a.resource_type for a in cleanup.all_actions()}
    missing = sorted(types - set(BUILDERS))
    assert missing == [], (
        f"no builder for {missing}: add one to BUILDERS, so that the re-check of their actions "
        "is walked against every rule that selects an item"
    )
    unwalked = sorted(types - set(IN_USE_AGAIN))
    assert unwalked == [], (
        f"no IN_USE_AGAIN entry for {unwalked}: add how such a resource stops being the waste "
        "its scan reported (used again, busy beyond the scan's threshold)"
    )


def _selected(
    action: type[cleanup.CleanupAction], h: Harness, database_url: str
) -> tuple[Built, cleanup.CleanupItem]:
    """The action's resource built in moto, scanned into PostgreSQL, and the item the executor
    builds from the stored candidate under the contract's policy."""
    builder = BUILDERS.get(action.resource_type)
    if builder is None:
        pytest.fail(f"no builder for {action.resource_type}: add one to BUILDERS")
    built = builder(h)
    store = Store(database_url)
    org = store.ensure_organization("contract")
    account = store.register_account(
        org.id, account_id=ACCOUNT, role_arn=ROLE_ARN, external_id=EXTERNAL_ID, regions=[REGION]
    )
    outcome = scanning.run_scan(
        store,
        account,
        scanning.ScanOptions(
            detectors=[action.resource_type],
            parameters={
                action.resource_type: {
                    "min_age_days": 0,
                    "protection_tags": ["cloudsweep.io/protect", SCAN_PROTECTION],
                }
            },
        ),
        settings=Settings(aws_endpoint_url=h.endpoint, aws_max_attempts=2),
        now=lambda: domain.utcnow() + LATER,  # long after the seeding: old enough to be idle
    )
    assert outcome.scan.status == "completed", outcome.scan.error_message
    policy = policies.parse_policy(
        {
            "name": "contract",
            "resourceType": action.resource_type,
            "action": action.action,
            "rules": {"includeTags": OWNER, "excludeTags": {"env": "prod"}},
        }
    )
    [candidate] = [
        c
        for c in store.candidates(org.id, resource_type=action.resource_type)
        if built.resource_id in (None, c.resource_id)
    ]
    return built, cleaning.cleanup_item(candidate, policy)


def _recheck(
    action: type[cleanup.CleanupAction], h: Harness, item: cleanup.CleanupItem
) -> cleanup.Recheck:
    # As the executor builds it: the action's own checks get the scan's protection tags too.
    ctx = dataclasses.replace(h.context(), protection_tags=item.selection.protection_tags)
    recheck = cleaning.recheck_item(action(), ctx, item)
    assert [c for c in h.recorder.records if c.mutating and c.service != "sts"] == []
    return recheck


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize(
    "action",
    cleanup.all_actions(),
    ids=lambda a: f"{a.resource_type}/{a.action}",
)
def test_the_recheck_applies_every_rule_that_selected_the_item(
    action: type[cleanup.CleanupAction], rule: str, moto_endpoint: str, database_url: str
) -> None:
    h = Harness(moto_endpoint)
    built, item = _selected(action, h, database_url)

    tags, named = RULES[rule]
    if tags:
        built.tag(tags)
    recheck = _recheck(action, h, item)

    if rule == "baseline":
        assert recheck.still_waste, recheck.reason
    else:
        assert not recheck.still_waste, f"{rule}: the re-check let it through"
        assert named in recheck.reason


@pytest.mark.parametrize(
    "action",
    cleanup.all_actions(),
    ids=lambda a: f"{a.resource_type}/{a.action}",
)
def test_the_recheck_refuses_what_no_longer_meets_the_scans_criterion(
    action: type[cleanup.CleanupAction], moto_endpoint: str, database_url: str
) -> None:
    """After selection the resource is used again, or busy beyond the scan's threshold: the
    scan would not report it now, so the re-check must not let it through."""
    h = Harness(moto_endpoint)
    _, item = _selected(action, h, database_url)

    in_use_again = IN_USE_AGAIN.get(action.resource_type)
    if in_use_again is None:
        pytest.fail(f"no IN_USE_AGAIN entry for {action.resource_type}: add one")
    named = in_use_again(h, item)
    recheck = _recheck(action, h, item)

    assert not recheck.still_waste, "the re-check let through what the scan would not report"
    assert named in recheck.reason


def test_an_action_whose_recheck_reports_no_tags_is_refused(
    moto_endpoint: str, database_url: str
) -> None:
    """Fail closed: an action (written later, say) that forgets the live tags is refused."""

    class Forgetful(cleanup.CleanupAction):
        resource_type = "elastic-ip"
        action = "forgetful"
        action_type = cleanup.get("elastic-ip", "release").action_type
        permissions = ()
        rollback_possible = False
        rollback_note = "none"

        def recheck(self, ctx: Any, item: Any) -> cleanup.Recheck:
            return cleanup.Recheck(True, "looks fine", {"public_ip": "203.0.113.7"})

        def dry_run(self, *args: Any) -> Any:
            raise AssertionError

        def prepare(self, *args: Any) -> Any:
            raise AssertionError

        def execute(self, *args: Any) -> Any:
            raise AssertionError

    h = Harness(moto_endpoint)
    item = cleanup.CleanupItem(
        waste_item_id=uuid.uuid4(),
        account_id=ACCOUNT,
        region=REGION,
        resource_type="elastic-ip",
        resource_id="eipalloc-1",
        resource_arn=None,
        availability_zone=None,
        monthly_cost=Decimal("3.65"),
        resource_details={},
    )
    recheck = cleaning.recheck_item(Forgetful(), h.context(), item)
    # The refusal says why, and keeps the facts the action did report (the ledger records them).
    assert recheck == cleanup.Recheck(
        False,
        "the re-check of elastic-ip forgetful reported no current tags, so the rules that "
        "selected the item cannot be checked",
        {"public_ip": "203.0.113.7"},
    )
