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
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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


def test_every_registered_action_has_a_builder() -> None:
    missing = sorted({a.resource_type for a in cleanup.all_actions()} - set(BUILDERS))
    assert missing == [], (
        f"no builder for {missing}: add one to BUILDERS, so that the re-check of their actions "
        "is walked against every rule that selects an item"
    )


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize(
    "action",
    cleanup.all_actions(),
    ids=lambda a: f"{a.resource_type}/{a.action}",
)
def test_the_recheck_applies_every_rule_that_selected_the_item(
    action: type[cleanup.CleanupAction], rule: str, moto_endpoint: str, database_url: str
) -> None:
    builder = BUILDERS.get(action.resource_type)
    if builder is None:
        pytest.fail(f"no builder for {action.resource_type}: add one to BUILDERS")
    h = Harness(moto_endpoint)
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
        settings=Settings(aws_endpoint_url=moto_endpoint, aws_max_attempts=2),
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
    item = cleaning.cleanup_item(candidate, policy)

    tags, named = RULES[rule]
    if tags:
        built.tag(tags)
    # As the executor builds it: the action's own checks get the scan's protection tags too.
    ctx = dataclasses.replace(h.context(), protection_tags=item.selection.protection_tags)
    recheck = cleaning.recheck_item(action(), ctx, item)

    if rule == "baseline":
        assert recheck.still_waste, recheck.reason
    else:
        assert not recheck.still_waste, f"{rule}: the re-check let it through"
        assert named in recheck.reason
    assert [c for c in h.recorder.records if c.mutating and c.service != "sts"] == []


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
            return cleanup.Recheck(True, "looks fine", {})

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
    assert not recheck.still_waste and "no current tags" in recheck.reason
