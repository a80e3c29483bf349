"""The load-balancer ``delete`` action (ELBv2 and classic) against moto over HTTP.

Findings come from the real detector; the action runs through a cleanup ``AccountSession`` whose
calls are recorded. Faults are injected at the botocore event layer (``tests.faults``).

Not testable on moto 5.2.5 (checked): moto deletes an ELBv2 load balancer whose
``deletion_protection.enabled`` is true (AWS refuses with OperationNotPermitted), so that case is
tested at the recheck and dry run only; moto keeps a deleted load balancer's ARN in its target
groups' ``LoadBalancerArns``; Elastic IP subnet mappings of NLBs and gateway load balancers are
not exercised.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from cloudsweep import aws
from cloudsweep.cleanup import ACTION_TAG, CleanupItem, get
from cloudsweep.cleanup.load_balancer import DeleteLoadBalancer
from cloudsweep.detectors.load_balancer import LoadBalancerDetector
from cloudsweep.domain import utcnow
from tests import faults

from .lb_rds_helpers import LATER, REGION, Harness, strip_volatile, tags_of

DETECTOR = LoadBalancerDetector()
ACTION = DeleteLoadBalancer()
PARAMS = ACTION.parameters()
# botocore names events by the hyphenated service ID, not the client name: a fault registered
# under "elbv2" would never fire.
ELBV2_EVENTS = "elastic-load-balancing-v2"
ELB_EVENTS = "elastic-load-balancing"


@pytest.fixture
def h(moto_endpoint: str) -> Harness:
    return Harness(moto_endpoint)


def _world(h: Harness) -> dict[str, str]:
    """An idle ALB with two listeners (HTTP, HTTPS with two certificates), rules, three target
    groups (one of them holding a stopped instance), a security group, attributes and tags."""
    ec2, elbv2, acm = h.seed("ec2"), h.seed("elbv2"), h.seed("acm")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    sg = ec2.create_security_group(GroupName="promo-alb", Description="promo", VpcId=vpc)["GroupId"]
    cert = acm.request_certificate(DomainName="promo.example.com")["CertificateArn"]
    extra_cert = acm.request_certificate(DomainName="promo2.example.com")["CertificateArn"]
    lb = elbv2.create_load_balancer(
        Name="promo-alb",
        Subnets=subnets,
        SecurityGroups=[sg],
        Scheme="internet-facing",
        Tags=[{"Key": "team", "Value": "marketing"}, {"Key": "Name", "Value": "promo-alb"}],
    )["LoadBalancers"][0]
    arn = lb["LoadBalancerArn"]
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=arn, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "120"}]
    )

    def group(name: str, port: int) -> str:
        return elbv2.create_target_group(
            Name=name,
            Protocol="HTTP",
            Port=port,
            VpcId=vpc,
            HealthCheckPath="/healthz",
            Tags=[{"Key": "team", "Value": "marketing"}],
        )["TargetGroups"][0]["TargetGroupArn"]

    web, api, admin = group("promo-web", 80), group("promo-api", 8080), group("promo-admin", 9000)
    elbv2.modify_target_group_attributes(
        TargetGroupArn=api,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}],
    )
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    elbv2.register_targets(TargetGroupArn=api, Targets=[{"Id": instance, "Port": 8080}])
    # moto reports the target of a stopped instance "unused": registered, not healthy. It must be
    # running to be registered (as in AWS).
    ec2.stop_instances(InstanceIds=[instance])
    http = elbv2.create_listener(
        LoadBalancerArn=arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": web}],
        Tags=[{"Key": "listener", "Value": "http"}],
    )["Listeners"][0]["ListenerArn"]
    elbv2.create_rule(
        ListenerArn=http,
        Priority=10,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": api}],
        Tags=[{"Key": "rule", "Value": "api"}],
    )
    elbv2.create_rule(
        ListenerArn=http,
        Priority=5,
        Conditions=[
            {"Field": "host-header", "HostHeaderConfig": {"Values": ["admin.example.com"]}}
        ],
        Actions=[
            {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": admin}]}}
        ],
    )
    https = elbv2.create_listener(
        LoadBalancerArn=arn,
        Protocol="HTTPS",
        Port=443,
        Certificates=[{"CertificateArn": cert}],
        SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06",
        DefaultActions=[
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"},
            }
        ],
    )["Listeners"][0]["ListenerArn"]
    elbv2.add_listener_certificates(
        ListenerArn=https, Certificates=[{"CertificateArn": extra_cert}]
    )
    return {
        "arn": arn,
        "id": arn.split(":loadbalancer/", 1)[1],
        "dns": lb["DNSName"],
        "web": web,
        "api": api,
        "admin": admin,
        "instance": instance,
        "cert": cert,
        "extra_cert": extra_cert,
        "sg": sg,
        "vpc": vpc,
    }


def _deleted(h: Harness) -> tuple[dict[str, str], dict[str, Any]]:
    """The world's load balancer prepared and deleted: the world's IDs and the prepared record."""
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})
    ACTION.execute(ctx, item, PARAMS, data)
    return w, data


def _exists(h: Harness, arn: str) -> bool:
    try:
        h.seed("elbv2").describe_load_balancers(LoadBalancerArns=[arn])
    except h.seed("elbv2").exceptions.LoadBalancerNotFoundException:
        return False
    return True


def _snapshot(h: Harness, arn: str) -> dict[str, object]:
    """Everything a describe says about the load balancer, to compare before and after."""
    elbv2 = h.seed("elbv2")
    listeners = elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
    return strip_volatile(
        {
            "lb": elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"],
            "attributes": elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn),
            "tags": elbv2.describe_tags(ResourceArns=[arn]),
            "listeners": listeners,
            "rules": [elbv2.describe_rules(ListenerArn=x["ListenerArn"]) for x in listeners],
            "groups": elbv2.describe_target_groups(LoadBalancerArn=arn),
        }
    )


def test_registered_once_under_its_key():
    assert get("load-balancer", "delete") is DeleteLoadBalancer
    assert "elasticloadbalancing:DeleteLoadBalancer" in ACTION.permissions
    assert ACTION.rollback_possible


def test_recheck_passes_for_the_idle_load_balancer(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])

    result = ACTION.recheck(h.context(), item)

    assert result.still_waste, result.reason
    assert result.reason == "still idle: no new healthy target, no traffic, not protected"
    (lb,) = h.seed("elbv2").describe_load_balancers(LoadBalancerArns=[w["arn"]])["LoadBalancers"]
    assert result.facts == {
        "tags": {"team": "marketing", "Name": "promo-alb"},
        "target_groups": result.facts["target_groups"],
        "registered_targets": 1,
        "healthy_targets": 0,
        "state": lb["State"]["Code"],
    }
    assert sorted(result.facts["target_groups"]) == ["promo-admin", "promo-api", "promo-web"]
    assert h.mutating() == []


def test_recheck_refuses_when_a_target_is_registered_or_healthy_again(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    ec2 = h.seed("ec2")
    fresh = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    h.seed("elbv2").register_targets(TargetGroupArn=w["web"], Targets=[{"Id": fresh}])

    result = ACTION.recheck(h.context(), item)

    assert not result.still_waste
    assert result.reason == "1 target(s) are healthy now (the scan saw 0)"
    assert result.facts["healthy_targets"] == 1 and result.facts["registered_targets"] == 2


def test_an_older_finding_without_healthy_targets_counts_none_as_seen(h):
    """A finding stored before the detector recorded ``healthy_targets`` saw no healthy target
    (it was judged "nothing healthy behind it"): one healthy target now refuses, as such."""
    w = _world(h)
    item = _without(h.item(DETECTOR, w["id"]), "healthy_targets")
    fresh = h.seed("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    h.seed("elbv2").register_targets(TargetGroupArn=w["web"], Targets=[{"Id": fresh}])

    result = ACTION.recheck(h.context(), item)

    assert (result.still_waste, result.reason) == (
        False,
        "1 target(s) are healthy now (the scan saw 0)",
    )


def test_recheck_refuses_a_new_registration_even_if_unhealthy(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    ec2 = h.seed("ec2")
    other = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    h.seed("elbv2").register_targets(TargetGroupArn=w["web"], Targets=[{"Id": other}])
    ec2.stop_instances(InstanceIds=[other])

    result = ACTION.recheck(h.context(), item)

    assert not result.still_waste
    assert "registered since the scan (2 now, 1 then)" in result.reason
    assert (result.facts["registered_targets"], result.facts["healthy_targets"]) == (2, 0)


def test_recheck_refuses_a_protection_tag_added_since_the_scan(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    h.seed("elbv2").add_tags(
        ResourceArns=[w["arn"]], Tags=[{"Key": "cloudsweep.io/protect", "Value": "true"}]
    )

    result = ACTION.recheck(h.context(), item)

    assert not result.still_waste
    assert result.reason == "protection tag cloudsweep.io/protect=true is set"
    assert result.facts == {
        "tags": {"team": "marketing", "Name": "promo-alb", "cloudsweep.io/protect": "true"}
    }


def test_recheck_and_dry_run_refuse_deletion_protection(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    unprotected = ACTION.dry_run(h.context(), item, PARAMS)
    h.seed("elbv2").modify_load_balancer_attributes(
        LoadBalancerArn=w["arn"],
        Attributes=[{"Key": "deletion_protection.enabled", "Value": "true"}],
    )

    result = ACTION.recheck(h.context(), item)
    dry = ACTION.dry_run(h.context(), item, PARAMS)

    assert not result.still_waste
    assert result.reason == (
        "deletion protection is on (attribute deletion_protection.enabled is true)"
    )
    assert result.facts == {"deletion_protection": True}
    assert not dry.would_succeed
    assert dry.message == f"DeleteLoadBalancer would fail: deletion protection is on for {w['id']}"
    # the refusal still lists the permissions the action needs, as the dry run of it did before
    assert unprotected.would_succeed and dry.calls == unprotected.calls
    assert h.mutating() == []


def test_recheck_refuses_a_load_balancer_that_is_gone(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    h.seed("elbv2").delete_load_balancer(LoadBalancerArn=w["arn"])

    result = ACTION.recheck(h.context(), item)

    assert not result.still_waste and result.facts == {"gone": True}
    assert result.reason == f"load balancer {w['id']} no longer exists"


def test_dry_run_changes_nothing_and_lists_the_calls(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    before = _snapshot(h, w["arn"])

    result = ACTION.dry_run(h.context(), item, PARAMS)

    assert result.would_succeed, result.message
    assert result.message == (
        f"would record the configuration of {w['id']} and delete it (its target groups are kept)"
    )
    # the permissions the delete and its record need, as the dry-run report lists them
    assert result.calls == tuple(
        f"elasticloadbalancing:{op}"
        for op in (
            "DescribeLoadBalancers",
            "DescribeLoadBalancerAttributes",
            "DescribeTags",
            "DescribeListeners",
            "DescribeListenerCertificates",
            "DescribeRules",
            "DescribeTargetGroups",
            "DescribeTargetGroupAttributes",
            "DescribeTargetHealth",
            "DeleteLoadBalancer",
        )
    )
    assert h.mutating() == []
    assert h.recorder.count(operation="DescribeLoadBalancers") >= 1
    assert _snapshot(h, w["arn"]) == before


def test_prepare_records_the_full_configuration(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])

    data = ACTION.prepare(h.context(), item, PARAMS, {})

    assert h.checkpoints == data  # checkpointed before returning
    assert h.mutating() == []
    assert data["kind"] == "elbv2" and data["config_complete"]
    assert "ResponseMetadata" not in json.dumps(data)  # request IDs are not configuration
    recorded_at = datetime.fromisoformat(data["recorded_at"])
    assert abs((recorded_at - utcnow()).total_seconds()) < 60
    lb = data["load_balancer"]
    assert lb["LoadBalancerArn"] == w["arn"] and lb["Type"] == "application"
    assert lb["Scheme"] == "internet-facing" and lb["IpAddressType"] == "ipv4"
    assert lb["SecurityGroups"] == [w["sg"]]
    assert len(lb["AvailabilityZones"]) == 2 and all(z["SubnetId"] for z in lb["AvailabilityZones"])
    assert isinstance(lb["CreatedTime"], str)  # JSON-ready
    assert {"Key": "idle_timeout.timeout_seconds", "Value": "120"} in data["attributes"]
    assert tags_of(data["tags"]) == {"team": "marketing", "Name": "promo-alb"}
    listeners = {x["Port"]: x for x in data["listeners"]}
    assert set(listeners) == {80, 443}
    assert sorted(int(r["Priority"]) for r in listeners[80]["Rules"]) == [5, 10]
    rules = {r["Priority"]: r for r in listeners[80]["Rules"]}
    assert tags_of(rules["10"]["Tags"]) == {"rule": "api"}
    assert {c["CertificateArn"]: c["IsDefault"] for c in listeners[443]["Certificates"]} == {
        w["cert"]: True,
        w["extra_cert"]: False,
    }
    groups = {g["TargetGroupArn"]: g for g in data["target_groups"]}
    assert set(groups) == {w["web"], w["api"], w["admin"]}
    assert groups[w["api"]]["Targets"] == [{"Id": w["instance"], "Port": 8080}]
    assert groups[w["web"]]["HealthCheckPath"] == "/healthz"
    assert {"Key": "deregistration_delay.timeout_seconds", "Value": "30"} in groups[w["api"]][
        "Attributes"
    ]
    assert tags_of(groups[w["web"]]["Tags"]) == {"team": "marketing"}

    # A rerun after a crash keeps what was recorded, even once the load balancer is gone.
    h.seed("elbv2").delete_load_balancer(LoadBalancerArn=w["arn"])
    assert ACTION.prepare(h.context(), item, PARAMS, data) == data


def test_the_record_keeps_every_group_a_listener_forwards_to_if_the_lookup_misses_it(h):
    """The rollback rebuilds the target groups the record names. Each group is found twice: from
    the listeners' and rules' actions (a plain ``TargetGroupArn``, a ``ForwardConfig``) and by
    DescribeTargetGroups(LoadBalancerArn=...). With the second answering none, the first alone
    must still name all three."""
    w = _world(h)
    item = h.item(DETECTOR, w["id"])

    def by_load_balancer(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["by_load_balancer"] = "LoadBalancerArn" in params

    def answer_none(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if context.get("by_load_balancer"):
            parsed["TargetGroups"] = []

    events = h.session.events
    events.register(f"before-parameter-build.{ELBV2_EVENTS}.DescribeTargetGroups", by_load_balancer)
    events.register(f"after-call.{ELBV2_EVENTS}.DescribeTargetGroups", answer_none)

    data = ACTION.prepare(h.context(), item, PARAMS, {})

    recorded = {g["TargetGroupArn"] for g in data["target_groups"]}
    assert recorded == {w["web"], w["api"], w["admin"]}


def test_the_record_reads_every_page_of_listeners_certificates_and_rules(h):
    """AWS pages its answers; moto does not. With one listener, certificate and rule a page, the
    record is the same as read in one go (the rollback rebuilds from it)."""
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    whole = ACTION.prepare(h.context(), item, PARAMS, {})
    # A session of its own: a botocore client keeps the event handlers it was created with.
    pager = Harness(h.endpoint)
    paged = {
        operation: faults.one_entry_a_page(pager.session.events, ELBV2_EVENTS, operation, key)
        for operation, key in (
            ("DescribeListeners", "Listeners"),
            ("DescribeListenerCertificates", "Certificates"),
            ("DescribeRules", "Rules"),
        )
    }

    again = ACTION.prepare(pager.context(), item, PARAMS, {})

    # 2 listeners; 2 certificates on HTTPS; the HTTP listener's 2 rules and its default rule
    assert {operation: injected.hits for operation, injected in paged.items()} == {
        "DescribeListeners": 1,
        "DescribeListenerCertificates": 1,
        "DescribeRules": 2,
    }
    assert {**again, "recorded_at": None} == {**whole, "recorded_at": None}


def test_the_record_keeps_every_group_of_a_load_balancer_with_more_than_twenty(h):
    """DescribeTargetGroups takes at most 20 ARNs a call: 23 groups (the world's 3 and 20 more,
    each behind a rule of its own) are read in two calls, and each is recorded once."""
    elbv2 = h.seed("elbv2")
    # another load balancer in the account, made first: only the item's is described
    subnets = [s["SubnetId"] for s in h.seed("ec2").describe_subnets()["Subnets"]][:2]
    elbv2.create_load_balancer(Name="promo-other", Subnets=subnets)
    w = _world(h)
    listener = elbv2.describe_listeners(LoadBalancerArn=w["arn"])["Listeners"][0]["ListenerArn"]
    more = []
    for n in range(20):
        group = elbv2.create_target_group(
            Name=f"promo-extra-{n}",
            Protocol="HTTP",
            Port=80,
            VpcId=w["vpc"],
            Tags=[{"Key": "n", "Value": str(n)}],
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.create_rule(
            ListenerArn=listener,
            Priority=100 + n,
            Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": [f"/x{n}/*"]}}],
            Actions=[{"Type": "forward", "TargetGroupArn": group}],
        )
        more.append(group)
    item = h.item(DETECTOR, w["id"])

    data = ACTION.prepare(h.context(), item, PARAMS, {})

    assert data["load_balancer"]["LoadBalancerArn"] == w["arn"]
    recorded = [g["TargetGroupArn"] for g in data["target_groups"]]
    assert sorted(recorded) == sorted([w["web"], w["api"], w["admin"], *more])
    tags = {g["TargetGroupArn"]: tags_of(g["Tags"]) for g in data["target_groups"]}
    assert [tags[group] for group in more] == [{"n": str(n)} for n in range(20)]
    # DescribeTags takes at most 20 ARNs a call: each ARN is asked for once
    asked = [c.params["ResourceArns"] for c in h.recorder.calls(operation="DescribeTags")]
    assert all(len(arns) <= 20 for arns in asked), [len(arns) for arns in asked]
    flat = [arn for arns in asked for arn in arns]
    assert len(flat) == len(set(flat)) and set(more) <= set(flat)
    described = h.recorder.calls(operation="DescribeTargetGroups")
    assert [
        len(c.params["TargetGroupArns"]) for c in described if "TargetGroupArns" in c.params
    ] == [
        20,
        3,
    ]


def test_the_record_keeps_the_zone_of_an_ip_target_outside_the_vpc(h):
    """An IP target outside the load balancer's VPC is registered with ``AvailabilityZone``
    "all", and the rollback must register it so again. AWS's DescribeTargetHealth answers the
    zone; moto leaves it out, so an ``after-call`` handler puts it back as AWS has it."""
    w = _world(h)
    elbv2 = h.seed("elbv2")
    group = elbv2.create_target_group(
        Name="promo-onprem", Protocol="HTTP", Port=80, VpcId=w["vpc"], TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(
        TargetGroupArn=group,
        Targets=[{"Id": "192.168.7.10", "Port": 80, "AvailabilityZone": "all"}],
    )
    listener = elbv2.describe_listeners(LoadBalancerArn=w["arn"])["Listeners"][0]["ListenerArn"]
    elbv2.create_rule(
        ListenerArn=listener,
        Priority=99,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/onprem/*"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": group}],
    )
    item = h.item(DETECTOR, w["id"])

    def as_aws_answers(parsed: dict[str, Any], **_: Any) -> None:
        for health in parsed.get("TargetHealthDescriptions") or []:
            if health["Target"]["Id"] == "192.168.7.10":
                health["Target"]["AvailabilityZone"] = "all"

    h.session.events.register(f"after-call.{ELBV2_EVENTS}.DescribeTargetHealth", as_aws_answers)

    data = ACTION.prepare(h.context(), item, PARAMS, {})

    [onprem] = [g for g in data["target_groups"] if g["TargetGroupArn"] == group]
    assert onprem["Targets"] == [{"Id": "192.168.7.10", "Port": 80, "AvailabilityZone": "all"}]


def test_execute_deletes_and_keeps_the_target_groups(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})

    outcome = ACTION.execute(ctx, item, PARAMS, data)

    assert not outcome.already_done
    assert not _exists(h, w["arn"])
    assert h.mutating() == [("elbv2", "DeleteLoadBalancer")]
    names = {g["TargetGroupName"] for g in h.seed("elbv2").describe_target_groups()["TargetGroups"]}
    assert names == {"promo-web", "promo-api", "promo-admin"}
    assert outcome.response == {"load_balancer_arn": w["arn"], "deleted": True}
    kept = ", ".join(g["TargetGroupName"] for g in data["target_groups"])
    assert sorted(kept.split(", ")) == sorted(names)
    assert outcome.note == f"deleted load balancer {w['id']}; target groups kept: {kept}"


def test_the_note_of_a_load_balancer_without_target_groups_names_none_kept(h):
    ec2, elbv2 = h.seed("ec2"), h.seed("elbv2")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    arn = elbv2.create_load_balancer(Name="bare-alb", Subnets=subnets)["LoadBalancers"][0][
        "LoadBalancerArn"
    ]
    resource_id = arn.split(":loadbalancer/", 1)[1]
    item = h.item(DETECTOR, resource_id)
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})

    outcome = ACTION.execute(ctx, item, PARAMS, data)

    assert (outcome.already_done, outcome.note) == (False, f"deleted load balancer {resource_id}")
    assert not _exists(h, arn)


def test_lost_response_then_retry_is_one_delete(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    # before the first client is made: botocore copies handlers into clients at creation
    lost = faults.lose_response(h.session.events, ELBV2_EVENTS, "DeleteLoadBalancer")
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})

    with pytest.raises(aws.AwsError):
        ACTION.execute(ctx, item, PARAMS, data)
    outcome = ACTION.execute(ctx, item, PARAMS, data)

    assert lost.hits == 1
    assert outcome.already_done
    assert (outcome.response, outcome.note) == (
        {"load_balancer_arn": w["arn"]},
        f"load balancer {w['id']} is already gone",
    )
    assert not _exists(h, w["arn"])
    assert h.recorder.count(operation="DeleteLoadBalancer") == 1


def test_a_load_balancer_deleted_by_someone_else_after_the_look_is_done_not_failed(h):
    """DeleteLoadBalancer answers LoadBalancerNotFound (another delete won the race after the
    describe found it): the outcome is "already done", not a failure to retry."""
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    raced = faults.fail_with(
        h.session.events,
        f"before-send.{ELBV2_EVENTS}.DeleteLoadBalancer",
        status=400,
        body=faults.query_error_body("LoadBalancerNotFound", "One or more not found"),
        times=1,
    )
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})

    outcome = ACTION.execute(ctx, item, PARAMS, data)

    assert raced.hits == 1
    assert outcome.already_done and outcome.response == {"load_balancer_arn": w["arn"]}


def test_throttling_past_retries_is_a_throttled_error_and_nothing_is_deleted(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    throttled = faults.throttle(h.session.events, ELBV2_EVENTS, "DeleteLoadBalancer")
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})

    with pytest.raises(aws.AwsError) as raised:
        ACTION.execute(ctx, item, PARAMS, data)

    assert raised.value.kind is aws.ErrorKind.THROTTLED
    assert throttled.hits == 2  # aws_max_attempts=2: bounded
    assert _exists(h, w["arn"])


def _rebuilt(h: Harness, arn: str) -> dict[str, object]:
    elbv2 = h.seed("elbv2")
    lb = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
    listeners = {x["Port"]: x for x in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]}
    return {
        "lb": lb,
        "attributes": {
            a["Key"]: a["Value"]
            for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
        },
        "tags": tags_of(elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]),
        "listeners": listeners,
        "rules": {
            port: [
                r
                for r in elbv2.describe_rules(ListenerArn=x["ListenerArn"])["Rules"]
                if not r["IsDefault"]
            ]
            for port, x in listeners.items()
        },
        "certificates": elbv2.describe_listener_certificates(
            ListenerArn=listeners[443]["ListenerArn"]
        )["Certificates"]
        if 443 in listeners
        else [],
    }


def test_rollback_recreates_a_working_load_balancer_and_is_idempotent(h):
    w, data = _deleted(h)
    undo = h.context()
    # AWS describes a path-pattern or host-header condition in both forms, the legacy Values
    # beside its *Config (moto gives the *Config only), and refuses a CreateRule condition sent
    # both (moto too, for path-pattern): the rules are recreated from the *Config alone
    for listener in data["listeners"]:
        for rule in listener["Rules"]:
            for condition in rule["Conditions"]:
                (config,) = [k for k in condition if k.endswith("Config")]
                condition["Values"] = list(condition[config]["Values"])
    # AWS lists a listener's certificates in no set order: here the default one comes last
    (https,) = [x for x in data["listeners"] if x["Port"] == 443]
    https["Certificates"].sort(key=lambda c: bool(c["IsDefault"]))
    assert [c["CertificateArn"] for c in https["Certificates"]] == [w["extra_cert"], w["cert"]]
    # mutual TLS, which moto neither keeps nor describes: recorded as AWS describes it
    https["MutualAuthentication"] = {"Mode": "passthrough"}
    # AWS describes an HTTP listener without SslPolicy (moto gives it one)
    (http,) = [x for x in data["listeners"] if x["Port"] == 80]
    http.pop("SslPolicy", None)
    # an ALB on an Outpost with a customer-owned address pool, which moto neither keeps nor
    # describes: recorded as AWS describes it (checked on the call sent)
    data["load_balancer"]["CustomerOwnedIpv4Pool"] = "ipv4pool-coip-0123456789abcdef0"

    outcome = ACTION.rollback(undo, data, PARAMS)

    new_arn = outcome.response["load_balancer_arn"]
    assert new_arn != w["arn"] and not outcome.already_done
    got = _rebuilt(h, new_arn)
    same_groups = {w[g]: w[g] for g in ("web", "api", "admin")}
    assert outcome.response == {
        "load_balancer_arn": new_arn,
        "dns_name": got["lb"]["DNSName"],
        "previous_arn": w["arn"],
        "previous_dns_name": w["dns"],
        "target_groups": same_groups,
    }
    assert outcome.note == (
        f"recreated load balancer promo-alb as {new_arn}, DNS name {got['lb']['DNSName']}; AWS "
        f"cannot reuse the old ARN or DNS name ({w['dns']}): update DNS records and clients "
        "that used it"
    )
    assert got["lb"]["LoadBalancerName"] == "promo-alb"
    assert got["lb"]["SecurityGroups"] == [w["sg"]]
    assert got["lb"]["Scheme"] == "internet-facing"
    assert got["attributes"]["idle_timeout.timeout_seconds"] == "120"
    assert got["tags"] == {
        "team": "marketing",
        "Name": "promo-alb",
        ACTION_TAG: str(undo.action_id),
    }
    assert got["listeners"][80]["DefaultActions"][0]["TargetGroupArn"] == w["web"]
    assert got["listeners"][443]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert {c["CertificateArn"]: c["IsDefault"] for c in got["certificates"]} == {
        w["cert"]: True,
        w["extra_cert"]: False,
    }
    (create_https,) = [
        c for c in h.recorder.calls(operation="CreateListener") if c.params["Port"] == 443
    ]
    assert create_https.params["MutualAuthentication"] == {"Mode": "passthrough"}
    [create_lb] = h.recorder.calls(operation="CreateLoadBalancer")
    assert create_lb.params["CustomerOwnedIpv4Pool"] == "ipv4pool-coip-0123456789abcdef0"
    # the attributes set back, without those described with an empty value (the access-log
    # bucket and prefix, unset): AWS refuses some keys with an empty value, moto does not
    [attributes] = [
        c.params["Attributes"] for c in h.recorder.calls(operation="ModifyLoadBalancerAttributes")
    ]
    assert {a["Key"]: a["Value"] for a in attributes} == {
        "deletion_protection.enabled": "false",
        "idle_timeout.timeout_seconds": "120",
        "load_balancing.cross_zone.enabled": "false",
    }
    listener_tags = h.seed("elbv2").describe_tags(
        ResourceArns=[got["listeners"][80]["ListenerArn"]]
    )
    assert tags_of(listener_tags["TagDescriptions"][0]["Tags"]) == {"listener": "http"}
    rules = {r["Priority"]: r for r in got["rules"][80]}
    assert set(rules) == {"5", "10"}
    assert rules["10"]["Actions"][0]["TargetGroupArn"] == w["api"]
    assert rules["10"]["Conditions"][0]["PathPatternConfig"]["Values"] == ["/api/*"]
    assert (
        rules["5"]["Actions"][0]["ForwardConfig"]["TargetGroups"][0]["TargetGroupArn"] == w["admin"]
    )
    # the same target groups, with the same targets
    health = h.seed("elbv2").describe_target_health(TargetGroupArn=w["api"])
    assert [t["Target"]["Id"] for t in health["TargetHealthDescriptions"]] == [w["instance"]]

    first = len(h.mutating())
    again = ACTION.rollback(undo, data, PARAMS)

    assert again.already_done and again.response["load_balancer_arn"] == new_arn
    # it finds the listeners and rules it made: nothing is created twice
    assert [op for _, op in h.mutating()[first:] if op.startswith("Create")] == []
    listeners = h.seed("elbv2").describe_listeners(LoadBalancerArn=new_arn)["Listeners"]
    assert sorted(x["Port"] for x in listeners) == [80, 443]
    names = [
        lb["LoadBalancerName"] for lb in h.seed("elbv2").describe_load_balancers()["LoadBalancers"]
    ]
    assert names.count("promo-alb") == 1
    assert len(_rebuilt(h, new_arn)["rules"][80]) == 2  # no duplicated rule either
    # the same subnets, and the rule's own tags
    old_zones = sorted(z["SubnetId"] for z in data["load_balancer"]["AvailabilityZones"])
    assert sorted(z["SubnetId"] for z in got["lb"]["AvailabilityZones"]) == old_zones
    rule_tags = h.seed("elbv2").describe_tags(ResourceArns=[rules["10"]["RuleArn"]])
    assert tags_of(rule_tags["TagDescriptions"][0]["Tags"]) == {"rule": "api"}


@pytest.mark.parametrize(
    ("scheme", "address_type", "fixed"),
    [
        ("internal", "ipv4", "PrivateIPv4Address"),
        ("internet-facing", "ipv4", "AllocationId"),
        ("internet-facing", "dualstack", "IPv6Address"),
    ],
)
def test_rollback_recreates_a_network_load_balancer_with_its_tls_listener(
    h, scheme, address_type, fixed
):
    """An NLB comes back with its scheme and IP address type, and with the address it had in
    each subnet (an internal one's fixed private IPv4 address, an internet-facing one's Elastic
    IP, a dual-stack one's fixed IPv6 address: clients and allow-lists use them; each kind alone,
    as any one of them must be kept); its TLS listener keeps its security policy and ALPN
    policy; its TCP listener gets no security policy (AWS refuses one there)."""
    elbv2, ec2 = h.seed("elbv2"), h.seed("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    addresses: dict[str, dict[str, str]] = {}  # subnet -> its mapping's address
    described: dict[str, dict[str, str]] = {}  # subnet -> its address as AWS describes it
    for i, subnet in enumerate(subnets):
        if fixed == "PrivateIPv4Address":
            ip = f"172.31.{16 * i}.10"
            addresses[subnet] = {fixed: ip}
            described[subnet] = {"IpAddress": ip, fixed: ip}
        elif fixed == "AllocationId":
            eip = ec2.allocate_address(Domain="vpc")
            addresses[subnet] = {fixed: eip["AllocationId"]}
            described[subnet] = {"IpAddress": eip["PublicIp"], fixed: eip["AllocationId"]}
        else:
            addresses[subnet] = {fixed: f"2600:1f18:4a0:{i}00::10"}
            described[subnet] = dict(addresses[subnet])
    cert = h.seed("acm").request_certificate(DomainName="nlb.example.com")["CertificateArn"]
    arn = elbv2.create_load_balancer(
        Name="edge-nlb",
        SubnetMappings=[{"SubnetId": s, **a} for s, a in addresses.items()],
        Type="network",
        Scheme=scheme,
        IpAddressType=address_type,
    )["LoadBalancers"][0]["LoadBalancerArn"]
    group = elbv2.create_target_group(Name="edge-tcp", Protocol="TCP", Port=443, VpcId=vpc)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    forward = [{"Type": "forward", "TargetGroupArn": group}]
    elbv2.create_listener(
        LoadBalancerArn=arn,
        Protocol="TLS",
        Port=443,
        Certificates=[{"CertificateArn": cert}],
        SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06",
        AlpnPolicy=["HTTP2Preferred"],
        DefaultActions=forward,
    )
    elbv2.create_listener(LoadBalancerArn=arn, Protocol="TCP", Port=22, DefaultActions=forward)
    item = h.item(DETECTOR, arn.split(":loadbalancer/", 1)[1])
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})
    ACTION.execute(ctx, item, PARAMS, data)
    # AWS describes an NLB made without security groups without the field (moto: an empty list)
    assert not data["load_balancer"].pop("SecurityGroups", None)
    # moto neither keeps nor describes an NLB's fixed addresses: recorded as AWS describes them
    # (checked below on the call sent)
    for zone in data["load_balancer"]["AvailabilityZones"]:
        zone["LoadBalancerAddresses"] = [described[zone["SubnetId"]]]

    outcome = ACTION.rollback(h.context(), data, PARAMS)

    new_arn = outcome.response["load_balancer_arn"]
    [lb] = elbv2.describe_load_balancers(LoadBalancerArns=[new_arn])["LoadBalancers"]
    assert (lb["Type"], lb["Scheme"], lb["IpAddressType"]) == ("network", scheme, address_type)
    [create] = h.recorder.calls(operation="CreateLoadBalancer")
    assert "Subnets" not in create.params
    assert sorted(create.params["SubnetMappings"], key=lambda m: m["SubnetId"]) == sorted(
        ({"SubnetId": s, **a} for s, a in addresses.items()), key=lambda m: m["SubnetId"]
    )
    made = elbv2.describe_listeners(LoadBalancerArn=new_arn)
    listeners = {x["Port"]: x for x in made["Listeners"]}
    assert listeners[443]["Protocol"] == "TLS"
    assert listeners[443]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert listeners[443]["AlpnPolicy"] == ["HTTP2Preferred"]
    assert listeners[22]["Protocol"] == "TCP"
    tcp = [c for c in h.recorder.calls(operation="CreateListener") if c.params["Port"] == 22]
    assert [c.params.get("SslPolicy") for c in tcp] == [None]


def test_rollback_recreates_target_groups_that_were_deleted_since(h):
    """Three recorded target groups deleted since: each is made again as it was described (its
    health check, matcher, protocol version, target and address type, tags), with its
    attributes and targets, and the rules point to it, a weighted forward (ForwardConfig) too."""
    w = _world(h)
    elbv2 = h.seed("elbv2")
    elbv2.modify_target_group(
        TargetGroupArn=w["api"],
        HealthCheckProtocol="HTTPS",
        HealthCheckPort="8443",
        HealthCheckIntervalSeconds=15,
        HealthCheckTimeoutSeconds=7,
        HealthyThresholdCount=3,
        UnhealthyThresholdCount=4,
        Matcher={"HttpCode": "200-299"},
    )
    grpc = elbv2.create_target_group(
        Name="promo-grpc",
        Protocol="HTTPS",
        ProtocolVersion="HTTP2",
        Port=443,
        VpcId=w["vpc"],
        TargetType="ip",
        IpAddressType="ipv6",
        Tags=[{"Key": "team", "Value": "marketing"}, {"Key": "tier", "Value": "grpc"}],
    )["TargetGroups"][0]["TargetGroupArn"]
    (http,) = [
        x
        for x in elbv2.describe_listeners(LoadBalancerArn=w["arn"])["Listeners"]
        if x["Port"] == 80
    ]
    elbv2.create_rule(
        ListenerArn=http["ListenerArn"],
        Priority=20,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/grpc/*"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": grpc}],
    )
    item = h.item(DETECTOR, w["id"])
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})
    ACTION.execute(ctx, item, PARAMS, data)
    # AWS describes some unset values as empty strings, and refuses them back
    recorded = {g["TargetGroupName"]: g for g in data["target_groups"]}
    recorded["promo-api"]["Attributes"].append(
        {"Key": "stickiness.app_cookie.cookie_name", "Value": ""}
    )
    recorded["promo-grpc"]["HealthCheckPath"] = ""
    described = {
        g["TargetGroupName"]: (
            g,
            tags_of(
                elbv2.describe_tags(ResourceArns=[g["TargetGroupArn"]])["TagDescriptions"][0][
                    "Tags"
                ]
            ),
        )
        for g in elbv2.describe_target_groups(TargetGroupArns=[w["api"], grpc])["TargetGroups"]
    }
    elbv2.delete_target_group(TargetGroupArn=w["api"])
    elbv2.delete_target_group(TargetGroupArn=grpc)
    elbv2.delete_target_group(TargetGroupArn=w["admin"])  # rule 5 forwards to it (ForwardConfig)
    # AWS (and moto) register only running instances: the owner starts it before undoing.
    h.seed("ec2").start_instances(InstanceIds=[w["instance"]])
    undo = h.context()

    outcome = ACTION.rollback(undo, data, PARAMS)

    new_api = outcome.response["target_groups"][w["api"]]
    assert new_api != w["api"]
    volatile = frozenset({"TargetGroupArn", "LoadBalancerArns", "ResponseMetadata"})
    for old_arn, old_name in ((w["api"], "promo-api"), (grpc, "promo-grpc")):
        new_arn = outcome.response["target_groups"][old_arn]
        (made,) = elbv2.describe_target_groups(TargetGroupArns=[new_arn])["TargetGroups"]
        was, tags = described[old_name]
        assert strip_volatile(made, volatile) == strip_volatile(was, volatile)
        made_tags = elbv2.describe_tags(ResourceArns=[new_arn])["TagDescriptions"][0]["Tags"]
        assert tags_of(made_tags) == {**tags, ACTION_TAG: str(undo.action_id)}
    created = h.recorder.calls(operation="CreateTargetGroup")
    modified = h.recorder.calls(operation="ModifyTargetGroupAttributes")
    assert len(created) == 3 and "" not in [v for c in created for v in c.params.values()]
    # moto enables health checks whatever is sent; AWS keeps a lambda group's choice
    assert [c.params["HealthCheckEnabled"] for c in created] == [True, True, True]
    assert modified and "" not in [a["Value"] for c in modified for a in c.params["Attributes"]]
    grpc_was, api_was = described["promo-grpc"][0], described["promo-api"][0]
    assert (grpc_was["TargetType"], grpc_was["IpAddressType"]) == ("ip", "ipv6")
    assert grpc_was["ProtocolVersion"] == "HTTP2"
    assert (api_was["HealthCheckProtocol"], api_was["HealthCheckPort"]) == ("HTTPS", "8443")
    assert (api_was["HealthCheckIntervalSeconds"], api_was["HealthCheckTimeoutSeconds"]) == (15, 7)
    assert (api_was["HealthyThresholdCount"], api_was["UnhealthyThresholdCount"]) == (3, 4)
    assert api_was["Matcher"] == {"HttpCode": "200-299"}
    group = elbv2.describe_target_groups(TargetGroupArns=[new_api])["TargetGroups"][0]
    assert group["TargetGroupName"] == "promo-api" and group["Port"] == 8080
    assert group["HealthCheckPath"] == "/healthz"
    attributes = {
        a["Key"]: a["Value"]
        for a in elbv2.describe_target_group_attributes(TargetGroupArn=new_api)["Attributes"]
    }
    assert attributes["deregistration_delay.timeout_seconds"] == "30"
    targets = elbv2.describe_target_health(TargetGroupArn=new_api)["TargetHealthDescriptions"]
    assert [(t["Target"]["Id"], t["Target"]["Port"]) for t in targets] == [(w["instance"], 8080)]
    # the group's targets in one call that AWS accepted (no one-by-one fallback)
    registered = h.recorder.calls(operation="RegisterTargets")
    assert [(r.outcome, r.params["Targets"]) for r in registered] == [
        ("ok", [{"Id": w["instance"], "Port": 8080}])
    ]
    listeners = elbv2.describe_listeners(LoadBalancerArn=outcome.response["load_balancer_arn"])
    http = next(x for x in listeners["Listeners"] if x["Port"] == 80)
    rules = elbv2.describe_rules(ListenerArn=http["ListenerArn"])["Rules"]
    assert any(a.get("TargetGroupArn") == new_api for r in rules for a in r["Actions"])
    new_admin = outcome.response["target_groups"][w["admin"]]
    assert new_admin != w["admin"]
    [weighted] = [r["Actions"][0]["ForwardConfig"] for r in rules if r["Priority"] == "5"]
    assert [g["TargetGroupArn"] for g in weighted["TargetGroups"]] == [new_admin]
    # one note per recreated group, in the order recorded, each after "; "
    gone = (w["api"], grpc, w["admin"])
    assert outcome.note.endswith(
        "".join(
            f"; target group {g['TargetGroupName']} was gone and was recreated as "
            f"{outcome.response['target_groups'][g['TargetGroupArn']]}"
            for g in data["target_groups"]
            if g["TargetGroupArn"] in gone
        )
    )
    assert outcome.note.count("; target group ") == 3


def _rule_priorities(h: Harness, port: int) -> list[str]:
    """The priorities of the rules (default rule left out) of promo-alb's listener on ``port``."""
    elbv2 = h.seed("elbv2")
    [lb] = elbv2.describe_load_balancers(Names=["promo-alb"])["LoadBalancers"]
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    [listener] = [x for x in listeners if x["Port"] == port]
    rules = elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    return sorted((r["Priority"] for r in rules if not r["IsDefault"]), key=int)


