"""The ec2-instance cleanup action (stop) against moto over HTTP.

Items come from a real scan (``Harness.item``); moto publishes no CPU metrics, so the finding is
the low-confidence "metrics missing" one, which is all the action needs.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from typing import Any

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import ec2_instance
from cloudsweep.cleanup.base import Outcome, Recheck
from cloudsweep.domain import ActionType, utcnow
from tests import faults, sts_gate

from .compute_helpers import datapoint, instance, run_instance, seeder_client, state
from .ebs_helpers import ACCOUNT, AZ, REGION, Harness

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


# --- what the re-check says, word for word (it is the refusal a user reads) ---------------------


def _described_as(h: Harness, *, times: int | None = None, **fields: object) -> None:
    """DescribeInstances of the cleanup session answers ``fields`` on every instance (moto
    launches no instance-store-backed or pending instances, and holds none shutting down): on
    every answer, or on the next ``times`` answers only."""
    left = [times]

    def report(parsed: dict[str, Any], **_: Any) -> None:
        if left[0] is not None:
            if left[0] <= 0:
                return
            left[0] -= 1
        for reservation in parsed.get("Reservations", []):
            for described in reservation["Instances"]:
                described.update(fields)

    h.events.register("after-call.ec2.DescribeInstances", report)


def test_recheck_reports_the_live_instance_and_its_reasons_in_full(h: Harness):
    instance_id = run_instance(h, tags={"team": "ml"})
    item = h.item("ec2-instance", instance_id)
    grouped = run_instance(h, tags={"aws:autoscaling:groupName": "batch"})
    grouped_item = h.item("ec2-instance", grouped)
    missing = dataclasses.replace(item, resource_id="i-0123456789abcdef0")

    passing = STOP.recheck(h.ctx(), item)
    in_group = STOP.recheck(h.ctx(), grouped_item)
    gone = STOP.recheck(h.ctx(), missing)
    h.ec2.stop_instances(InstanceIds=[instance_id])
    stopped = STOP.recheck(h.ctx(), item)

    assert passing == Recheck(
        True,
        "still running, unprotected, stoppable and in no Auto Scaling group",
        {"state": "running", "instance_type": "t3.micro", "tags": {"team": "ml"}},
    )
    assert in_group.reason == (
        "instance belongs to Auto Scaling group batch, which would replace it: lower the group's "
        "desired capacity instead"
    )
    assert gone == Recheck(False, "instance no longer exists", {"gone": True})
    assert stopped == Recheck(
        False,
        "instance is already stopped",
        {"state": "stopped", "instance_type": "t3.micro", "tags": {"team": "ml"}, "gone": True},
    )
    assert not h.mutating()


def test_recheck_refuses_with_the_exact_reason(h: Harness):
    """Spot, a changed type, an instance-store root and a pending instance: each refusal says
    which, in full."""
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    spot = run_instance(h, InstanceMarketOptions={"MarketType": "spot"})
    resized = dataclasses.replace(
        item, resource_details={**item.resource_details, "instance_type": "t3.large"}
    )

    as_spot = STOP.recheck(h.ctx(), dataclasses.replace(item, resource_id=spot))
    changed = STOP.recheck(h.ctx(), resized)
    _described_as(h, RootDeviceType="instance-store")
    instance_store = STOP.recheck(h.ctx(), item)

    assert as_spot.reason == (
        "it is a spot instance: AWS interrupts spot instances, CloudSweep does not stop them"
    )
    assert changed.reason == "instance type changed since the scan: t3.large -> t3.micro"
    assert not instance_store.still_waste
    assert instance_store.reason == "its root device is an instance store: it cannot be stopped"


def test_every_refusal_of_a_running_instance_carries_it_as_its_facts(h: Harness):
    """What the ledger keeps of a refused attempt (``{"recheck": facts}``): the instance as the
    re-check saw it, whichever check refused it (a change since the scan, a stop that would lose
    data, usage since the scan)."""
    instance_id = run_instance(h, tags={"team": "ml"})
    item = h.item("ec2-instance", instance_id)
    resized = dataclasses.replace(
        item, resource_details={**item.resource_details, "instance_type": "t3.large"}
    )
    facts = {"state": "running", "instance_type": "t3.micro", "tags": {"team": "ml"}}

    changed = STOP.recheck(h.ctx(), resized)
    _usage(h, instance_id, "CPUUtilization", 63.0, hours_ago=3)
    busy = STOP.recheck(h.ctx(), item)
    _described_as(h, RootDeviceType="instance-store")
    instance_store = STOP.recheck(h.ctx(), item)

    assert changed == Recheck(
        False, "instance type changed since the scan: t3.large -> t3.micro", facts
    )
    assert busy == Recheck(
        False, "busy since the scan: CPU peaked at 63.0% in the last day (idle at <= 5%)", facts
    )
    assert instance_store == Recheck(
        False, "its root device is an instance store: it cannot be stopped", facts
    )


def test_recheck_refuses_a_pending_instance_without_calling_it_gone(h: Harness):
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    _described_as(h, State={"Code": 0, "Name": "pending"})

    pending = STOP.recheck(h.ctx(), item)

    assert pending == Recheck(
        False,
        "instance is pending, not running",
        {"state": "pending", "instance_type": "t3.micro", "tags": {}},
    )


def test_recheck_of_a_finding_without_a_recorded_type_does_not_call_it_changed(h: Harness):
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    details = {k: v for k, v in item.resource_details.items() if k != "instance_type"}

    recheck = STOP.recheck(h.ctx(), dataclasses.replace(item, resource_details=details))

    assert recheck.still_waste, recheck.reason


def _with_thresholds(item, **thresholds):
    """The item as a finding with only these of the scan's idle thresholds recorded."""
    details = {
        k: v
        for k, v in item.resource_details.items()
        if k not in ("max_cpu_percent", "max_network_bytes_per_day")
    }
    return dataclasses.replace(item, resource_details={**details, **thresholds})


