"""SAFETY-TESTS property tests (every CI run, bounded ``max_examples``).

(a) Dry run: for generated policies over every registered action (rules, thresholds, caps,
``dryRun: false``) and generated approvals of the findings a real scan made of one world per
action, a dry run (the run's mode, or every policy's) makes no mutating call except ones with
``DryRun=True``, and changes nothing in moto (every resource type compared). Every generated plan
is asserted to hold actionable decisions, so the property cannot pass vacuously.

(b) Crash anywhere: hypothesis picks the action, the step and the fault (SIGKILL of a child
process, or the database's connections broken); after recovery deleted = approved-and-eligible,
each with one intent and one outcome (the scenario functions of ``test_crash`` and
``test_database_failure`` check it all).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cloudsweep import aws, domain
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store

from . import helpers, worlds
from .test_crash import crash_then_recover
from .test_database_failure import break_database_then_recover

ACCOUNT = "123456789012"
_accounts = itertools.count(100000000001)

money = st.decimals(min_value=0, max_value=200, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def policy_documents(draw: Any) -> list[dict[str, Any]]:
    """Policies over registered actions (``worlds.registered()``) with generated rules,
    thresholds and caps, all ``dryRun: false``. The first is permissive (any confidence, risk and
    cost), so every plan holds actionable decisions once its items are approved."""
    chosen = draw(
        st.lists(st.sampled_from(worlds.registered()), min_size=1, max_size=4, unique_by=id)
    )
    documents = []
    for index, world in enumerate(chosen):
        auto = draw(money)
        permissive = index == 0
        documents.append(
            {
                "name": f"p{index}",
                "resourceType": world.resource_type,
                "action": world.action,
                "rules": {
                    "minAgeDays": 0 if permissive else draw(st.integers(0, 30)),
                    "minConfidence": 1 if permissive else draw(st.integers(1, 100)),
                    "maxRiskLevel": "high"
                    if permissive
                    else draw(st.sampled_from(["low", "medium", "high"])),
                },
                "maxMonthlyCost": str(auto),
                "requireApprovalAbove": str(auto + draw(money)),
                "maxItemsPerRun": draw(st.integers(1, 10)),
                "maxCostPerRun": "100000.00" if permissive else str(draw(money)),
                "autoExecute": draw(st.booleans()),
                "parameters": dict(world.policy.get("parameters") or {}),
                "dryRun": False,
            }
        )
    return documents


@pytest.fixture
def every_type(moto_endpoint: str, store: Store, settings: Settings) -> str:
    """One account holding the world of every registered action, scanned once into ``prop-org``
    (findings of every type); each example approves some of them in its own way."""
    for world in worlds.registered():
        world.seed(moto_endpoint, ACCOUNT)
    for world in {w.resource_type: w for w in worlds.registered()}.values():
        worlds.scan(store, "prop-org", world, moto_endpoint, ACCOUNT, settings)
    return "prop-org"


def moto_state(endpoint: str) -> dict[str, Any]:
    """Everything of every resource type the actions touch, as moto reports it."""
    ec2 = helpers.account_client(endpoint, ACCOUNT, "ec2")
    elbv2 = helpers.account_client(endpoint, ACCOUNT, "elbv2")
    rds = helpers.account_client(endpoint, ACCOUNT, "rds")

    def tags(entries: Any) -> list[tuple[str, str]]:
        return sorted((t["Key"], t["Value"]) for t in entries or [])

    return {
        "volumes": sorted(
            (v["VolumeId"], v["State"], v["Size"], tags(v.get("Tags")))
            for v in ec2.describe_volumes()["Volumes"]
        ),
        "snapshots": sorted(
            (s["SnapshotId"], s["State"], s.get("StorageTier", "standard"), tags(s.get("Tags")))
            for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
        ),
        "addresses": sorted(
            (a["AllocationId"], a.get("AssociationId"), tags(a.get("Tags")))
            for a in ec2.describe_addresses()["Addresses"]
        ),
        "load_balancers": sorted(
            (lb["LoadBalancerArn"], lb["State"]["Code"])
            for lb in elbv2.describe_load_balancers()["LoadBalancers"]
        ),
        "databases": sorted(
            (db["DBInstanceIdentifier"], db["DBInstanceStatus"])
            for db in rds.describe_db_instances()["DBInstances"]
        ),
        "db_snapshots": sorted(
            s["DBSnapshotIdentifier"]
            for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
        ),
        **_issue15_state(endpoint),
    }


def _issue15_state(endpoint: str) -> dict[str, Any]:
    """The state of the resource types of issue 15's actions, as moto reports it."""
    ec2 = helpers.account_client(endpoint, ACCOUNT, "ec2")
    logs = helpers.account_client(endpoint, ACCOUNT, "logs")
    s3 = helpers.account_client(endpoint, ACCOUNT, "s3")

    def lifecycle(bucket: str) -> Any:
        try:
            return s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        except s3.exceptions.ClientError:
            return None

    return {
        "instances": sorted(
            (i["InstanceId"], i["State"]["Name"], i["InstanceType"])
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
        ),
        "volume_types": sorted(
            (v["VolumeId"], v["VolumeType"]) for v in ec2.describe_volumes()["Volumes"]
        ),
        "nat_gateways": sorted(
            (n["NatGatewayId"], n["State"]) for n in ec2.describe_nat_gateways()["NatGateways"]
        ),
        "images": sorted(
            (i["ImageId"], i["State"]) for i in ec2.describe_images(Owners=["self"])["Images"]
        ),
        "log_groups": sorted(
            (g["logGroupName"], g.get("retentionInDays"))
            for g in logs.describe_log_groups()["logGroups"]
        ),
        "bucket_lifecycles": sorted(
            (b["Name"], repr(lifecycle(b["Name"]))) for b in s3.list_buckets()["Buckets"]
        ),
    }