def test_a_rollback_stopped_midway_finishes_what_it_left_on_the_rerun(h):
    """A rollback that made the target group again and stopped before giving it its attributes
    and targets (here: the attributes call refused) finishes the group on the rerun, rather than
    reusing a group with no targets behind the load balancer; one stopped between two rules of a
    listener makes the missing rule on the rerun (the one already there is skipped, not the
    rest)."""
    w, data = _deleted(h)
    elbv2 = h.seed("elbv2")
    elbv2.delete_target_group(TargetGroupArn=w["api"])
    h.seed("ec2").start_instances(InstanceIds=[w["instance"]])
    rollback_id = h.context().action_id
    stopped = Harness(h.endpoint)
    denied = _deny(stopped, "elbv2", "ModifyTargetGroupAttributes")
    with pytest.raises(aws.AwsError):
        ACTION.rollback(stopped.context(rollback_id), data, PARAMS)
    assert denied.hits == 1
    [made] = elbv2.describe_target_groups(Names=["promo-api"])["TargetGroups"]
    assert (
        elbv2.describe_target_health(TargetGroupArn=made["TargetGroupArn"])[
            "TargetHealthDescriptions"
        ]
        == []
    )

    # the rerun stopped too, after the first of the HTTP listener's two rules (priorities 5, 10)
    stopped_again = Harness(h.endpoint)
    denied = _deny(stopped_again, "elbv2", "CreateRule", after=1)
    with pytest.raises(aws.AwsError):
        ACTION.rollback(stopped_again.context(rollback_id), data, PARAMS)
    assert denied.hits == 1
    assert _rule_priorities(h, 80) == ["5"]

    outcome = ACTION.rollback(h.context(rollback_id), data, PARAMS)

    assert _rule_priorities(h, 80) == ["5", "10"]
    assert outcome.response["target_groups"][w["api"]] == made["TargetGroupArn"]
    attributes = {
        a["Key"]: a["Value"]
        for a in elbv2.describe_target_group_attributes(TargetGroupArn=made["TargetGroupArn"])[
            "Attributes"
        ]
    }
    assert attributes["deregistration_delay.timeout_seconds"] == "30"
    targets = elbv2.describe_target_health(TargetGroupArn=made["TargetGroupArn"])
    assert [
        (t["Target"]["Id"], t["Target"]["Port"]) for t in targets["TargetHealthDescriptions"]
    ] == [(w["instance"], 8080)]
    assert f"promo-api was gone and was recreated as {made['TargetGroupArn']}" in outcome.note


