"""SAFETY-TESTS property tests (every CI run, bounded ``max_examples``).

(a) Dry run: for generated policies (rules, thresholds, caps, ``dryRun: false``) and generated
inventories (findings with generated cost, confidence, risk, safety checks and approvals, over
real moto resources and made-up IDs), a dry run (the run's mode, or every policy's) makes no
mutating call except ones with ``DryRun=True``, and changes nothing in moto.

(b) Crash anywhere: hypothesis picks the action, the step and the fault (SIGKILL of a child
process, or the database's connections broken); after recovery deleted = approved-and-eligible,
each with one intent and one outcome (the scenario functions of ``test_crash`` and
``test_database_failure`` check it all).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cloudsweep import aws, domain
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store

from . import helpers
from .test_crash import crash_then_recover
from .test_database_failure import break_database_then_recover

ACCOUNT = "123456789012"
_orgs = itertools.count()
_accounts = itertools.count(100000000001)

money = st.decimals(min_value=0, max_value=200, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def policy_documents(draw: Any) -> list[dict[str, Any]]:
    kinds = draw(
        st.lists(
            st.sampled_from(
                [
                    ("ebs-volume", "snapshot-and-delete"),
                    ("elastic-ip", "release"),
                ]
            ),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    documents = []
    for index, (resource_type, action) in enumerate(kinds):
        auto = draw(money)
        documents.append(
            {
                "name": f"p{index}",
                "resourceType": resource_type,
                "action": action,
                "rules": {
                    "minAgeDays": draw(st.integers(0, 30)),
                    "minConfidence": draw(st.integers(1, 100)),
                    "maxRiskLevel": draw(st.sampled_from(["low", "medium", "high"])),
                },
                "maxMonthlyCost": str(auto),
                "requireApprovalAbove": str(auto + draw(money)),
                "maxItemsPerRun": draw(st.integers(1, 10)),
                "maxCostPerRun": str(draw(money)),
                "autoExecute": draw(st.booleans()),
                "dryRun": False,
            }
        )
    return documents


@st.composite
def inventories(draw: Any, world: helpers.SmallWorld) -> list[tuple[domain.Finding, bool]]:
    pool = [("ebs-volume", v) for v in (*world.volumes, *world.protected_volumes)] + [
        ("elastic-ip", a) for a in (*world.addresses, *world.protected_addresses)
    ]
    pool += [("ebs-volume", f"vol-{i:017x}") for i in range(2)]  # made-up IDs
    chosen = draw(st.lists(st.sampled_from(pool), unique=True, max_size=len(pool)))
    found = []
    for resource_type, resource_id in chosen:
        passed = draw(st.booleans())
        found.append(
            (
                domain.Finding(
                    resource_type=resource_type,
                    resource_id=resource_id,
                    region=helpers.REGION,
                    monthly_cost=draw(money),
                    confidence=draw(st.integers(1, 100)),
                    risk=draw(st.sampled_from(list(domain.RiskLevel))),
                    safety_checks=(domain.SafetyCheck("generated", passed, "generated"),),
                    created_at=domain.utcnow().replace(year=2020),
                ),
                draw(st.booleans()),  # approved
            )
        )
    return found


@pytest.fixture
def pool(moto_endpoint: str) -> helpers.SmallWorld:
    return helpers.seed_small_world(moto_endpoint, ACCOUNT, volumes=3, addresses=3)


@hsettings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), run_dry=st.booleans())
def test_a_dry_run_makes_no_mutating_call(
    data: Any,
    run_dry: bool,
    pool: helpers.SmallWorld,
    store: Store,
    settings: Settings,
    database_url: str,
) -> None:
    documents = data.draw(policy_documents())
    if not run_dry:  # the run acts, but every policy is in dry-run mode
        documents = [{**d, "dryRun": True} for d in documents]
    inventory = data.draw(inventories(pool))
    slug = f"prop-{next(_orgs)}"
    org = store.ensure_organization(slug)
    account = store.register_account(
        org.id,
        account_id=ACCOUNT,
        role_arn=pool.role_arn,
        external_id=pool.external_id,
        regions=[helpers.REGION],
        auto_cleanup_enabled=data.draw(st.booleans()),
    )
    scan = store.open_scan(
        account.id,
        scan_type=domain.ScanType.MANUAL,
        regions=[helpers.REGION],
        started_at=domain.utcnow(),
    )
    store.upsert_findings(scan, [f for f, _ in inventory])
    approved = {f.resource_id for f, a in inventory if a}
    if approved:
        ids = [i.id for i in store.findings(FindingFilter(slug)) if i.resource_id in approved]
        store.decide_items(
            org.id, ids, approve=True, approver_email=helpers.ACTOR, now=domain.utcnow()
        )
    volumes, addresses = helpers.live_volumes(pool), helpers.live_addresses(pool)

    recorder = aws.CallRecorder()
    for method in (domain.ExecutionMethod.MANUAL, domain.ExecutionMethod.AUTOMATED):
        helpers.run_cleanup(
            store, slug, documents, settings, recorder, dry_run=run_dry, method=method
        )

    # The examples share one AWS account, which belongs to one organization at a time: release it.
    store.mark_account_deleted(account.id, domain.utcnow())
    wet = [c for c in recorder.mutating() if not c.params.get("DryRun")]
    assert wet == [], f"mutating calls in a dry run: {wet}"
    assert helpers.live_volumes(pool) == volumes and helpers.live_addresses(pool) == addresses
    assert all(r["dry_run"] for r in helpers.ledger(database_url, slug))


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
