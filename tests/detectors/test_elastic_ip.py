"""The elastic-ip detector against moto over HTTP."""

from __future__ import annotations

from decimal import Decimal

from cloudsweep.detectors import elastic_ip
from cloudsweep.domain import RiskLevel

from .conftest import ACCOUNT, REGION, by_id, check

DETECTOR = elastic_ip.ElasticIpDetector()


def test_unassociated_address_is_found_associated_is_not(seed, make_context):
    ec2 = seed("ec2")
    idle = ec2.allocate_address(Domain="vpc")["AllocationId"]
    used = ec2.allocate_address(Domain="vpc")["AllocationId"]
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    ec2.associate_address(AllocationId=used, InstanceId=instance["InstanceId"])

    findings = by_id(list(DETECTOR.detect(make_context(), DETECTOR.parameters())))

    assert set(findings) == {idle}
    finding = findings[idle]
    assert finding.resource_arn == f"arn:aws:ec2:{REGION}:{ACCOUNT}:elastic-ip/{idle}"
    assert finding.monthly_cost == Decimal("3.65")  # 0.005 USD/hour x 730 hours
    assert finding.annual_cost == Decimal("43.80")
    assert finding.confidence == 90
    assert finding.risk is RiskLevel.LOW
    assert finding.safety_checks_passed
    assert any("associated with no instance" in e for e in finding.evidence)
    assert finding.details["public_ip"]


def test_protected_address_is_high_risk(seed, make_context):
    ec2 = seed("ec2")
    allocation = ec2.allocate_address(
        Domain="vpc",
        TagSpecifications=[
            {"ResourceType": "elastic-ip", "Tags": [{"Key": "cloudsweep.io/protect", "Value": "1"}]}
        ],
    )["AllocationId"]

    (finding,) = DETECTOR.detect(make_context(), DETECTOR.parameters())

    assert finding.resource_id == allocation
    assert not check(finding, "protection-tag")
    assert finding.risk is RiskLevel.HIGH


def test_custom_protection_tags(seed, make_context):
    ec2 = seed("ec2")
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.create_tags(Resources=[allocation], Tags=[{"Key": "allowlisted", "Value": "partner-x"}])

    params = DETECTOR.parameters({"protection_tags": ["allowlisted"]})
    (finding,) = DETECTOR.detect(make_context(), params)

    assert finding.risk is RiskLevel.HIGH
