"""CleanupApproval: a person's approval (or rejection) of one finding, as its own object.

Why its own object, and the threat model: ``docs/approvals.md``. In short: who may approve is
Kubernetes RBAC on ``create cleanupapprovals`` (the API server enforces it; the tenant roles
grant it), so GitOps can own the CleanupPolicies while people own the approvals. Who *did*
approve is what the API server tells the validating webhook (``record_admission``): the webhook
writes it to PostgreSQL keyed by the object's UID, which the API server assigns before validating
admission and nobody can know earlier. The operator honours an object only if that record
matches it (``problem``); one written past the webhook, or with a record made by a direct call
to the webhook after the fact, is ignored with an ``ApprovalIgnored`` Event.

Registered when ``cloudsweep.handlers`` is imported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import kopf

from cloudsweep import crds, domain, policies
from cloudsweep.handlers import common, runtime
from cloudsweep.handlers.conditions import Condition
from cloudsweep.settings import get_settings
from cloudsweep.store import AdmissionRecord, FindingFilter

R = crds.CLEANUP_APPROVAL
KIND = R.kind
APPROVE, REJECT = "Approve", "Reject"
# The API server sets metadata.creationTimestamp, then calls the validating webhook (at most
# its timeoutSeconds, 10 s, later), then stores the object. A record received outside this
# window around the creation time is not the API server's call for this object.
ADMISSION_WINDOW = timedelta(seconds=30)
# creationTimestamp has whole seconds, and the two clocks may differ a little.
CLOCK_SKEW = timedelta(seconds=5)


def spec_hash(body: Mapping[str, Any]) -> str:
    """The approval's spec with the CRD's defaults, as a digest (what the record binds)."""
    spec = crds.apply_defaults(KIND, {"spec": dict(body.get("spec") or {})}).get("spec") or {}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _policy_entry(namespace: str, name: str) -> runtime.PolicyEntry | None:
    rt = runtime.get()
    with rt.lock:
        return rt.policies.get((namespace, name))


# failurePolicy Fail (ignore_failures=False): an approval the webhook did not see is never
# honoured, so refusing the write while the operator is down loses nothing and tells the person
# at once. persistent: the configuration stays while the operator restarts. side_effects: the
# record is written to PostgreSQL, except for dry-run requests.
@kopf.on.validate(
    R.group,
    R.version,
    R.plural,
    id="record-approval",
    operations=["CREATE"],
    persistent=True,
    ignore_failures=False,
    side_effects=True,
)
def record_admission(
    body: kopf.Body,
    userinfo: Mapping[str, Any],
    namespace: str,
    name: str,
    dryrun: bool,
    **_: Any,
) -> None:
    """Record who creates a CleanupApproval, and what the API server admitted, once per UID."""
    rt = runtime.get()
    uid = str(body.get("metadata", {}).get("uid") or "")
    if not uid or not namespace or not name:
        raise kopf.AdmissionError(
            "a CleanupApproval reaches this webhook from the API server with its namespace, name "
            "and uid set; this request has not all of them",
            code=400,
        )
    try:
        obj = common.validated(KIND, body)
    except common.InvalidSpec as error:
        raise kopf.AdmissionError(
            f"CleanupApproval {namespace}/{name}: {error}", code=422
        ) from None
    policy_name = str(obj["spec"]["policy"])
    entry = _policy_entry(namespace, policy_name)
    if entry is None:
        raise kopf.AdmissionError(
            f"there is no valid CleanupPolicy {policy_name!r} in namespace {namespace} (or the "
            "operator has not read it yet: try again shortly)",
            code=404,
        )
    username = str(userinfo.get("username") or "")
    if not username:
        raise kopf.AdmissionError("the request has no authenticated user to record", code=400)
    if dryrun:
        return
    record = AdmissionRecord(
        object_uid=uid,
        namespace=namespace,
        name=name,
        spec_hash=spec_hash(obj),
        policy_name=policy_name,
        policy_hash=policies.spec_hash(entry.policy),
        username=username,
        groups=tuple(str(g) for g in userinfo.get("groups") or ()),
        object_created_at=_timestamp(body.get("metadata", {}).get("creationTimestamp")),
        admitted_at=rt.now(),
    )
    try:
        kept = rt.store.record_admission(record)
        existing = None if kept else rt.store.admission(uid)
    except Exception as error:  # fail closed: no record, no approval
        raise kopf.AdmissionError(
            f"CloudSweep could not record the approval ({type(error).__name__}); try again shortly",
            code=503,
        ) from None
    if existing is not None and (existing.spec_hash, existing.username) != (
        record.spec_hash,
        record.username,
    ):
        # The API server's own call came first; this one says something else about the object.
        raise kopf.AdmissionError(
            f"CleanupApproval {namespace}/{name} was admitted already", code=409
        )


def problem(
    body: Mapping[str, Any], record: AdmissionRecord | None, policy: policies.CleanupPolicy | None
) -> str | None:
    """Why the object must not be honoured (None: it matches what the API server admitted)."""
    meta = body.get("metadata", {})
    if record is None:
        return (
            "CloudSweep's admission webhook has no record of this object: it was written while "
            "the webhook was down or bypassed; delete it and create it again"
        )
    if (record.namespace, record.name) != (meta.get("namespace"), meta.get("name")):
        return "the admission record is for another object"
    if record.spec_hash != spec_hash(body):
        return "the spec differs from what the API server admitted"
    created = _timestamp(meta.get("creationTimestamp"))
    if created is None or not (
        created - CLOCK_SKEW <= record.admitted_at <= created + ADMISSION_WINDOW + CLOCK_SKEW
    ):
        return (
            "the admission record was not made when the object was created (a direct call to "
            "the webhook, not the API server's); delete it and create it again"
        )
    if policy is None:
        return f"there is no valid CleanupPolicy {record.policy_name!r} in this namespace"
    if policies.spec_hash(policy) != record.policy_hash:
        return (
            f"CleanupPolicy {record.policy_name} changed since this approval was given: "
            "review the policy and approve again"
        )
    return None


@kopf.on.resume(R.group, R.version, R.plural, id="honour")
@kopf.on.create(R.group, R.version, R.plural, id="honour")
@kopf.timer(
    R.group,
    R.version,
    R.plural,
    id="honour-timer",
    interval=get_settings().status_refresh_seconds,
    initial_delay=get_settings().status_refresh_seconds,
)
@common.writes_only_changes()
def honour(body: kopf.Body, namespace: str, name: str, patch: kopf.Patch, **_: Any) -> None:
    """Record the decision on its finding if the object is what the API server admitted.

    Run again on every tick: a finding scanned after the approval was created gets it then,
    and an approval whose policy changed stops counting. Applying the same approval twice
    changes nothing (``decide_items`` keeps its first deadline).
    """
    rt = runtime.get()
    uid = str(body.get("metadata", {}).get("uid") or "")
    try:
        obj = common.validated(KIND, body)
    except common.InvalidSpec as error:
        common.refuse_again(patch, body, error)
        return
    record = rt.store.admission(uid) if uid else None
    entry = _policy_entry(namespace, str(obj["spec"]["policy"]))
    why = problem(obj, record, entry.policy if entry is not None else None)
    if why is not None or record is None or entry is None:
        _ignored(body, patch, why or "not admitted")
        return
    policy = entry.policy
    expires = _timestamp(obj["spec"].get("expiresAt"))
    org = rt.store.organization(namespace)
    items = _items(namespace, obj["spec"]) if org is not None else []
    if org is not None and items:
        rt.store.decide_items(
            org.id,
            items,
            approve=obj["spec"].get("decision", APPROVE) == APPROVE,
            approver_email=record.username,
            now=rt.now(),
            decided_at=record.admitted_at,
            ttl=timedelta(days=policy.approval_ttl_days),
            approved_cost=Decimal(str(obj["spec"]["maxMonthlyCost"])),
            expires_at=expires,
            policy_name=policy.name,
            policy_hash=record.policy_hash,
        )
    deadline = record.admitted_at + timedelta(
        days=min(policy.approval_ttl_days, domain.MAX_APPROVAL_DAYS)
    )
    patch.status["approvedBy"] = record.username
    patch.status["approvedAt"] = _stamp(record.admitted_at)
    patch.status["expiresAt"] = _stamp(min(expires, deadline) if expires else deadline)
    patch.status["findings"] = len(items)
    if not items:
        ready = Condition(
            "Ready",
            False,
            "FindingNotFound",
            "no open finding matches accountId, region and "
            "resourceId yet; it is recorded as soon as a scan finds it",
        )
    else:
        verb = "approval" if obj["spec"].get("decision", APPROVE) == APPROVE else "rejection"
        ready = Condition(
            "Ready", True, "Recorded", f"the {verb} by {record.username} is recorded on the finding"
        )
    common.set_conditions(patch, body, [ready])


def _items(namespace: str, spec: Mapping[str, Any]) -> list[Any]:
    rt = runtime.get()
    found = rt.store.findings(
        FindingFilter(namespace, account_id=str(spec["accountId"]), region=str(spec["region"]))
    )
    return [item.id for item in found if item.resource_id == spec["resourceId"]]


def _ignored(body: Mapping[str, Any], patch: kopf.Patch, why: str) -> None:
    """A Warning Event once (not every tick), and the reason in the Ready condition."""
    current: Mapping[str, Any] = next(
        (c for c in body.get("status", {}).get("conditions") or [] if c.get("type") == "Ready"),
        {},
    )
    if (current.get("reason"), current.get("message")) != ("ApprovalIgnored", why):
        kopf.warn(body, reason="ApprovalIgnored", message=why[:1000])
    common.set_conditions(patch, body, [Condition("Ready", False, "ApprovalIgnored", why)])


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.delete(R.group, R.version, R.plural, id="withdraw")
def withdraw(body: kopf.Body, namespace: str, **_: Any) -> None:
    """Deleting the object withdraws its approval from the finding (if it is still the one
    recorded there): an approval ends when the object that carried it ends."""
    rt = runtime.get()
    uid = str(body.get("metadata", {}).get("uid") or "")
    record = rt.store.admission(uid) if uid else None
    org = rt.store.organization(namespace)
    if record is None or org is None:
        return
    items = _items(namespace, body.get("spec") or {})
    if items:
        rt.store.withdraw_approval(
            org.id, items, approved_at=record.admitted_at, approver=record.username, now=rt.now()
        )