def test_rollback_refuses_a_same_named_load_balancer_it_did_not_make(h):
    _, data = _deleted(h)
    subnets = [z["SubnetId"] for z in data["load_balancer"]["AvailabilityZones"]]
    h.seed("elbv2").create_load_balancer(Name="promo-alb", Subnets=subnets)

    with pytest.raises(aws.AwsError) as raised:
        ACTION.rollback(h.context(), data, PARAMS)

    assert str(raised.value) == (
        f"elbv2:CreateLoadBalancer in {REGION} failed (terminal, DuplicateLoadBalancerName): a "
        "load balancer named promo-alb exists and was not made by this rollback; rename or "
        "delete it, then roll back again"
    )


# --- classic load balancers ----------------------------------------------------------------


def _classic(h: Harness, name: str = "legacy-api-elb") -> str:
    elb = h.seed("elb")
    elb.create_load_balancer(
        LoadBalancerName=name,
        Listeners=[
            {
                "Protocol": "HTTP",
                "LoadBalancerPort": 80,
                "InstancePort": 8080,
                "InstanceProtocol": "HTTP",
            }
        ],
        AvailabilityZones=[f"{REGION}a"],
        Tags=[{"Key": "team", "Value": "api"}],
    )
    elb.configure_health_check(
        LoadBalancerName=name,
        HealthCheck={
            "Target": "HTTP:8080/ping",
            "Interval": 20,
            "Timeout": 4,
            "UnhealthyThreshold": 3,
            "HealthyThreshold": 2,
        },
    )
    elb.modify_load_balancer_attributes(
        LoadBalancerName=name,
        LoadBalancerAttributes={
            "ConnectionSettings": {"IdleTimeout": 90},
            "CrossZoneLoadBalancing": {"Enabled": True},
        },
    )
    elb.create_lb_cookie_stickiness_policy(
        LoadBalancerName=name, PolicyName="sticky", CookieExpirationPeriod=60
    )
    elb.set_load_balancer_policies_of_listener(
        LoadBalancerName=name, LoadBalancerPort=80, PolicyNames=["sticky"]
    )
    return name