def test_recheck_holds_each_threshold_the_finding_recorded_alone(h: Harness):
    """A finding may carry the CPU threshold alone or the network one alone: each is held on
    its own, and a finding with neither is not refused (nor asked about) for usage."""
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    cpu_only = _with_thresholds(item, max_cpu_percent=5)
    network_only = _with_thresholds(item, max_network_bytes_per_day=1000)
    neither = _with_thresholds(item)

    idle = [STOP.recheck(h.ctx(), i) for i in (cpu_only, network_only)]
    _usage(h, instance_id, "NetworkIn", 1001, hours_ago=2)
    busy_network = STOP.recheck(h.ctx(), network_only)
    still_idle_cpu = STOP.recheck(h.ctx(), cpu_only)
    _usage(h, instance_id, "CPUUtilization", 5.5, hours_ago=2)
    busy_cpu = STOP.recheck(h.ctx(), cpu_only)
    asked = h.recorder.count(service="cloudwatch", operation="GetMetricData")
    unbounded = STOP.recheck(h.ctx(), neither)

    assert all(r.still_waste for r in idle), [r.reason for r in idle]
    assert busy_network.reason == (
        "busy since the scan: 1,001 bytes of network in the last day (idle at <= 1,000)"
    )
    assert still_idle_cpu.still_waste, still_idle_cpu.reason
    assert busy_cpu.reason == (
        "busy since the scan: CPU peaked at 5.5% in the last day (idle at <= 5%)"
    )
    assert unbounded.still_waste, unbounded.reason
    assert h.recorder.count(service="cloudwatch", operation="GetMetricData") == asked


def test_recheck_without_datapoints_holds_a_zero_cpu_threshold(h: Harness):
    """No CPU datapoints say nothing: even a threshold of 0% is not exceeded by them."""
    instance_id = run_instance(h)
    item = _with_thresholds(h.item("ec2-instance", instance_id), max_cpu_percent=0)

    recheck = STOP.recheck(h.ctx(), item)

    assert recheck.still_waste, recheck.reason


def test_recheck_asks_cloudwatch_for_the_last_days_hourly_peaks_and_sums(h: Harness):
    """AWS takes a period in whole minutes and case-sensitive statistic names: the request, as
    CloudWatch received it."""
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)

    STOP.recheck(h.ctx(), item)

    (asked,) = h.recorder.calls(service="cloudwatch", operation="GetMetricData")
    dims = [{"Name": "InstanceId", "Value": instance_id}]
    assert asked.params["MetricDataQueries"] == [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/EC2", "MetricName": metric, "Dimensions": dims},
                "Period": 3600,
                "Stat": stat,
            },
        }
        for query_id, metric, stat in (
            ("cpu", "CPUUtilization", "Maximum"),
            ("net_in", "NetworkIn", "Sum"),
            ("net_out", "NetworkOut", "Sum"),
        )
    ]
    assert asked.params["EndTime"] - asked.params["StartTime"] == timedelta(days=1)


