"""SAFETY-TESTS "the process killed at any step of a cleanup, then restarted" when the world changed
in between: what is deleted must be approved AND still eligible at the rerun.

A child cleanup (``crash_worker``) is SIGKILLed right after its intent is committed (before the
re-check's first call), leaving one ``started`` attempt. Then one thing changes before the rerun
in this process: the policy becomes a dry run, the approval lapses, a protection tag is added in
AWS, or the rerun itself is a dry run. The rerun must record a refusal for the interrupted attempt
(or, for a dry-run rerun, leave it alone) and send no destructive call; moto is the oracle.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cloudsweep import aws, domain
from cloudsweep.settings import Settings
from cloudsweep.store import FindingFilter, Store

from . import helpers

ORG = "recovery-org"
ACCOUNT = "123456789012"


def kill_after_intent(
    document: dict[str, Any],
    *,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    tmp: Path,
    approve: bool = False,
) -> tuple[helpers.SmallWorld, str]:
    """One address, scanned (and approved if asked), then a child killed after its intent."""
    world = helpers.seed_small_world(
        moto_endpoint, ACCOUNT, volumes=0, addresses=1, protected=False
    )
    helpers.scan_world(store, ORG, world, settings)
    [target] = world.addresses
    if approve:
        org = store.organization(ORG)
        assert org is not None
        [item] = store.findings(FindingFilter(ORG))
        assert store.decide_items(
            org.id,
            [item.id],
            approve=True,
            approver_email=helpers.ACTOR,
            now=domain.utcnow(),
            expires_at=domain.utcnow() + timedelta(hours=1),
        )
    journal = tmp / "child.jsonl"
    child = helpers.spawn_worker(
        {
            "database_url": database_url,
            "endpoint": moto_endpoint,
            "org": ORG,
            "policies": [document],
            "resource_type": "elastic-ip",
            "step": "after-intent",
            "fault": "kill",
            "journal": str(journal),
        },
        tmp,
        "child",
    )
    code, output = helpers.finish_worker(child)
    assert code == -9, output
    assert helpers.sends(helpers.Journal.read(journal), "ReleaseAddress") == []
    [intent] = helpers.real_rows(database_url, ORG)
    assert intent["status"] == "started" and intent["resource_id"] == target
    return world, target


def rerun(
    store: Store, settings: Settings, document: dict[str, Any], **options: Any
) -> tuple[Any, aws.CallRecorder]:
    recorder = aws.CallRecorder()
    report = helpers.run_cleanup(store, ORG, [document], settings, recorder, **options)
    return report, recorder


def assert_refused_untouched(
    database_url: str, world: helpers.SmallWorld, target: str, recorder: aws.CallRecorder, why: str
) -> None:
    assert helpers.recorded_mutations(recorder, "ReleaseAddress") == []
    assert [c for c in recorder.mutating() if not c.params.get("DryRun")] == []
    assert target in helpers.live_addresses(world), "moto: the address must still be there"
    rows = helpers.real_rows(database_url, ORG)
    assert [r["status"] for r in rows] == ["refused"], rows
    assert why in rows[0]["error_message"]
    assert rows[0]["cleanup_status"] == "pending"


def test_policy_switched_to_dry_run_after_the_intent(
    moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Guard: ``policy.dry_run`` in ``_recover``. The policy became ``dryRun: true``."""
    world, target = kill_after_intent(
        helpers.address_policy(),
        moto_endpoint=moto_endpoint,
        database_url=database_url,
        store=store,
        settings=settings,
        tmp=tmp_path,
    )
    report, recorder = rerun(store, settings, helpers.address_policy(dryRun=True))
    assert report.interrupted_found == 1
    [recovered] = [r for r in report.results if r.action_id and r.outcome == "refused"]
    assert recovered.message == "interrupted; its policy is a dry run"
    assert_refused_untouched(database_url, world, target, recorder, "its policy is a dry run")


def test_approval_lapsed_after_the_intent(
    moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Guard: ``decision.kind.actionable`` in ``_recover``. The item needed an approval (it costs
    more than ``requireApprovalAbove`` 0.00); the child acted on it with one; by the rerun the
    approval has expired."""
    strict = helpers.address_policy(requireApprovalAbove="0.00")
    world, target = kill_after_intent(
        strict,
        moto_endpoint=moto_endpoint,
        database_url=database_url,
        store=store,
        settings=settings,
        tmp=tmp_path,
        approve=True,
    )
    later = domain.utcnow() + timedelta(hours=2)
    report, recorder = rerun(store, settings, strict, now=lambda: later)
    assert report.interrupted_found == 1
    assert_refused_untouched(database_url, world, target, recorder, "expired")


def test_policy_gone_from_the_run_after_the_intent(
    moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Guard: ``policy is None`` in ``_recover``. The policy that made the intent was deleted;
    the rerun runs another policy (for volumes): the interrupted attempt is refused."""
    world, target = kill_after_intent(
        helpers.address_policy(),
        moto_endpoint=moto_endpoint,
        database_url=database_url,
        store=store,
        settings=settings,
        tmp=tmp_path,
    )
    report, recorder = rerun(store, settings, helpers.volume_policy())
    assert report.interrupted_found == 1
    assert_refused_untouched(database_url, world, target, recorder, "its policy is not in this run")


def test_protection_tag_added_after_the_intent(
    moto_endpoint: str, database_url: str, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Guard: the re-check of the resumed attempt (``_carry_out``). Someone protected the address
    in AWS after the intent; the store's finding still says waste."""
    world, target = kill_after_intent(
        helpers.address_policy(),
        moto_endpoint=moto_endpoint,
        database_url=database_url,
        store=store,
        settings=settings,
        tmp=tmp_path,
    )
    ec2 = helpers.account_client(moto_endpoint, ACCOUNT, "ec2")
    ec2.create_tags(Resources=[target], Tags=[{"Key": helpers.PROTECT_TAG, "Value": "true"}])
    report, recorder = rerun(store, settings, helpers.address_policy())
    assert report.interrupted_found == 1
    assert_refused_untouched(database_url, world, target, recorder, "protected")


@pytest.mark.parametrize("policy_dry_run", [False, True])
def test_a_dry_run_rerun_leaves_the_interrupted_attempt_alone(
    policy_dry_run: bool,
    moto_endpoint: str,
    database_url: str,
    store: Store,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Guard: ``if not dry_run`` around the recovery in ``run_cleanup``. A dry-run rerun neither
    acts on nor closes the interrupted attempt: the next real run reconciles it."""
    world, target = kill_after_intent(
        helpers.address_policy(),
        moto_endpoint=moto_endpoint,
        database_url=database_url,
        store=store,
        settings=settings,
        tmp=tmp_path,
    )
    report, recorder = rerun(
        store, settings, helpers.address_policy(dryRun=policy_dry_run), dry_run=True
    )
    assert report.interrupted_found == 1
    assert [c for c in recorder.mutating() if not c.params.get("DryRun")] == []
    assert target in helpers.live_addresses(world)
    assert [r["status"] for r in helpers.real_rows(database_url, ORG)] == ["started"]