def test_classic_recheck_refuses_a_registered_instance_and_a_protection_tag(h):
    name = _classic(h)
    item = h.item(DETECTOR, name)
    idle = ACTION.recheck(h.context(), item)
    elb, ec2 = h.seed("elb"), h.seed("ec2")

    elb.add_tags(LoadBalancerNames=[name], Tags=[{"Key": "do-not-delete", "Value": "yes"}])
    protected = ACTION.recheck(h.context(), item)
    elb.remove_tags(LoadBalancerNames=[name], Tags=[{"Key": "do-not-delete"}])
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    elb.register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": instance["InstanceId"]}]
    )
    attached = ACTION.recheck(h.context(), item)

    # the executor applies the policy's tag rules to the facts: the tags must be in them
    assert idle.still_waste
    assert idle.reason == "still idle: no instance InService, not protected"
    assert idle.facts == {"tags": {"team": "api"}, "instances": []}
    assert not protected.still_waste
    assert protected.reason == "protection tag do-not-delete=yes is set"
    assert protected.facts == {"tags": {"team": "api", "do-not-delete": "yes"}}
    assert not attached.still_waste
    assert h.mutating() == []


def test_classic_dry_run_prepare_execute_lost_response_and_rollback(h):
    name = _classic(h)
    item = h.item(DETECTOR, name)
    lost = faults.lose_response(h.session.events, ELB_EVENTS, "DeleteLoadBalancer")
    ctx = h.context()
    elb = h.seed("elb")
    before = strip_volatile(elb.describe_load_balancers(LoadBalancerNames=[name]))

    dry = ACTION.dry_run(ctx, item, PARAMS)
    assert dry.would_succeed and h.mutating() == []
    assert (
        dry.message
        == f"would record the configuration of classic load balancer {name} and delete it"
    )
    assert dry.calls == tuple(
        f"elasticloadbalancing:{op}"
        for op in (
            "DescribeLoadBalancers",
            "DescribeLoadBalancerAttributes",
            "DescribeTags",
            "DescribeLoadBalancerPolicies",
            "DeleteLoadBalancer",
        )
    )
    assert strip_volatile(elb.describe_load_balancers(LoadBalancerNames=[name])) == before

    data = ACTION.prepare(ctx, item, PARAMS, {})
    assert data["kind"] == "classic" and h.checkpoints == data
    assert "ResponseMetadata" not in json.dumps(data)
    recorded = data["load_balancer"]
    assert recorded["HealthCheck"]["Target"] == "HTTP:8080/ping"
    assert recorded["ListenerDescriptions"][0]["PolicyNames"] == ["sticky"]
    assert data["attributes"]["ConnectionSettings"] == {"IdleTimeout": 90}
    assert tags_of(data["tags"]) == {"team": "api"}
    assert [p["PolicyName"] for p in data["policies"]] == ["sticky"]

    with pytest.raises(aws.AwsError):
        ACTION.execute(ctx, item, PARAMS, data)
    again = ACTION.execute(ctx, item, PARAMS, data)
    assert lost.hits == 1 and again.already_done
    assert h.recorder.count(service="elb", operation="DeleteLoadBalancer") == 1
    assert elb.describe_load_balancers()["LoadBalancerDescriptions"] == []

    undo = h.context()
    outcome = ACTION.rollback(undo, data, PARAMS)
    assert not outcome.already_done
    (lb,) = elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"]
    assert lb["HealthCheck"] == recorded["HealthCheck"]
    # made in a zone, it lives in that zone's default subnet (no EC2-Classic any more)
    assert lb["Subnets"] == recorded["Subnets"] and len(recorded["Subnets"]) == 1
    assert lb["SecurityGroups"] == recorded["SecurityGroups"]
    assert lb["ListenerDescriptions"] == recorded["ListenerDescriptions"]
    assert lb["Policies"]["LBCookieStickinessPolicies"] == [
        {"PolicyName": "sticky", "CookieExpirationPeriod": 60}
    ]
    attributes = elb.describe_load_balancer_attributes(LoadBalancerName=name)[
        "LoadBalancerAttributes"
    ]
    assert attributes["ConnectionSettings"] == {"IdleTimeout": 90}
    assert attributes["CrossZoneLoadBalancing"] == {"Enabled": True}
    tags = tags_of(elb.describe_tags(LoadBalancerNames=[name])["TagDescriptions"][0]["Tags"])
    assert tags == {"team": "api", ACTION_TAG: str(undo.action_id)}

    assert ACTION.rollback(undo, data, PARAMS).already_done
    assert len(elb.describe_load_balancers()["LoadBalancerDescriptions"]) == 1


