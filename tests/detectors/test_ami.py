"""The ami detector against moto over HTTP."""

from __future__ import annotations

from datetime import timedelta

from cloudsweep.detectors import ami
from cloudsweep.domain import RiskLevel, utcnow

from .conftest import REGION, by_id, check

DETECTOR = ami.AmiDetector()


def image(ec2, name: str) -> str:
    return ec2.register_image(Name=name, Architecture="x86_64")["ImageId"]


def findings(make_context, **kwargs):
    params = kwargs.pop("params", {})
    return by_id(list(DETECTOR.detect(make_context(**kwargs), DETECTOR.parameters(params))))


def test_an_old_unused_image_is_found_priced_by_its_snapshots(seed, make_context, catalog):
    ec2 = seed("ec2")
    unused = image(ec2, "web-2023.01")
    (snapshot,) = [
        m["Ebs"]["SnapshotId"]
        for m in ec2.describe_images(ImageIds=[unused])["Images"][0]["BlockDeviceMappings"]
    ]
    size = ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["VolumeSize"]

    finding = findings(make_context)[unused]

    assert finding.details["snapshot_ids"] == [snapshot]
    assert finding.monthly_cost == catalog.ebs_snapshot_monthly(REGION, size).quantize(
        finding.monthly_cost
    )
    assert finding.monthly_cost > 0
    assert finding.risk is RiskLevel.LOW
    assert finding.confidence == 80
    assert finding.safety_checks_passed
    assert any("no instance, launch template version" in e for e in finding.evidence)


def test_images_in_use_are_not_reported(seed, make_context):
    """Unhappy paths: an instance (even stopped), a launch template's non-default version and a
    launch configuration each keep an image in use."""
    ec2, autoscaling = seed("ec2"), seed("autoscaling")
    by_instance, by_template, by_config, unused = (
        image(ec2, n) for n in ("by-instance", "by-template", "by-config", "unused-one")
    )
    instance = ec2.run_instances(ImageId=by_instance, MinCount=1, MaxCount=1)["Instances"][0]
    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    template = ec2.create_launch_template(
        LaunchTemplateName="web", LaunchTemplateData={"ImageId": unused}
    )["LaunchTemplate"]
    # Version 2 names the image; version 1 (the default) names the unused one.
    ec2.create_launch_template_version(
        LaunchTemplateId=template["LaunchTemplateId"], LaunchTemplateData={"ImageId": by_template}
    )
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="old-lc", ImageId=by_config, InstanceType="t3.micro"
    )
    bystander = image(ec2, "really-unused")

    found = findings(make_context)

    assert bystander in found
    assert not {by_instance, by_template, by_config, unused} & set(found)


def test_a_young_image_is_not_reported_until_it_is_old_enough(seed, make_context):
    unused = image(seed("ec2"), "fresh-bake")

    assert unused not in findings(make_context, now=utcnow() + timedelta(days=30))
    assert unused in findings(
        make_context, now=utcnow() + timedelta(days=30), params={"unused_after_days": 20}
    )


def test_an_ssm_resolved_launch_template_fails_a_check_on_every_image(seed, make_context):
    ec2 = seed("ec2")
    unused = image(ec2, "maybe-in-ssm")
    ec2.create_launch_template(
        LaunchTemplateName="ssm-web",
        LaunchTemplateData={"ImageId": "resolve:ssm:/golden/web/latest"},
    )

    finding = findings(make_context)[unused]

    assert not check(finding, "ssm-reference")
    assert finding.risk is RiskLevel.MEDIUM
    assert finding.confidence == 60


def test_protected_image_is_high_risk_and_scan_is_read_only(seed, make_context, recorder):
    ec2 = seed("ec2")
    unused = image(ec2, "keep-me")
    ec2.create_tags(Resources=[unused], Tags=[{"Key": "cloudsweep.io/protect", "Value": "true"}])

    finding = findings(make_context)[unused]

    assert finding.risk is RiskLevel.HIGH
    assert not recorder.mutating()


def test_an_image_only_terminated_instances_used_is_unused(seed, make_context):
    ec2 = seed("ec2")
    image_id = image(ec2, "old-fleet")
    instance = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1)["Instances"][0]
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])

    assert image_id in findings(make_context)


def test_templates_and_configurations_are_listed_only_for_an_image_no_instance_uses(
    seed, make_context, recorder
):
    """Issue 16: when every image old enough to report runs an instance, nothing else can make
    it waste or not: no DescribeLaunchTemplates or DescribeLaunchConfigurations call."""
    ec2 = seed("ec2")
    used = image(ec2, "by-instance")
    ec2.run_instances(ImageId=used, MinCount=1, MaxCount=1)

    assert findings(make_context) == {}
    assert recorder.count(operation="DescribeLaunchTemplates") == 0
    assert recorder.count(operation="DescribeLaunchConfigurations") == 0

    unused = image(ec2, "unused")
    assert set(findings(make_context)) == {unused}
    assert recorder.count(operation="DescribeLaunchTemplates") == 1
    assert recorder.count(operation="DescribeLaunchConfigurations") == 1


def test_listings_ask_for_their_largest_page(seed, make_context, recorder):
    """Issue 16: 60 launch configurations are one DescribeLaunchConfigurations call (AWS's page
    is 50 unless MaxRecords asks for up to 100), and every configuration is still read."""
    ec2, autoscaling = seed("ec2"), seed("autoscaling")
    kept = image(ec2, "kept-by-the-last")
    for n in range(60):
        autoscaling.create_launch_configuration(
            LaunchConfigurationName=f"lc-{n:02d}",
            ImageId=kept if n == 59 else "ami-12345678",
            InstanceType="t3.micro",
        )
    unused = image(ec2, "unused")

    assert set(findings(make_context)) == {unused}
    (call,) = recorder.calls(operation="DescribeLaunchConfigurations")
    assert call.params["MaxRecords"] == 100
