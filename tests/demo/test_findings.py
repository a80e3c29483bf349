"""What the demo shows: exactly the expected findings of every one of the twelve resource types,
priced, and nothing the demo world marks in use, both from a scan of the seeded world and from
``cloudsweep scan --demo`` (what ``make demo`` runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Final

from cloudsweep import aws, detectors, scanning
from cloudsweep.demo import world as demo_world
from cloudsweep.demo.world import SeededResource, Verdict
from cloudsweep.domain import money
from cloudsweep.pricing import load_catalog
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store

ORG = "demo-findings"

# (seeded kind, category) -> whether its finding is safe to clean. What is not here is not
# reported: in use, stopped for only days, too new, or protected where the detector skips it.
REPORTED: Final[dict[tuple[str, str], bool]] = {
    ("ebs-volume", "unattached"): True,
    ("ebs-volume", "protected"): False,
    ("ebs-volume", "recent"): False,
    ("ebs-snapshot", "orphaned"): True,
    ("elastic-ip", "unassociated"): True,
    ("elastic-ip", "protected"): False,
    ("load-balancer", "no-targets"): True,
    ("load-balancer", "no-target-groups"): True,
    ("classic-load-balancer", "no-instances"): True,
    ("rds-instance", "stopped"): True,
    ("rds-instance", "idle"): True,
    ("ebs-gp3-candidate", "gp2-attached"): True,
    ("ebs-gp3-candidate", "io1-attached"): True,
    ("ami", "unused"): True,
    ("cloudwatch-log-group", "never-expires"): True,
    ("cloudwatch-log-group", "protected"): False,
    ("s3-incomplete-multipart", "no-lifecycle"): True,
    ("s3-incomplete-multipart", "lifecycle-without-abort"): True,
    ("ec2-instance", "idle"): True,
    ("ec2-instance", "idle-in-asg"): False,  # the stop action refuses Auto Scaling members
    ("ec2-stopped-instance", "stopped-90-days"): True,
    ("nat-gateway", "idle"): True,
    ("nat-gateway", "unrouted"): True,
}


def _type(record: SeededResource) -> str:
    return "load-balancer" if record.kind == "classic-load-balancer" else record.kind


def _key(record: SeededResource) -> str:
    """Findings name ELBv2 load balancers by their ARN's resource part (app/name/id)."""
    return record.resource_id.split(":loadbalancer/", 1)[-1]


def _expected(world: demo_world.DemoWorld) -> dict[tuple[str, str, str], bool]:
    """(resource type, region, resource ID) -> safe to clean, for every finding the demo shows."""
    return {
        (_type(r), r.region, _key(r)): REPORTED[r.kind, r.category]
        for r in world.resources
        if (r.kind, r.category) in REPORTED
    }


def test_a_scan_of_the_demo_world_reports_exactly_the_expected_findings(
    moto_endpoint: str, database_url: str
) -> None:
    world = demo_world.seed_demo_world(moto_endpoint)
    store = Store(database_url)
    org = store.ensure_organization(ORG)
    account = store.register_account(
        org.id,
        account_id=world.account_id,
        role_arn=world.scanner_role_arn,
        external_id=world.external_id,
        regions=list(world.regions),
    )
    outcome = scanning.run_scan(
        store,
        account,
        settings=Settings(aws_endpoint_url=moto_endpoint),
        recorder=aws.CallRecorder(),
    )
    assert outcome.scan.status == "completed", outcome.error

    found = {
        (i.resource_type, i.region, i.resource_id): i for i in store.findings(FindingFilter(ORG))
    }
    expected = _expected(world)
    assert set(found) == set(expected)
    assert {key: found[key].safety_checks_passed for key in found} == expected
    assert {t for t, _, _ in found} == set(detectors.names())  # all twelve types
    assert all(i.monthly_cost > 0 for i in found.values())
    in_use = {(_type(r), r.region, _key(r)) for r in world.select(verdict=Verdict.IN_USE)}
    assert not in_use & set(found)


def _demo_command(data_home: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLOUDSWEEP_", "AWS_ENDPOINT"))
    }
    environment["XDG_DATA_HOME"] = str(data_home)
    return subprocess.run(
        [sys.executable, "-m", "cloudsweep.cli", "scan", "--demo", "-o", "json"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )


def test_the_demo_command_shows_every_type_priced(moto_endpoint: str, data_home: Path) -> None:
    result = _demo_command(data_home)
    assert result.returncode == 3, result.stderr  # 3: waste found
    shown = json.loads(result.stdout)

    # The command seeds its own world, whose IDs differ: compare counts per type, region and
    # safety with a world seeded the same way here.
    world = demo_world.seed_demo_world(moto_endpoint)
    expected = Counter((t, region, safe) for (t, region, _), safe in _expected(world).items())
    assert (
        Counter((i["resource_type"], i["region"], i["safe_to_clean"] == "yes") for i in shown)
        == expected
    )

    # The new types at the catalog's prices: instance hours, the stopped instance's 8 + 200 GiB
    # of gp3 and its address, the NAT gateway hours (no bytes through an idle one).
    catalog = load_catalog()
    prices: dict[tuple[str, str, bool], set[Decimal]] = {}
    for item in shown:
        key = (item["resource_type"], item["region"], item["safe_to_clean"] == "yes")
        prices.setdefault(key, set()).add(Decimal(item["monthly_cost"]))
    for region in world.regions:
        assert prices["ec2-instance", region, True] == {
            money(catalog.ec2_instance_monthly(region, "m5.large"))
        }
        assert prices["ec2-instance", region, False] == {
            money(catalog.ec2_instance_monthly(region, "t3.medium"))
        }
        assert prices["ec2-stopped-instance", region, True] == {
            money(
                catalog.ebs_volume_monthly(region, "gp3", 208, 3000, 125)
                + catalog.public_ipv4_monthly(region)
            )
        }
        assert prices["nat-gateway", region, True] == {
            money(catalog.nat_gateway_monthly(region, Decimal(0)))
        }
    assert all(Decimal(i["monthly_cost"]) > 0 for i in shown)