def test_classic_execute_refuses_a_load_balancer_created_again_under_the_name(h):
    name = _classic(h)
    item = h.item(DETECTOR, name)
    ctx = h.context()
    data = dict(ACTION.prepare(ctx, item, PARAMS, {}))
    created = data["load_balancer"]["CreatedTime"]
    data["load_balancer"] = {**data["load_balancer"], "CreatedTime": "2020-01-01T00:00:00+00:00"}

    with pytest.raises(aws.AwsError) as raised:
        ACTION.execute(ctx, item, PARAMS, data)

    assert str(raised.value) == (
        f"elb:DeleteLoadBalancer in {REGION} failed (terminal, ResourceReplaced): refusing to "
        f"delete: load balancer {name} was created again since the scan ({created}, scan saw "
        "2020-01-01T00:00:00+00:00)"
    )
    assert h.seed("elb").describe_load_balancers(LoadBalancerNames=[name])


def test_action_ids_are_independent(h):
    # Two rollbacks with different action IDs do not mistake each other's work for their own.
    _, data = _deleted(h)
    ACTION.rollback(h.context(uuid.uuid4()), data, PARAMS)

    with pytest.raises(aws.AwsError):
        ACTION.rollback(h.context(uuid.uuid4()), data, PARAMS)


def test_rollback_names_recorded_targets_aws_refuses_to_register(h):
    """One recorded target is a stopped instance (AWS registers running instances only), the
    other runs: AWS refuses the group's targets as a whole, the running one is registered on
    its own and the stopped one is named in the note."""
    w = _world(h)
    running = h.seed("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    h.seed("elbv2").register_targets(TargetGroupArn=w["api"], Targets=[{"Id": running}])
    item = h.item(DETECTOR, w["id"])
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})
    ACTION.execute(ctx, item, PARAMS, data)
    h.seed("elbv2").delete_target_group(TargetGroupArn=w["api"])

    outcome = ACTION.rollback(h.context(), data, PARAMS)

    assert f"target {w['instance']} of promo-api not registered" in outcome.note
    assert running not in outcome.note
    new_api = outcome.response["target_groups"][w["api"]]
    health = h.seed("elbv2").describe_target_health(TargetGroupArn=new_api)
    assert [t["Target"]["Id"] for t in health["TargetHealthDescriptions"]] == [running]


