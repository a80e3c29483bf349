"""SAFETY-TESTS bad inputs: "a policy that matches everything" (the dry-run plan shows the count;
per-run caps bound what one run may do) and "resource IDs that collide across accounts or
regions" (every key includes organization, account and region; only IDs CloudSweep's own scan
produced in that account and region are acted on).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import sqlalchemy as sa

from cloudsweep import aws, domain
from cloudsweep.demo import world as demo_world
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store
from cloudsweep.store.engine import get_engine

from . import helpers

ORG = "bulk-org"
ACCOUNT = "123456789012"


def test_a_policy_matching_everything_is_bounded_by_the_caps(
    moto_endpoint: str, store: Store, settings: Settings, database_url: str
) -> None:
    """A few hundred resources (``seed_bulk_world``); match-everything policies with an item cap
    (addresses) and a dollar cap (volumes). The dry-run plan counts every match; a real run acts
    on at most the caps, each once, and records its plan first."""
    summary = demo_world.seed_bulk_world(
        moto_endpoint, resources=300, regions=(helpers.REGION,), account_id=ACCOUNT
    )
    world = helpers.SmallWorld(moto_endpoint, ACCOUNT, f"ext-{ACCOUNT}", (), (), (), ())
    helpers.scan_world(store, ORG, world, settings)
    everything = [
        helpers.address_policy(
            maxItemsPerRun=5, rules={"minAgeDays": 0, "minConfidence": 1, "maxRiskLevel": "high"}
        ),
        helpers.volume_policy(
            maxItemsPerRun=1000,
            maxCostPerRun="100.00",
            rules={"minAgeDays": 0, "minConfidence": 1, "maxRiskLevel": "high"},
        ),
    ]
    waste = (
        summary.waste[(helpers.REGION, "elastic-ip")]
        + summary.waste[(helpers.REGION, "ebs-volume")]
    )
    assert waste > 100

    dry = aws.CallRecorder()
    plan = helpers.run_cleanup(store, ORG, everything, settings, dry, dry_run=True).plan
    counts = plan.counts()
    assert counts["approved-to-run"] + counts["deferred"] == waste
    assert [c for c in dry.mutating() if not c.params.get("DryRun")] == []

    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(store, ORG, everything, settings, recorder)
    released = helpers.recorded_mutations(recorder, "ReleaseAddress")
    deleted = helpers.recorded_mutations(recorder, "DeleteVolume")
    assert len(released) == 5 and len(set(released)) == 5
    assert len(set(deleted)) == len(deleted) >= 1
    costs = {i.resource_id: i.monthly_cost for i in store.findings(FindingFilter(ORG))}
    assert sum((costs[v] for v in deleted), Decimal(0)) <= Decimal("100.00")
    assert [r.outcome for r in report.results].count("succeeded") == len(released) + len(deleted)
    helpers.assert_ledger_complete(database_url, {*released, *deleted}, org_slug=ORG)
    with get_engine(database_url).connect() as conn:
        plans = (
            conn.execute(sa.text("SELECT plan FROM cleanup_runs WHERE NOT dry_run")).scalars().all()
        )
    assert len(plans[0]["actionable"]) == len(released) + len(deleted)


def test_colliding_ids_in_other_regions_and_accounts_are_never_acted_on(
    moto_endpoint: str, store: Store, settings: Settings, database_url: str
) -> None:
    """The scan of account 123456789012 in us-east-1 produced the real findings; findings with the
    same IDs are inserted directly (``Store.upsert_findings``) for us-west-2 of the same account
    and for us-east-1 of another account of the same organization. Each is its own row; only the
    scanned account and region get destructive calls, once per ID."""
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT)
    other = helpers.seed_small_world(moto_endpoint, "333333333333", volumes=0, addresses=0)
    helpers.scan_world(store, ORG, world, settings, regions=(helpers.REGION, "us-west-2"))
    org = store.ensure_organization(ORG)
    accounts = {a.account_id: a for a in store.accounts(org.id)}
    second = store.register_account(
        org.id,
        account_id=other.account_id,
        role_arn=other.role_arn,
        external_id=other.external_id,
        regions=[helpers.REGION],
    )
    collisions = [(accounts[ACCOUNT], "us-west-2"), (second, helpers.REGION)]
    for account, region in collisions:
        scan = store.open_scan(
            account.id,
            scan_type=domain.ScanType.MANUAL,
            regions=[region],
            started_at=domain.utcnow(),
        )
        store.upsert_findings(
            scan,
            [
                domain.Finding(
                    resource_type=t,
                    resource_id=i,
                    region=region,
                    monthly_cost=Decimal("5.00"),
                    confidence=90,
                    risk=domain.RiskLevel.LOW,
                )
                for t, ids in (("ebs-volume", world.volumes), ("elastic-ip", world.addresses))
                for i in ids
            ],
        )
    rows = Counter(f.resource_id for f in store.findings(FindingFilter(ORG)))
    assert all(rows[i] == 3 for i in (*world.volumes, *world.addresses))

    recorder = aws.CallRecorder()
    helpers.run_cleanup(
        store, ORG, [helpers.volume_policy(), helpers.address_policy()], settings, recorder
    )
    destructive = [
        c
        for c in recorder.mutating()
        if c.operation in ("DeleteVolume", "ReleaseAddress", "CreateSnapshot")
    ]
    assert {(c.caller_account, c.region) for c in destructive} == {(ACCOUNT, helpers.REGION)}
    assert Counter(helpers.recorded_mutations(recorder, "DeleteVolume")) == Counter(
        dict.fromkeys(world.volumes, 1)
    )
    assert Counter(helpers.recorded_mutations(recorder, "ReleaseAddress")) == Counter(
        dict.fromkeys(world.addresses, 1)
    )
    real = helpers.real_rows(database_url, ORG)
    done = {
        (r["account_id"], r["region"], r["resource_id"]) for r in real if r["status"] == "succeeded"
    }
    assert done == {(ACCOUNT, helpers.REGION, i) for i in (*world.volumes, *world.addresses)}
    assert all(
        r["status"] == "refused"
        for r in real
        if (r["account_id"], r["region"]) != (ACCOUNT, helpers.REGION)
    )