def test_a_failing_auto_scaling_or_cloudwatch_answer_names_the_call(h: Harness):
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    # Auto Scaling answers in the query protocol, CloudWatch (as botocore talks to it) in JSON.
    for service, operation, answer in (
        (
            "autoscaling",
            "DescribeAutoScalingInstances",
            {"body": faults.query_error_body("AccessDenied", "not allowed")},
        ),
        (
            "cloudwatch",
            "GetMetricData",
            {
                "body": b'{"__type": "AccessDenied", "message": "not allowed"}',
                "headers": {"Content-Type": "application/x-amz-json-1.0"},
            },
        ),
    ):
        events = h.session.client(service, REGION).meta.events
        denied = faults.fail_with(
            events, f"before-send.{service}.{operation}", status=403, times=1, **answer
        )
        with pytest.raises(aws.AwsError) as failed:
            STOP.recheck(h.ctx(), item)
        assert denied.hits == 1
        assert str(failed.value).startswith(
            f"{service}:{operation} in {REGION} failed (access-denied, AccessDenied)"
        )


# --- what prepare records and execute and rollback say --------------------------------------------


def test_prepare_records_the_live_instance(h: Harness):
    """Type, state, zone, addresses, volumes and tags as AWS has them at prepare, not as the
    scan saw them."""
    instance_id = run_instance(h, tags={"team": "ml"})
    item = h.item("ec2-instance", instance_id)
    h.ec2.stop_instances(InstanceIds=[instance_id])
    h.ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "t3.large"})
    h.ec2.start_instances(InstanceIds=[instance_id])
    h.ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "owner", "Value": "ops"}])
    live = instance(h, instance_id)

    data = STOP.prepare(h.ctx(), item, h.params(STOP), {})

    assert data == {
        "instance_id": instance_id,
        "instance_type": "t3.large",
        "state_before": "running",
        "availability_zone": AZ,
        "private_ip_address": live["PrivateIpAddress"],
        "public_ip_address": live["PublicIpAddress"],
        "volume_ids": [m["Ebs"]["VolumeId"] for m in live["BlockDeviceMappings"]],
        "tags": {"team": "ml", "owner": "ops"},
    }
    assert h.checkpoints == data


def test_prepare_of_an_instance_gone_since_the_scan_records_what_the_scan_saw(h: Harness):
    item = h.item("ec2-instance", run_instance(h, tags={"team": "ml"}))
    missing = dataclasses.replace(item, resource_id="i-0123456789abcdef0")

    data = STOP.prepare(h.ctx(), missing, h.params(STOP), {})

    assert data == {
        "instance_id": "i-0123456789abcdef0",
        "instance_type": "t3.micro",
        "state_before": None,
        "availability_zone": None,
        "private_ip_address": None,
        "public_ip_address": None,
        "volume_ids": [],
        "tags": {"team": "ml"},
    }


def test_execute_says_what_it_stopped_and_a_vanished_instance_is_done(h: Harness):
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    ctx, params = h.ctx(), h.params(STOP)
    missing = dataclasses.replace(item, resource_id="i-0123456789abcdef0")

    outcome = STOP.execute(ctx, item, params, STOP.prepare(ctx, item, params, {}))
    vanished = STOP.execute(ctx, missing, params, {"instance_id": missing.resource_id})

    assert outcome.note == f"stopped {instance_id}"
    (stopping,) = outcome.response["StoppingInstances"]
    assert stopping["InstanceId"] == instance_id
    assert vanished == Outcome(
        {"InstanceId": "i-0123456789abcdef0", "Error": "InvalidInstanceID.NotFound"},
        already_done=True,
        note="i-0123456789abcdef0 was already stopped (an earlier attempt)",
    )


def test_rollback_says_what_it_started(h: Harness):
    instance_id = run_instance(h)
    item = h.item("ec2-instance", instance_id)
    ctx, params = h.ctx(), h.params(STOP)
    data = STOP.prepare(ctx, item, params, {})
    STOP.execute(ctx, item, params, data)

    undo = STOP.rollback(h.ctx(), data, params)
    again = STOP.rollback(h.ctx(), data, params)

    assert undo.note == f"started {instance_id} again" == again.note
    assert undo.response["InstanceId"] == instance_id
    (starting,) = undo.response["StartingInstances"]
    assert starting["InstanceId"] == instance_id
    assert again.response == {"InstanceId": instance_id} and again.already_done


def test_rollback_of_a_terminated_or_vanished_instance_fails_terminal_with_the_reason(
    h: Harness,
):
    instance_id = run_instance(h)
    h.ec2.terminate_instances(InstanceIds=[instance_id])
    params = h.params(STOP)

    for gone in (instance_id, "i-0123456789abcdef0"):
        with pytest.raises(aws.AwsError) as failed:
            STOP.rollback(h.ctx(), {"instance_id": gone}, params)
        assert str(failed.value) == (
            f"ec2:StartInstances in {REGION} failed (terminal, InstanceGone): instance {gone} "
            "was terminated since it was stopped: nothing to start"
        )
    assert h.recorder.count(service="ec2", operation="StartInstances") == 0