def test_a_load_balancer_judged_idle_by_traffic_is_refused_once_traffic_returns(h):
    """Healthy targets and almost no requests over the lookback: a finding. The re-check reads
    the last day's RequestCount and refuses when there is traffic again."""
    elbv2, ec2, cloudwatch = h.seed("elbv2"), h.seed("ec2"), h.seed("cloudwatch")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    arn = elbv2.create_load_balancer(Name="quiet", Subnets=subnets)["LoadBalancers"][0][
        "LoadBalancerArn"
    ]
    group = elbv2.create_target_group(Name="quiet-tg", Protocol="HTTP", Port=80, VpcId=vpc)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    elbv2.create_listener(
        LoadBalancerArn=arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
    )
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instance}])
    resource_id = arn.split(":loadbalancer/", 1)[1]
    dims = [{"Name": "LoadBalancer", "Value": resource_id}]
    scan_time = utcnow() + LATER  # what the helper's scan uses as now
    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "RequestCount",
                "Dimensions": dims,
                "Value": 3,
                "Timestamp": scan_time - timedelta(days=d, hours=1),
            }
            for d in range(14)
        ],
    )
    item = h.item(DETECTOR, resource_id)
    assert item.resource_details["healthy_targets"] == 1
    # requests of more than a day ago do not count
    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "RequestCount",
                "Dimensions": dims,
                "Value": 5,
                "Timestamp": utcnow() - timedelta(hours=24, minutes=30),
            }
        ],
    )

    quiet = ACTION.recheck(h.context(), item)
    assert quiet.still_waste, quiet.reason
    assert quiet.facts["traffic_last_day"] == 0
    # CloudWatch refuses a period that is not a multiple of 60 seconds (moto does not)
    (read,) = h.recorder.calls(operation="GetMetricData")
    assert [q["MetricStat"]["Period"] % 60 for q in read.params["MetricDataQueries"]] == [0]

    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {
                "MetricName": "RequestCount",
                "Dimensions": dims,
                "Value": 1,  # a single request is traffic
                "Timestamp": utcnow() - timedelta(hours=2),
            }
        ],
    )
    busy = ACTION.recheck(h.context(), item)
    assert not busy.still_waste and busy.reason == "it has traffic again: 1 in the last day"
    # the refusal keeps what it read, for the history
    assert (busy.facts["traffic_last_day"], busy.facts["healthy_targets"]) == (1, 1)
    assert h.mutating() == []


# --- older findings, other identities, and what happens to a load balancer that is gone ------


def _without(item: CleanupItem, *keys: str, **details: object) -> CleanupItem:
    """The item as an older scan stored it (without ``keys``), or with other ``details``."""
    kept = {k: v for k, v in item.resource_details.items() if k not in keys}
    return dataclasses.replace(item, resource_details={**kept, **details})


def test_an_older_finding_counts_the_registered_targets_its_evidence_names(h):
    """Findings stored before the detector recorded ``registered_targets`` say it in their
    evidence ("none of 1 registered targets ..."): the re-check reads it there, so the one
    stopped target the scan saw does not look new, and one more does."""
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    assert any("none of 1 registered targets" in line for line in item.resource_details["evidence"])
    older = _without(item, "registered_targets")
    blank = _without(item, "registered_targets", evidence=[])

    as_seen = ACTION.recheck(h.context(), older)
    without_evidence = ACTION.recheck(h.context(), blank)

    assert as_seen.still_waste, as_seen.reason
    assert not without_evidence.still_waste
    assert "registered since the scan (1 now, 0 then)" in without_evidence.reason


