"""When the operator honours a CleanupApproval: only when the webhook's record of it matches the
object as stored (``cleanupapprovals.problem``), checked here case by case without an operator.

The record is what the validating webhook wrote when the API server created the object: the
object's namespace, name and spec, the policy's spec, and when it was admitted. The API server
calls the webhook after it set ``creationTimestamp`` (whole seconds) and within its 10 s
timeout, so a record made more than 30 s (plus 5 s for the clocks) after the creation, or before
it, is not the API server's call for this object (docs/approvals.md).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloudsweep import policies
from cloudsweep.handlers import cleanupapprovals
from cloudsweep.store import AdmissionRecord

CREATED = datetime(2026, 12, 4, 20, 0, 0, tzinfo=UTC)
POLICY = policies.parse_policy(
    {"name": "idle-ips", "resourceType": "elastic-ip", "action": "release", "dryRun": False}
)

# The reasons a person reads in the approval's Ready condition (and its Warning event).
NOT_WHEN_CREATED = (
    "the admission record was not made when the object was created (a direct call to the "
    "webhook, not the API server's); delete it and create it again"
)


def approval(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "team-a",
            "name": "release-ip",
            "uid": "uid-1",
            "creationTimestamp": CREATED.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": {
            "policy": "idle-ips",
            "accountId": "123456789012",
            "region": "us-east-1",
            "resourceId": "eipalloc-1",
            "maxMonthlyCost": "10.00",
            **spec,
        },
    }


def record(
    body: dict[str, Any], admitted_after: timedelta = timedelta(seconds=2)
) -> AdmissionRecord:
    """What the webhook records for ``body`` when the API server calls it."""
    return AdmissionRecord(
        object_uid=body["metadata"]["uid"],
        namespace=body["metadata"]["namespace"],
        name=body["metadata"]["name"],
        spec_hash=cleanupapprovals.spec_hash(body),
        policy_name="idle-ips",
        policy_hash=policies.spec_hash(POLICY),
        username="maria@example.com",
        groups=("payments-leads",),
        object_created_at=CREATED,
        admitted_at=CREATED + admitted_after,
    )


def test_an_object_admitted_as_stored_is_honoured() -> None:
    body = approval()
    assert cleanupapprovals.problem(body, record(body), POLICY) is None
    # The CRD's defaults are part of what was admitted: spelling one out changes nothing.
    assert cleanupapprovals.problem(approval(decision="Approve"), record(body), POLICY) is None
    # Nor does the order of the spec's fields (the API server's JSON need not keep the order the
    # webhook saw).
    reordered = {**body, "spec": dict(reversed(list(body["spec"].items())))}
    assert list(reordered["spec"]) != list(body["spec"])
    assert cleanupapprovals.problem(reordered, record(body), POLICY) is None


@pytest.mark.parametrize(
    ("seconds", "honoured"),
    [(-5, True), (-6, False), (35, True), (36, False), (-3600, False), (600, False)],
)
def test_only_a_record_made_when_the_object_was_created_counts(
    seconds: int, honoured: bool
) -> None:
    """From 5 s before the creation time to 35 s after it: a record made outside that window is
    a direct call to the webhook (before the object existed, or later with its UID)."""
    body = approval()
    why = cleanupapprovals.problem(body, record(body, timedelta(seconds=seconds)), POLICY)
    if honoured:
        assert why is None
    else:
        assert why == NOT_WHEN_CREATED


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"name": "another"}, "the admission record is for another object"),
        ({"namespace": "team-b"}, "the admission record is for another object"),
        ({"creationTimestamp": None}, NOT_WHEN_CREATED),
        ({"creationTimestamp": "yesterday"}, NOT_WHEN_CREATED),
        ({"creationTimestamp": "2026-12-04T20:00:00"}, NOT_WHEN_CREATED),
    ],
)
def test_a_record_of_another_object_or_time_is_not_honoured(
    change: dict[str, Any], why: str
) -> None:
    admitted = approval()
    stored = approval()
    stored["metadata"].update(change)
    assert cleanupapprovals.problem(stored, record(admitted), POLICY) == why


@pytest.mark.parametrize(
    "spec",
    [
        {"maxMonthlyCost": "999.00"},
        {"resourceId": "eipalloc-2"},
        {"accountId": "210987654321"},
        {"decision": "Reject"},
        {"expiresAt": "2027-01-01T00:00:00Z"},
    ],
)
def test_a_spec_other_than_the_admitted_one_is_not_honoured(spec: dict[str, Any]) -> None:
    problem = cleanupapprovals.problem(approval(**spec), record(approval()), POLICY)
    assert problem == "the spec differs from what the API server admitted"


def test_no_record_or_no_policy_or_a_changed_policy_is_not_honoured() -> None:
    body = approval()
    assert cleanupapprovals.problem(body, None, POLICY) == (
        "CloudSweep's admission webhook has no record of this object: it was written while the "
        "webhook was down or bypassed; delete it and create it again"
    )
    gone = cleanupapprovals.problem(body, record(body), None)
    assert gone == "there is no valid CleanupPolicy 'idle-ips' in this namespace"
    wider = POLICY.model_copy(update={"dry_run": True})
    assert cleanupapprovals.problem(body, record(body), wider) == (
        "CleanupPolicy idle-ips changed since this approval was given: review the policy and "
        "approve again"
    )
    # Under another policy's name the record binds that policy's spec, not this one's.
    other = replace(record(body), policy_hash=policies.spec_hash(wider))
    assert cleanupapprovals.problem(body, other, POLICY) is not None
