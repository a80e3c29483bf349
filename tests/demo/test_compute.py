"""The compute demo seeds, scanned by the real detectors on the (in-process) moto server: every
seed labelled waste is found by its detector, and nothing labelled in use is."""

from __future__ import annotations

from cloudsweep import aws, detectors
from cloudsweep.demo import compute
from cloudsweep.detectors import RegionContext
from cloudsweep.domain import utcnow
from cloudsweep.pricing import load_catalog
from cloudsweep.settings import Settings
from tests.detectors.conftest import ACCOUNT, EXTERNAL_ID, REGION, ROLE_ARN, assumed_boto3_session


def test_seeded_compute_waste_is_what_the_detectors_find(moto_endpoint):
    seeder = assumed_boto3_session(moto_endpoint)
    now = utcnow()
    seeds = compute.seed_compute(
        seeder.client("ec2", endpoint_url=moto_endpoint),
        seeder.client("cloudwatch", endpoint_url=moto_endpoint),
        account_id=ACCOUNT,
        region=REGION,
        now=now,
    )
    session = aws.AccountSession(
        ACCOUNT,
        ROLE_ARN,
        external_id=EXTERNAL_ID,
        scan_permissions=detectors.permissions(),
        settings=Settings(aws_endpoint_url=moto_endpoint),
    )
    ctx = RegionContext.for_session(session, REGION, load_catalog(), now=now)
    found = {}
    for name in ("ec2-instance", "ec2-stopped-instance", "nat-gateway"):
        detector = detectors.get(name)()
        for finding in detector.detect(ctx, detector.parameters()):
            found[finding.resource_id] = finding

    assert set(found) == set(seeds.waste)
    assert not set(found) & set(seeds.in_use)
    assert all(f.confidence >= 80 for f in found.values()), {
        k: f.confidence for k, f in found.items()
    }
    by_category = {seeds.waste[k]: f for k, f in found.items()}
    assert not next(
        c
        for c in by_category["idle-instance-in-asg"].safety_checks
        if c.name == "auto-scaling-group"
    ).passed
    assert by_category["stopped-90-days"].details["elastic_ips"]
    assert by_category["stopped-90-days"].monthly_cost > 16  # 200 GiB gp3 + root + an address