def test_an_item_without_its_arn_is_found_by_its_id(h):
    """The ELBv2 ARN is built from the account, region and ``app/<name>/<id>`` when the item
    carries none; the load balancer it names is the one re-checked and deleted."""
    w = _world(h)
    item = dataclasses.replace(h.item(DETECTOR, w["id"]), resource_arn=None)
    ctx = h.context()

    result = ACTION.recheck(ctx, item)
    data = ACTION.prepare(ctx, item, PARAMS, {})
    outcome = ACTION.execute(ctx, item, PARAMS, data)

    assert result.still_waste, result.reason
    assert data["load_balancer"]["LoadBalancerArn"] == w["arn"]
    assert outcome.response["load_balancer_arn"] == w["arn"] and not _exists(h, w["arn"])


def test_a_load_balancer_gone_before_prepare_is_not_recorded_nor_dry_run(h):
    w = _world(h)
    name = _classic(h)
    items = [h.item(DETECTOR, w["id"]), h.item(DETECTOR, name)]
    # the permissions a dry run lists do not depend on whether the load balancer is still there
    permissions = [ACTION.dry_run(h.context(), item, PARAMS).calls for item in items]
    h.seed("elbv2").delete_load_balancer(LoadBalancerArn=w["arn"])
    h.seed("elb").delete_load_balancer(LoadBalancerName=name)

    for item, service, resource, calls in (
        (items[0], "elbv2", w["arn"], permissions[0]),
        (items[1], "elb", name, permissions[1]),
    ):
        dry = ACTION.dry_run(h.context(), item, PARAMS)
        with pytest.raises(aws.AwsError) as raised:
            ACTION.prepare(h.context(), item, PARAMS, {})
        assert not dry.would_succeed and dry.message == f"{item.resource_id} no longer exists"
        assert dry.calls == calls and "elasticloadbalancing:DeleteLoadBalancer" in calls
        assert raised.value.kind is aws.ErrorKind.NOT_FOUND
        assert str(raised.value) == (
            f"{service}:DescribeLoadBalancers in {REGION} failed (not-found, "
            f"LoadBalancerNotFound): {resource} is gone before its configuration was recorded"
        )
    assert h.checkpoints == {} and h.mutating() == []


def test_prepare_keeps_a_complete_earlier_record_and_rollback_refuses_an_incomplete_one(h):
    """A rerun keeps the configuration recorded before the first attempt (the load balancer may
    be half deleted by now); a record that never completed restores nothing."""
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    first = ACTION.prepare(h.context(), item, PARAMS, {})
    h.seed("elbv2").add_tags(ResourceArns=[w["arn"]], Tags=[{"Key": "later", "Value": "1"}])

    again = ACTION.prepare(h.context(), item, PARAMS, first)
    fresh = ACTION.prepare(h.context(), item, PARAMS, {**first, "config_complete": False})
    ACTION.execute(h.context(), item, PARAMS, first)
    with pytest.raises(aws.AwsError) as raised:
        ACTION.rollback(h.context(), {**first, "config_complete": False}, PARAMS)

    assert again == first
    assert tags_of(fresh["tags"]).get("later") == "1"
    assert str(raised.value) == (
        f"cloudsweep:Rollback in {REGION} failed (terminal, NoRecordedConfiguration): the load "
        "balancer's configuration was never recorded; nothing to restore"
    )
    assert h.recorder.count(operation="CreateLoadBalancer") == 0


def test_classic_recheck_refuses_a_load_balancer_created_again_under_its_name(h):
    """A classic load balancer is known by its name only: one whose creation time differs from
    the scan's by more than a second is another load balancer; within a second (one second
    included) it is the same."""
    name = _classic(h)
    item = h.item(DETECTOR, name)
    created = datetime.fromisoformat(item.resource_details["created_at"])
    same = _without(item, created_at=(created + timedelta(seconds=1)).isoformat())
    then = created - timedelta(milliseconds=1500)
    other = _without(item, created_at=then.isoformat())

    assert ACTION.recheck(h.context(), same).still_waste
    refused = ACTION.recheck(h.context(), other)

    assert not refused.still_waste
    assert refused.reason == (
        f"load balancer {name} was created again since the scan ({created.isoformat()}, scan "
        f"saw {then.isoformat()})"
    )


def test_classic_recheck_refuses_an_instance_in_service_and_a_new_registration(h):
    name = _classic(h)
    item = h.item(DETECTOR, name)
    ec2, elb = h.seed("ec2"), h.seed("elb")
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    elb.register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": instance["InstanceId"]}]
    )
    in_service = ACTION.recheck(h.context(), item)
    # The scan saw it InService and idle by its traffic: only a new registration refuses now.
    seen_healthy = _without(item, healthy_targets=1)
    registered = ACTION.recheck(h.context(), seen_healthy)

    assert not in_service.still_waste
    assert "1 instance(s) are InService now (the scan saw 0)" in in_service.reason
    assert in_service.facts["in_service"] == [instance["InstanceId"]]
    assert not registered.still_waste
    assert "instances were registered since the scan (1 now, 0 then)" in registered.reason
    assert registered.facts["traffic_last_day"] == 0
    # judged idle by its traffic: requests to it (AWS/ELB, by name) in the last day refuse
    h.seed("cloudwatch").put_metric_data(
        Namespace="AWS/ELB",
        MetricData=[
            {
                "MetricName": "RequestCount",
                "Dimensions": [{"Name": "LoadBalancerName", "Value": name}],
                "Value": 1,  # a single request is traffic
                "Timestamp": utcnow() - timedelta(hours=2),
            }
        ],
    )
    busy = ACTION.recheck(h.context(), seen_healthy)
    assert not busy.still_waste and busy.reason == "it has traffic again: 1 in the last day"
    assert busy.facts["traffic_last_day"] == 1


def test_classic_execute_of_a_load_balancer_already_gone_is_done_without_a_delete(h):
    name = _classic(h)
    item = h.item(DETECTOR, name)
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})
    h.seed("elb").delete_load_balancer(LoadBalancerName=name)

    outcome = ACTION.execute(ctx, item, PARAMS, data)

    assert outcome.already_done
    assert (outcome.response, outcome.note) == (
        {"load_balancer_name": name},
        f"classic load balancer {name} is already gone",
    )
    assert h.recorder.count(service="elb", operation="DeleteLoadBalancer") == 0


# --- what a user reads when a call is refused: the failed call, named -------------------------
#
# A step that fails records ``str(error)`` as the action's failure (the ledger's error, the
# policy's CleanupFailed condition): "<service>:<operation> in <region> failed (<kind>, <code>):
# <message>". The operation tells the user which permission to grant, so each call is refused in
# turn below, with a fresh session on the same world, and the message must name that call.

# botocore's event name of each service the action calls (its service ID, hyphenated)
_EVENTS = {"elbv2": ELBV2_EVENTS, "elb": ELB_EVENTS, "cloudwatch": "cloudwatch"}


def _deny(h: Harness, service: str, operation: str, *, after: int = 0) -> faults.Injected:
    """AccessDenied for one call of ``operation``: the one after the first ``after`` calls."""
    message = f"not authorized to perform {operation}"
    if service == "cloudwatch":  # botocore talks JSON to CloudWatch
        return faults.fail_with(
            h.session.events,
            f"before-send.cloudwatch.{operation}",
            status=400,
            body=f'{{"__type": "AccessDenied", "message": "{message}"}}'.encode(),
            headers={"Content-Type": "application/x-amz-json-1.0"},
            times=1,
            after=after,
        )
    return faults.fail_with(
        h.session.events,
        f"before-send.{_EVENTS[service]}.{operation}",
        status=403,
        body=faults.query_error_body("AccessDenied", message),
        times=1,
        after=after,
    )


def _denial(service: str, operation: str) -> str:
    return (
        f"{service}:{operation} in {REGION} failed (access-denied, AccessDenied): "
        f"not authorized to perform {operation}"
    )


def _refused_in_turn(
    h: Harness, calls: list[tuple[str, str, str, int]], steps: dict[str, object]
) -> None:
    """For each (step, service, operation, after): a fresh session refused that call; the step
    must fail with the message that names it (the refusal seen once: the call was reached)."""
    for step, service, operation, after in calls:
        fresh = Harness(h.endpoint)
        denied = _deny(fresh, service, operation, after=after)
        with pytest.raises(aws.AwsError) as raised:
            steps[step](fresh.context())  # type: ignore[operator]
        assert denied.hits == 1, (step, operation)
        assert str(raised.value) == _denial(service, operation), (step, operation)