# No shrinking: each example runs real cleanups against moto, and a failing one is reported as
# drawn (shrinking a broken dry-run guard took six minutes).
@hsettings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(data=st.data(), run_dry=st.booleans())
def test_a_dry_run_makes_no_mutating_call(
    data: Any,
    run_dry: bool,
    every_type: str,
    moto_endpoint: str,
    store: Store,
    settings: Settings,
    database_url: str,
) -> None:
    """Dry run (the run's mode, or every policy's ``dryRun``): plans that DO hold actionable
    decisions (asserted: the property cannot pass vacuously) make no mutating call except with
    ``DryRun=True``, each actionable decision leaves one dry-run row, and moto's state of every
    resource type is unchanged."""
    documents = data.draw(policy_documents())
    if not run_dry:  # the run acts, but every policy is in dry-run mode
        documents = [{**d, "dryRun": True} for d in documents]
    org = store.organization(every_type)
    assert org is not None
    first_type = documents[0]["resourceType"]
    findings = store.findings(FindingFilter(every_type))
    of_first = [f.id for f in findings if f.resource_type == first_type]
    others = [f.id for f in findings if f.resource_type != first_type]
    approved = of_first + data.draw(st.lists(st.sampled_from(others), unique=True))
    store.decide_items(
        org.id, approved, approve=True, approver_email=helpers.ACTOR, now=domain.utcnow()
    )
    state = moto_state(moto_endpoint)

    recorder = aws.CallRecorder()
    for method in (domain.ExecutionMethod.MANUAL, domain.ExecutionMethod.AUTOMATED):
        report = helpers.run_cleanup(
            store, every_type, documents, settings, recorder, dry_run=run_dry, method=method
        )
        assert report.plan.actionable, "the generated plan holds no actionable decision"
        rows = [r for r in helpers.ledger(database_url, every_type)]
        run_rows = [r for r in report.results if r.outcome.startswith("dry-run")]
        assert len(run_rows) == len(report.plan.actionable) == len(report.results)
        assert all(r["dry_run"] for r in rows)

    wet = [c for c in recorder.mutating() if not c.params.get("DryRun")]
    assert wet == [], f"mutating calls in a dry run: {wet}"
    assert moto_state(moto_endpoint) == state


@hsettings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    target=st.sampled_from(
        [("ebs-volume", s) for s in helpers.VOLUME_STEPS]
        + [("elastic-ip", s) for s in helpers.ADDRESS_STEPS]
    ),
    fault=st.sampled_from(["kill", "database"]),
)
def test_crash_anywhere(
    target: tuple[str, str],
    fault: str,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    tmp_path_factory: Any,
) -> None:
    resource_type, step = target
    account_id = str(next(_accounts))
    common = {
        "resource_type": resource_type,
        "step": step,
        "endpoint": moto_endpoint,
        "database_url": database_url,
        "store": store,
        "settings": settings,
        "account_id": account_id,
        "org": f"anywhere-{account_id}",
    }
    if fault == "kill":
        crash_then_recover(tmp=tmp_path_factory.mktemp("crash"), **common)
    else:
        break_database_then_recover(**common)
