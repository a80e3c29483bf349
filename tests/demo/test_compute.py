"""The compute demo seeds, scanned by the real detectors on the (in-process) moto server: every
seed labelled waste is found by its detector, the Auto Scaling one is found but refused, and
nothing in use or stopped for only days is."""

from __future__ import annotations

from decimal import Decimal

from cloudsweep import aws, detectors
from cloudsweep.demo import compute, core
from cloudsweep.demo.seeding import Account, RegionSeed, Verdict
from cloudsweep.detectors import RegionContext
from cloudsweep.domain import utcnow
from cloudsweep.pricing import load_catalog
from cloudsweep.settings import Settings
from tests.detectors.conftest import ACCOUNT, EXTERNAL_ID, REGION, ROLE_ARN

KINDS = ("ec2-instance", "ec2-stopped-instance", "nat-gateway")


def test_seeded_compute_waste_is_what_the_detectors_find(moto_endpoint):
    now = utcnow()
    seed = RegionSeed(Account(moto_endpoint, ACCOUNT), REGION, 0, now)
    # As the demo world runs them: core's AMI and subnet first, in-use traffic last.
    for seeder in (core.seed_ec2, compute.seed_compute, compute.seed_region_usage):
        seeder(seed)
    session = aws.AccountSession(
        ACCOUNT,
        ROLE_ARN,
        external_id=EXTERNAL_ID,
        scan_permissions=detectors.permissions(),
        settings=Settings(aws_endpoint_url=moto_endpoint),
    )
    catalog = load_catalog()
    ctx = RegionContext.for_session(session, REGION, catalog, now=now)
    found = {}
    for name in KINDS:
        detector = detectors.get(name)()
        for finding in detector.detect(ctx, detector.parameters()):
            found[finding.resource_id] = finding

    records = {r.resource_id: r for r in seed.resources if r.kind in KINDS}
    expected = {i for i, r in records.items() if r.verdict in (Verdict.WASTE, Verdict.PROTECTED)}
    assert set(found) == expected
    for resource_id, finding in found.items():
        record = records[resource_id]
        assert finding.resource_type == record.kind
        assert finding.confidence >= 80, (record.name, finding.confidence)
        # Waste is safe to clean; the Auto Scaling group's instance is reported but refused.
        assert all(c.passed for c in finding.safety_checks) == (record.verdict is Verdict.WASTE)
    by_category = {(records[k].kind, records[k].category): f for k, f in found.items()}
    asg = by_category["ec2-instance", "idle-in-asg"]
    assert [c.name for c in asg.safety_checks if not c.passed] == ["auto-scaling-group"]

    # Prices: the instance hours; the stopped instance's volumes and address; the NAT hours.
    assert by_category["ec2-instance", "idle"].monthly_cost == catalog.ec2_instance_monthly(
        REGION, "m5.large"
    )
    parked = by_category["ec2-stopped-instance", "stopped-90-days"]
    assert len(parked.details["elastic_ips"]) == 1
    assert len(parked.details["volume_ids"]) == 2  # root and data
    assert parked.monthly_cost == (
        catalog.ebs_volume_monthly(REGION, "gp3", 208, 3000, 125)
        + catalog.public_ipv4_monthly(REGION)
    )
    gateways = [f for f in found.values() if f.resource_type == "nat-gateway"]
    assert len(gateways) == 2
    for gateway in gateways:
        assert gateway.monthly_cost == catalog.nat_gateway_monthly(REGION, Decimal(0))