def test_every_refused_call_of_an_elbv2_cleanup_is_named_in_its_failure(h):
    w = _world(h)
    item = h.item(DETECTOR, w["id"])
    seen_healthy = _without(item, healthy_targets=1)  # judged idle by its traffic: reads it
    data = ACTION.prepare(h.context(), item, PARAMS, {})
    steps = {
        "recheck": lambda ctx: ACTION.recheck(ctx, item),
        "traffic": lambda ctx: ACTION.recheck(ctx, seen_healthy),
        "dry_run": lambda ctx: ACTION.dry_run(ctx, item, PARAMS),
        "prepare": lambda ctx: ACTION.prepare(ctx, item, PARAMS, {}),
        "execute": lambda ctx: ACTION.execute(ctx, item, PARAMS, data),
    }

    _refused_in_turn(
        h,
        [
            ("recheck", "elbv2", "DescribeLoadBalancers", 0),
            ("recheck", "elbv2", "DescribeTags", 0),
            ("recheck", "elbv2", "DescribeLoadBalancerAttributes", 0),
            ("recheck", "elbv2", "DescribeTargetGroups", 0),
            ("recheck", "elbv2", "DescribeTargetHealth", 0),
            ("traffic", "cloudwatch", "GetMetricData", 0),
            ("dry_run", "elbv2", "DescribeLoadBalancers", 0),
            ("dry_run", "elbv2", "DescribeLoadBalancerAttributes", 0),
            ("prepare", "elbv2", "DescribeLoadBalancers", 0),
            ("prepare", "elbv2", "DescribeListeners", 0),
            ("prepare", "elbv2", "DescribeListenerCertificates", 0),
            ("prepare", "elbv2", "DescribeRules", 0),
            ("prepare", "elbv2", "DescribeTargetGroups", 0),  # those attached
            ("prepare", "elbv2", "DescribeTargetGroups", 1),  # those the listeners name
            ("prepare", "elbv2", "DescribeTargetGroupAttributes", 0),
            ("prepare", "elbv2", "DescribeTargetHealth", 0),
            ("prepare", "elbv2", "DescribeTags", 0),
            ("prepare", "elbv2", "DescribeLoadBalancerAttributes", 0),
            ("execute", "elbv2", "DescribeLoadBalancers", 0),
            ("execute", "elbv2", "DeleteLoadBalancer", 0),
        ],
        steps,
    )

    assert _exists(h, w["arn"])  # every refusal left it in place


def test_classic_outcomes_name_the_load_balancer_and_its_new_dns_name_beside_another(h):
    """Another classic load balancer in the account is neither read nor touched: the rollback
    looks up its own name only, and its outcome names the recreated DNS name."""
    h.seed("elb").create_load_balancer(
        LoadBalancerName="aaa-other-elb",
        Listeners=[{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}],
        AvailabilityZones=[f"{REGION}a"],
    )
    name = _classic(h)
    item = h.item(DETECTOR, name)
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})

    deleted = ACTION.execute(ctx, item, PARAMS, data)
    restored = ACTION.rollback(h.context(), data, PARAMS)

    assert deleted.response == {"load_balancer_name": name, "deleted": True}
    assert deleted.note == f"deleted classic load balancer {name}" and not deleted.already_done
    elb = h.seed("elb")
    (lb,) = elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"]
    assert restored.response == {"load_balancer_name": name, "dns_name": lb["DNSName"]}
    assert restored.note == (
        f"recreated classic load balancer {name}, DNS name {lb['DNSName']}; AWS cannot reuse "
        f"the old DNS name ({data['load_balancer']['DNSName']}): update DNS records and clients "
        "that used it"
    )
    names = {
        d["LoadBalancerName"] for d in elb.describe_load_balancers()["LoadBalancerDescriptions"]
    }
    assert names == {"aaa-other-elb", name}


def test_rollback_refuses_a_same_named_target_group_it_did_not_make_before_any_load_balancer(h):
    """A recorded target group gone and another made under its name by someone else: the
    rollback stops before it creates anything, and says what to do."""
    w, data = _deleted(h)
    elbv2 = h.seed("elbv2")
    elbv2.delete_target_group(TargetGroupArn=w["api"])
    elbv2.create_target_group(Name="promo-api", Protocol="HTTP", Port=8080, VpcId=w["vpc"])
    undo = h.context()

    with pytest.raises(aws.AwsError) as raised:
        ACTION.rollback(undo, data, PARAMS)

    assert str(raised.value) == (
        f"elbv2:CreateTargetGroup in {REGION} failed (terminal, DuplicateTargetGroupName): a "
        "target group named promo-api exists and was not made by this rollback; rename or "
        "delete it, then roll back again"
    )
    assert [op for _, op in h.mutating()] == ["DeleteLoadBalancer"]  # the cleanup's own
    assert not any(
        lb["LoadBalancerName"] == "promo-alb"
        for lb in elbv2.describe_load_balancers()["LoadBalancers"]
    )


def test_classic_rollback_rebuilds_a_vpc_load_balancer_with_its_policies_and_instances(h):
    """An internal classic load balancer in a VPC subnet with a security group, cookie policies
    of both kinds (one without an expiry), a custom policy on a back-end port, and an instance
    registered after the scan: the rollback makes it again as it was described before."""
    elb, ec2 = h.seed("elb"), h.seed("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    sg = ec2.create_security_group(GroupName="internal-elb", Description="elb", VpcId=vpc)[
        "GroupId"
    ]
    name = "internal-elb"
    cert = h.seed("acm").request_certificate(DomainName="internal.example.com")["CertificateArn"]
    elb.create_load_balancer(
        LoadBalancerName=name,
        Listeners=[
            {"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 8080},
            {"Protocol": "TCP", "LoadBalancerPort": 9000, "InstancePort": 9000},
            # TLS ends at the load balancer: HTTPS in front, plain HTTP to the instances
            {
                "Protocol": "HTTPS",
                "LoadBalancerPort": 443,
                "InstanceProtocol": "HTTP",
                "InstancePort": 8080,
                "SSLCertificateId": cert,
            },
        ],
        Subnets=[subnet],
        SecurityGroups=[sg],
        Scheme="internal",
    )
    elb.create_app_cookie_stickiness_policy(
        LoadBalancerName=name, PolicyName="app-sticky", CookieName="SESSION"
    )
    elb.create_lb_cookie_stickiness_policy(LoadBalancerName=name, PolicyName="lb-sticky")
    elb.create_load_balancer_policy(
        LoadBalancerName=name,
        PolicyName="proxy",
        PolicyTypeName="ProxyProtocolPolicyType",
        PolicyAttributes=[{"AttributeName": "ProxyProtocol", "AttributeValue": "true"}],
    )
    elb.set_load_balancer_policies_of_listener(
        LoadBalancerName=name, LoadBalancerPort=80, PolicyNames=["app-sticky"]
    )
    elb.set_load_balancer_policies_of_listener(
        LoadBalancerName=name, LoadBalancerPort=9000, PolicyNames=["lb-sticky"]
    )
    elb.set_load_balancer_policies_for_backend_server(
        LoadBalancerName=name, InstancePort=9000, PolicyNames=["proxy"]
    )
    item = h.item(DETECTOR, name)
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnet)[
        "Instances"
    ][0]["InstanceId"]
    elb.register_instances_with_load_balancer(
        LoadBalancerName=name, Instances=[{"InstanceId": instance}]
    )
    kept = ("ListenerDescriptions", "Policies", "BackendServerDescriptions", "Subnets")
    kept += ("SecurityGroups", "Scheme", "Instances", "HealthCheck", "VPCId")

    def described() -> dict[str, object]:
        (lb,) = elb.describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"]
        policies = elb.describe_load_balancer_policies(LoadBalancerName=name)
        return {
            **{k: lb.get(k) for k in kept},
            "policies": sorted(
                (p["PolicyName"], p["PolicyTypeName"], str(p.get("PolicyAttributeDescriptions")))
                for p in policies["PolicyDescriptions"]
            ),
        }

    before = described()
    ctx = h.context()
    data = ACTION.prepare(ctx, item, PARAMS, {})
    ACTION.execute(ctx, item, PARAMS, data)

    undo = h.context()
    outcome = ACTION.rollback(undo, data, PARAMS)

    assert not outcome.already_done
    assert described() == before
    # each recorded policy made once, by the call of its kind (AWS refuses a duplicate name)
    made = [(r.operation, r.params.get("PolicyName")) for r in h.recorder.records]
    assert sorted(m for m in made if m[0].startswith("Create") and m[1]) == [
        ("CreateAppCookieStickinessPolicy", "app-sticky"),
        ("CreateLBCookieStickinessPolicy", "lb-sticky"),
        ("CreateLoadBalancerPolicy", "proxy"),
    ]
    # moto describes a listener's InstanceProtocol as its front protocol, so the state cannot
    # tell whether it was sent: the listeners sent to AWS carry every recorded field
    (create,) = h.recorder.calls(service="elb", operation="CreateLoadBalancer")
    listeners = [d["Listener"] for d in data["load_balancer"]["ListenerDescriptions"]]
    assert create.params["Listeners"] == [
        {k: v for k, v in x.items() if v not in (None, "")} for x in listeners
    ]
    assert all(x["InstanceProtocol"] for x in listeners) and len(listeners) == 3
    assert [x["SSLCertificateId"] for x in listeners if x["LoadBalancerPort"] == 443] == [cert]
    # A rerun (the first one stopped after its last call) finds what it made: it creates
    # nothing again (AWS refuses a second policy of the same name) and changes nothing.
    first = len(h.mutating())
    again = ACTION.rollback(undo, data, PARAMS)
    assert again.already_done
    after = described()
    # moto lists an instance registered twice twice; AWS registers it once (a no-op)
    ids = sorted({i["InstanceId"] for i in after["Instances"]})  # type: ignore[union-attr]
    assert {**after, "Instances": [{"InstanceId": i} for i in ids]} == before
    assert [op for _, op in h.mutating()[first:] if op.startswith("Create")] == []
    assert before["Scheme"] == "internal" and before["Subnets"] == [subnet]
    assert before["SecurityGroups"] == [sg]
    assert [i["InstanceId"] for i in before["Instances"]] == [instance]  # type: ignore[union-attr]
    assert ("proxy", "ProxyProtocolPolicyType") in [p[:2] for p in before["policies"]]  # type: ignore[union-attr]
