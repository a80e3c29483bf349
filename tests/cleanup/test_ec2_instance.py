"""The ec2-instance cleanup action (stop) against moto over HTTP.

Items come from a real scan (``Harness.item``); moto publishes no CPU metrics, so the finding is
the low-confidence "metrics missing" one, which is all the action needs.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import ec2_instance
from cloudsweep.domain import ActionType, utcnow
from tests import faults

from .compute_helpers import datapoint, run_instance, seeder_client, state
from .ebs_helpers import Harness

STOP = ec2_instance.StopInstance()


@pytest.fixture
def h(moto_endpoint: str) -> Harness:
    return Harness(moto_endpoint)


def test_registered_with_its_contract():
    assert cleanup.get("ec2-instance", "stop") is ec2_instance.StopInstance
    assert STOP.action_type is ActionType.STOP and STOP.rollback_possible
    assert "ec2:StopInstances" in STOP.permissions and "ec2:StartInstances" in STOP.permissions


def test_recheck_passes_for_an_idle_running_instance(h: Harness):
    instance_id = run_instance(h)
    recheck = STOP.recheck(h.ctx(), h.item("ec2-instance", instance_id))
    assert recheck.still_waste, recheck.reason
    assert not h.mutating()


def test_recheck_refuses_an_auto_scaling_group_member_even_without_its_tag(h: Harness):
    """The tag can be removed; Auto Scaling's own answer cannot: both are checked."""
    autoscaling = seeder_client(h, "autoscaling")
    template = h.ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=1,
        MaxSize=1,
        AvailabilityZones=["us-east-1a"],
    )
    (member,) = [
        i["InstanceId"]
        for i in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]
    ]
    item = h.item("ec2-instance", member)
    h.ec2.delete_tags(Resources=[member], Tags=[{"Key": "aws:autoscaling:groupName"}])

    recheck = STOP.recheck(h.ctx(), item)

    assert not recheck.still_waste
    assert "Auto Scaling group web-asg" in recheck.reason
    assert h.recorder.count(operation="DescribeAutoScalingInstances") == 1


def test_recheck_refuses_instance_store_protection_and_a_changed_type(h: Harness):
    ephemeral = run_instance(h, instance_type="m5d.large")
    item = h.item("ec2-instance", ephemeral)
    refused = STOP.recheck(h.ctx(), item)
    assert not refused.still_waste and "instance-store" in refused.reason

    tagged = run_instance(h)
    item = h.item("ec2-instance", tagged)
    h.ec2.create_tags(Resources=[tagged], Tags=[{"Key": "do-not-delete", "Value": "yes"}])
    assert "protected by tag do-not-delete=yes" in STOP.recheck(h.ctx(), item).reason

    resized = run_instance(h)
    item = h.item("ec2-instance", resized)
    h.ec2.stop_instances(InstanceIds=[resized])
    h.ec2.modify_instance_attribute(InstanceId=resized, InstanceType={"Value": "t3.large"})
    h.ec2.start_instances(InstanceIds=[resized])
    assert "type changed since the scan" in STOP.recheck(h.ctx(), item).reason


def test_recheck_says_gone_when_stopped_or_terminated(h: Harness):
    stopped, terminated = run_instance(h), run_instance(h)
    items = {i: h.item("ec2-instance", i) for i in (stopped, terminated)}
    h.ec2.stop_instances(InstanceIds=[stopped])
    h.ec2.terminate_instances(InstanceIds=[terminated])
    for instance_id, item in items.items():
        recheck = STOP.recheck(h.ctx(), item)
        assert not recheck.still_waste and recheck.facts.get("gone"), instance_id


def test_dry_run_changes_nothing(h: Harness):
    instance_id = run_instance(h)
    result = STOP.dry_run(h.ctx(), h.item("ec2-instance", instance_id), h.params(STOP))
    assert result.would_succeed, result.message
    assert state(h, instance_id) == "running"
    (call,) = h.mutating()
    assert call.params == {"InstanceIds": [instance_id], "DryRun": True}


def test_stop_records_then_rollback_starts_it_again(h: Harness):
    instance_id = run_instance(h, tags={"team": "ml"})
    item = h.item("ec2-instance", instance_id)
    ctx, params = h.ctx(), h.params(STOP)

    data = STOP.prepare(ctx, item, params, {})
    outcome = STOP.execute(ctx, item, params, data)

    assert not outcome.already_done
    assert state(h, instance_id) == "stopped"
    assert data["instance_type"] == "t3.micro" and data["state_before"] == "running"
    assert data["tags"] == {"team": "ml"} and data["volume_ids"]
    assert h.checkpoints["instance_id"] == instance_id  # in the ledger before the stop

    undo = STOP.rollback(h.ctx(), data, params)
    again = STOP.rollback(h.ctx(), data, params)

    assert state(h, instance_id) == "running"
    assert not undo.already_done and again.already_done
    assert h.recorder.count(service="ec2", operation="StartInstances") == 1


