"""SAFETY-TESTS "guards that tests must notice": the re-check at execution is never laxer than the
scan and the policy (issue 11, point 2), end to end: scan (with a ScanSchedule's own protection
tag), approval, a tag added in AWS after the approval, then a real cleanup run.

Observed before the fix: both approved volumes were deleted. Observed in AWS: moto's volumes and
the requests moto received (``tests/sts_gate.py``), not CloudSweep's labels. The contract over
every registered action is ``tests/cleanup/test_recheck_contract.py``.
"""

from __future__ import annotations

from typing import Any

from cloudsweep import aws, domain, scanning
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store
from tests.sts_gate import StsGate

from . import helpers

ACCOUNT = "111111111111"
SCAN_PROTECTION = "finops/keep"


def _policy_on_approval(**tag_rule: Any) -> dict[str, Any]:
    """A volume policy that acts on every approved finding, with one tag rule."""
    return helpers.volume_policy(
        requireApprovalAbove="0.00",
        rules={"minAgeDays": 0, "minConfidence": 50, "maxRiskLevel": "medium", **tag_rule},
    )


def _scan_and_approve(
    store: Store, world: helpers.SmallWorld, settings: Settings, **detector: Any
) -> None:
    """Register the world's account in ``team-a``, scan its volumes (any age, and ``detector``'s
    parameters), and approve every finding, as a person would before the tags change."""
    org = store.ensure_organization("team-a")
    account = store.register_account(
        org.id,
        account_id=ACCOUNT,
        role_arn=world.role_arn,
        external_id=world.external_id,
        regions=[helpers.REGION],
    )
    options = scanning.ScanOptions(
        detectors=["ebs-volume"], parameters={"ebs-volume": {"min_age_days": 0, **detector}}
    )
    assert scanning.run_scan(store, account, options, settings=settings).scan.status == "completed"
    items = store.findings(FindingFilter("team-a"))
    assert {i.resource_id for i in items} == set(world.volumes)
    store.decide_items(
        org.id,
        [i.id for i in items],
        approve=True,
        approver_email=helpers.ACTOR,
        now=domain.utcnow(),
    )


def test_an_approved_volume_tagged_after_approval_is_not_deleted(
    sts: StsGate, moto_endpoint: str, store: Store, settings: Settings, database_url: str
) -> None:
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT, protected=False)
    _scan_and_approve(
        store, world, settings, protection_tags=["cloudsweep.io/protect", SCAN_PROTECTION]
    )

    # After the approval, in AWS: one volume gets the schedule's protection tag, the other a tag
    # the policy excludes.
    protected, excluded = world.volumes
    ec2 = helpers.account_client(moto_endpoint, ACCOUNT, "ec2")
    ec2.create_tags(Resources=[protected], Tags=[{"Key": SCAN_PROTECTION, "Value": "yes"}])
    ec2.create_tags(Resources=[excluded], Tags=[{"Key": "env", "Value": "prod"}])

    policy = _policy_on_approval(excludeTags={"env": "prod"})
    report = helpers.run_cleanup(store, "team-a", [policy], settings, aws.CallRecorder())

    outcomes = {r.resource_id: r for r in report.results}
    assert (
        outcomes[protected].outcome == "refused" and SCAN_PROTECTION in outcomes[protected].message
    )
    assert outcomes[excluded].outcome == "refused" and "env" in outcomes[excluded].message
    assert helpers.live_volumes(world) == set(world.volumes)
    sent = [r for r in sts.calls(account=ACCOUNT) if r.action in ("DeleteVolume", "CreateSnapshot")]
    assert sent == []
    assert {r["status"] for r in helpers.real_rows(database_url, "team-a")} == {"refused"}


def test_a_volume_that_lost_the_policys_included_tag_after_approval_is_not_deleted(
    sts: StsGate, moto_endpoint: str, store: Store, settings: Settings, database_url: str
) -> None:
    """A policy that takes only ``team: data`` volumes: both were tagged so when scanned and
    approved; one is re-tagged ``team: web`` afterwards. The run deletes the other one and
    refuses this one, naming the tag: the include rule holds at execution, not only at planning."""
    world = helpers.seed_small_world(moto_endpoint, ACCOUNT, protected=False)
    ec2 = helpers.account_client(moto_endpoint, ACCOUNT, "ec2")
    ec2.create_tags(Resources=list(world.volumes), Tags=[{"Key": "team", "Value": "data"}])
    _scan_and_approve(store, world, settings)
    moved, kept = world.volumes
    ec2.create_tags(Resources=[moved], Tags=[{"Key": "team", "Value": "web"}])

    policy = _policy_on_approval(includeTags={"team": "data"})
    report = helpers.run_cleanup(store, "team-a", [policy], settings, aws.CallRecorder())

    outcomes = {r.resource_id: r for r in report.results}
    assert outcomes[moved].outcome == "refused", outcomes[moved].message
    assert outcomes[moved].message.endswith("no longer has the policy's included tags team")
    assert outcomes[kept].outcome == "succeeded", outcomes[kept].message
    assert helpers.live_volumes(world) == {moved}
    deleted = [
        r.params.get("VolumeId") for r in sts.calls(account=ACCOUNT) if r.action == "DeleteVolume"
    ]
    assert deleted == [kept]