def test_rollback_of_an_instance_that_never_runs_again_times_out_recoverable(h: Harness):
    """The start is asked, the instance stays pending: the wait runs out, and the error says
    which wait on which call, retryable."""
    instance_id = run_instance(h)
    h.ec2.stop_instances(InstanceIds=[instance_id])
    params = h.params(STOP)
    h.events.register(
        "after-call.ec2.StartInstances",
        lambda **_: _described_as(h, State={"Code": 0, "Name": "pending"}),
    )

    with pytest.raises(aws.AwsError) as failed:
        STOP.rollback(h.ctx(), {"instance_id": instance_id}, params)

    assert (failed.value.kind, failed.value.code) == (aws.ErrorKind.RECOVERABLE, "WaiterTimedOut")
    assert str(failed.value).startswith(
        f"ec2:DescribeInstances in {REGION} failed (recoverable, WaiterTimedOut): "
        "instance_running: "
    )
    assert h.recorder.count(service="ec2", operation="StartInstances") == 1


def _received(sts: sts_gate.StsGate, action: str, since: float = 0.0) -> list[dict[str, str]]:
    """The parameters of each ``action`` request moto received from the scanned account's
    sessions (the scan's and the cleanup's, not the seeder's) since ``since``."""
    return [r.params for r in sts.calls(account=ACCOUNT, since=since) if r.action == action]


def _stopped(h: Harness, instance_id: str) -> dict[str, Any]:
    """The instance stopped by the action, and the rollback data the action recorded."""
    item = h.item("ec2-instance", instance_id)
    ctx, params = h.ctx(), h.params(STOP)
    data = STOP.prepare(ctx, item, params, {})
    STOP.execute(ctx, item, params, data)
    assert state(h, instance_id) == "stopped"
    return dict(data)


def test_rollback_of_an_instance_shutting_down_refuses_and_starts_nothing(
    h: Harness, sts: sts_gate.StsGate
):
    """Terminated since the stop, and still shutting down: starting it is impossible, the
    rollback says so, terminal, and sends no StartInstances."""
    instance_id = run_instance(h)
    data = _stopped(h, instance_id)
    _described_as(h, State={"Code": 32, "Name": "shutting-down"})

    with pytest.raises(aws.AwsError) as failed:
        STOP.rollback(h.ctx(), data, h.params(STOP))

    assert _received(sts, "StartInstances") == []
    assert state(h, instance_id) == "stopped"
    assert failed.value.kind is aws.ErrorKind.TERMINAL
    assert str(failed.value) == (
        f"ec2:StartInstances in {REGION} failed (terminal, InstanceGone): instance {instance_id} "
        "was terminated since it was stopped: nothing to start"
    )


def test_rollback_of_an_instance_already_pending_is_done_without_a_second_start(
    h: Harness, sts: sts_gate.StsGate
):
    """Started meanwhile and still pending when the rollback looks: it is done (no second
    StartInstances), once the wait sees it running."""
    instance_id = run_instance(h)
    data = _stopped(h, instance_id)
    h.ec2.start_instances(InstanceIds=[instance_id])
    _described_as(h, times=2, State={"Code": 0, "Name": "pending"})

    outcome = STOP.rollback(h.ctx(), data, h.params(STOP))

    assert _received(sts, "StartInstances") == []
    assert state(h, instance_id) == "running"
    assert outcome == Outcome(
        {"InstanceId": instance_id}, already_done=True, note=f"started {instance_id} again"
    )


def test_rollback_waits_for_its_own_instance_not_the_regions_others(
    h: Harness, sts: sts_gate.StsGate
):
    """Another instance of the region stays stopped: the wait after the start asks about this
    instance only, and ends when it runs."""
    instance_id, other = run_instance(h), run_instance(h)
    data = _stopped(h, instance_id)
    h.ec2.stop_instances(InstanceIds=[other])
    since = time.time()

    outcome = STOP.rollback(h.ctx(), data, h.params(STOP))

    assert not outcome.already_done
    assert (state(h, instance_id), state(h, other)) == ("running", "stopped")
    described = _received(sts, "DescribeInstances", since)
    assert len(described) >= 2  # the rollback's look, then the wait's
    assert [{k: v for k, v in p.items() if k.startswith("InstanceId")} for p in described] == [
        {"InstanceId.1": instance_id}
    ] * len(described)