def test_crash_after_the_stop_then_resume_is_recorded_once(h: Harness):
    """Intent recorded, StopInstances took effect, its response lost: the resumed attempt's
    re-check says gone (the executor records it as done) and stops nothing again."""
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    ctx, params = h.ctx(), h.params(STOP)
    data = STOP.prepare(ctx, item, params, {})
    lost = faults.lose_response(h.events, "ec2", "StopInstances")

    with pytest.raises(aws.AwsError) as failed:
        STOP.execute(ctx, item, params, data)
    assert failed.value.kind is aws.ErrorKind.RECOVERABLE and lost.hits == 1

    resumed = STOP.recheck(h.ctx(ctx.action_id), item)
    assert resumed.facts.get("gone") and state(h, instance_id) == "stopped"
    assert STOP.prepare(ctx, item, params, h.checkpoints) == data  # from the ledger, no call
    stops = [c for c in h.mutating() if c.operation == "StopInstances"]
    assert len(stops) == 1


def test_rollback_of_a_terminated_instance_says_so(h: Harness):
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    ctx, params = h.ctx(), h.params(STOP)
    data = STOP.prepare(ctx, item, params, {})
    STOP.execute(ctx, item, params, data)
    h.ec2.terminate_instances(InstanceIds=[instance_id])

    with pytest.raises(aws.AwsError, match="terminated since it was stopped"):
        STOP.rollback(h.ctx(), data, params)


def test_recheck_refuses_an_instance_busy_since_the_scan(h: Harness):
    """The scan's thresholds travel with the finding; the last day's CPU over them refuses."""
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    assert item.resource_details["max_cpu_percent"] == 5
    assert STOP.recheck(h.ctx(), item).still_waste

    seeder_client(h, "cloudwatch").put_metric_data(
        Namespace="AWS/EC2",
        MetricData=[
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Value": 63.0,
                "Timestamp": utcnow() - timedelta(hours=3),
            }
        ],
    )
    refused = STOP.recheck(h.ctx(), item)

    assert not refused.still_waste
    assert "CPU peaked at 63.0% in the last day" in refused.reason
    assert state(h, instance_id) == "running" and not h.mutating()


def _usage(h: Harness, instance_id: str, metric: str, value: float, hours_ago: float) -> None:
    datapoint(h, "AWS/EC2", metric, ("InstanceId", instance_id), value, hours_ago)


def test_recheck_holds_the_last_day_to_the_scans_cpu_and_network_thresholds(h: Harness):
    """At the scan's thresholds the instance is still idle; one byte more of network over the
    last day refuses it; what happened before the last day, or on another instance, does not."""
    instance_id = run_instance(h)
    other = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    limit = item.resource_details["max_network_bytes_per_day"]
    _usage(h, instance_id, "CPUUtilization", 5.0, hours_ago=1)  # max_cpu_percent is 5
    _usage(h, instance_id, "CPUUtilization", 95.0, hours_ago=30)
    _usage(h, instance_id, "NetworkIn", limit // 2, hours_ago=2)
    _usage(h, instance_id, "NetworkOut", limit - limit // 2, hours_ago=3)
    _usage(h, other, "CPUUtilization", 99.0, hours_ago=1)

    at_limits = STOP.recheck(h.ctx(), item)
    _usage(h, instance_id, "NetworkIn", 1, hours_ago=4)
    above = STOP.recheck(h.ctx(), item)

    assert at_limits.still_waste, at_limits.reason
    assert not above.still_waste
    assert f"{limit + 1:,} bytes of network in the last day" in above.reason
    assert f"idle at <= {limit:,}" in above.reason
    assert not h.mutating()


def test_recheck_refuses_a_spot_instance(h: Harness):
    instance_id = run_instance(h)
    spot = run_instance(h, InstanceMarketOptions={"MarketType": "spot"})
    item = h.item("ec2-instance", instance_id)
    as_spot = dataclasses.replace(item, resource_id=spot)

    refused = STOP.recheck(h.ctx(), as_spot)

    assert not refused.still_waste and "spot instance" in refused.reason


def test_rollback_of_an_instance_started_meanwhile_is_done_without_a_start(h: Harness):
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    ctx, params = h.ctx(), h.params(STOP)
    data = STOP.prepare(ctx, item, params, {})
    STOP.execute(ctx, item, params, data)
    h.ec2.start_instances(InstanceIds=[instance_id])

    outcome = STOP.rollback(h.ctx(), data, params)

    assert outcome.already_done and state(h, instance_id) == "running"
    assert h.recorder.count(service="ec2", operation="StartInstances") == 0


def test_prepare_keeps_an_earlier_record(h: Harness):
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    earlier = {"instance_id": instance_id, "state_before": "running", "tags": {"team": "ml"}}

    kept = STOP.prepare(h.ctx(), item, h.params(STOP), earlier)

    assert kept == earlier and h.checkpoints == {}
