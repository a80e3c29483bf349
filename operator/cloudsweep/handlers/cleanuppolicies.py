"""CleanupPolicy: the policy model from the spec, and status.

Approvals are CleanupApproval objects (``cleanupapprovals``, docs/approvals.md). The old
``spec.approvals`` entries are still stamped by the mutating webhook (so existing objects stay
valid) but never honoured: their HMAC stamp could be had from the webhook by anyone who reached
it, and under GitOps they would name the controller as the approver; the operator reports them
with an ``ApprovalIgnored`` event. Policies run after each scan of an account in their namespace
(see ``scanschedules``); a timer keeps their status current.

RBAC cannot tell the fields of an object apart, so the validating admission webhook checks two
custom verbs with a SubjectAccessReview (``access``): ``approve`` to add, change or remove
entries of ``spec.approvals``, and ``configure`` to create a policy or change anything else in
its spec. Writes that leave spec alone (the operator's finalizer and annotations, labels) need
neither.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import kopf

from cloudsweep import cleaning, crds, policies
from cloudsweep.handlers import access, common, runtime
from cloudsweep.handlers.conditions import Condition
from cloudsweep.handlers.runtime import PolicyEntry
from cloudsweep.settings import get_settings

R = crds.CLEANUP_POLICY
KIND = R.kind
SIGNATURES_ANNOTATION = "cloudsweep.io/approval-signatures"
PENDING_SHOWN = 100
# Fields of spec that select accounts or carry approvals: the handler resolves them itself.
_NOT_POLICY = ("accounts", "accountSelector", "approvals", "suspend")
# The custom verbs the validating webhook checks, and the tenant roles that grant them.
APPROVE, CONFIGURE = "approve", "configure"
ROLES = {
    APPROVE: "the roles cloudsweep-member and cloudsweep-admin grant it",
    CONFIGURE: "the role cloudsweep-admin grants it",
}


def _entry_key(entry: Mapping[str, Any]) -> str:
    return f"{entry.get('accountId')}/{entry.get('region')}/{entry.get('resourceId')}"


def _request(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What an approval asks for (without who stamped it)."""
    return {
        k: entry.get(k)
        for k in ("accountId", "region", "resourceId", "maxMonthlyCost", "expiresAt")
    }


def sign(key: str, namespace: str, policy: str, entry: Mapping[str, Any]) -> str:
    message = json.dumps(
        {
            "namespace": namespace,
            "policy": policy,
            **_request(entry),
            "approvedBy": entry.get("approvedBy"),
            "approvedAt": entry.get("approvedAt"),
        },
        sort_keys=True,
    )
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


# ignore_failures (failurePolicy: Ignore): if the webhook cannot be reached, writes still go
# through, and their approvals carry no valid signature, so they are never honoured.
@kopf.on.mutate(
    R.group,
    R.version,
    R.plural,
    id="stamp-approvals",
    operations=["CREATE", "UPDATE"],
    ignore_failures=True,
)
def stamp_approvals(
    body: kopf.Body,
    old: Any,
    userinfo: Mapping[str, Any],
    namespace: str,
    name: str,
    patch: kopf.Patch,
    warnings: list[str],
    **_: Any,
) -> None:
    """Stamp new or changed approvals with the requesting user, and sign every approval.

    Unchanged entries keep who approved them and when, taken from the stored object, never from
    the request: a tenant cannot rewrite ``approvedBy`` by editing YAML.
    """
    key = runtime.get().settings.approval_signing_key
    entries = list(body.get("spec", {}).get("approvals") or [])
    if not entries:
        return
    if not key:
        warnings.append("approvals are disabled: the operator has no approval signing key")
        return
    old_entries = {
        _entry_key(e): e
        for e in ((old or {}).get("spec", {}).get("approvals") or [])
        if isinstance(e, Mapping)
    }
    user = str(userinfo.get("username") or "unknown")
    now = runtime.get().now().strftime("%Y-%m-%dT%H:%M:%SZ")
    stamped, signatures = [], {}
    for entry in entries:
        previous = old_entries.get(_entry_key(entry))
        if (
            previous is not None
            and _request(previous) == _request(entry)
            and previous.get("approvedBy")
        ):
            approved = {
                **entry,
                "approvedBy": previous.get("approvedBy"),
                "approvedAt": previous.get("approvedAt"),
            }
        else:
            approved = {**entry, "approvedBy": user, "approvedAt": now}
        stamped.append(approved)
        signatures[_entry_key(approved)] = sign(key, namespace, name, approved)
    patch.spec["approvals"] = stamped
    patch.metadata.annotations[SIGNATURES_ANNOTATION] = json.dumps(signatures, sort_keys=True)


def needed_verbs(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, str]:
    """Which custom verbs a write of a CleanupPolicy needs, each with what needs it (in words).

    ``configure``: creating a policy, or changing any field of spec but ``approvals``.
    ``approve``: adding, changing or removing entries of ``spec.approvals`` (compared as the
    mutating webhook left them, so an entry it re-stamped with this user counts as changed).
    Withdrawing an approval needs ``approve`` too, not ``configure``: whoever may approve may
    take an approval back, and nobody without either verb can touch approvals at all.
    """
    spec = new.get("spec") or {}
    old_spec = (old or {}).get("spec") or {}
    needed: dict[str, str] = {}
    if old is None:
        needed[CONFIGURE] = "creating a CleanupPolicy"
    else:
        fields = sorted(
            f"spec.{k}"
            for k in set(spec) | set(old_spec)
            if k != "approvals" and spec.get(k) != old_spec.get(k)
        )
        if fields:
            needed[CONFIGURE] = f"changing {', '.join(fields)}"
    changes = _approval_changes(spec.get("approvals"), old_spec.get("approvals"))
    if changes:
        needed[APPROVE] = f"changing spec.approvals ({changes})"
    return needed


def _approval_changes(new: Any, old: Any) -> str:
    """How ``spec.approvals`` changed, in words ("1 added, 2 removed"); empty if it did not."""

    def entries(value: Any) -> dict[str, list[str]]:
        keyed: dict[str, list[str]] = {}
        for entry in value if isinstance(value, list) else []:
            key = _entry_key(entry) if isinstance(entry, Mapping) else repr(entry)
            keyed.setdefault(key, []).append(json.dumps(entry, sort_keys=True, default=str))
        return {k: sorted(v) for k, v in keyed.items()}

    after, before = entries(new), entries(old)
    counts = {
        "added": len(after.keys() - before.keys()),
        "removed": len(before.keys() - after.keys()),
        "changed": sum(1 for k in after.keys() & before.keys() if after[k] != before[k]),
    }
    return ", ".join(f"{n} {what}" for what, n in counts.items() if n)


# Fail closed (ignore_failures=False: failurePolicy Fail): were the webhook unreachable or the
# SubjectAccessReview to fail, a tenant must not be able to change a policy unchecked, so the
# write is refused. persistent: kopf leaves this webhook in the ValidatingWebhookConfiguration
# when the operator stops, so a restart is no window to slip an edit through either; edits of
# CleanupPolicies (not their deletion) wait until the operator is back.
@kopf.on.validate(
    R.group,
    R.version,
    R.plural,
    id="authorize-changes",
    operations=["CREATE", "UPDATE"],
    persistent=True,
    ignore_failures=False,
)
def authorize_changes(
    body: kopf.Body,
    old: Any,
    userinfo: Mapping[str, Any],
    namespace: str,
    name: str,
    **_: Any,
) -> None:
    """Refuse (403) a write of a policy's spec the user has no ``configure``/``approve`` for."""
    needed = needed_verbs(body, old)
    if not needed:
        return
    if not namespace:
        raise kopf.AdmissionError("a CleanupPolicy without a namespace cannot be checked", code=400)
    user = str(userinfo.get("username") or "an unknown user")
    missing = []
    for verb, what in needed.items():
        try:
            answer = access.review(
                userinfo,
                verb=verb,
                group=R.group,
                resource=R.plural,
                namespace=namespace,
                name=name or None,
            )
        except access.AccessReviewError as error:
            raise kopf.AdmissionError(
                f"CloudSweep could not check whether {user} may {verb} CleanupPolicies in "
                f"namespace {namespace} (its SubjectAccessReview failed: {error}); the change is "
                "refused, try again shortly",
                code=503,
            ) from None
        if not answer.allowed:
            missing.append(
                f"{what} needs verb {verb!r} on {R.plural}.{R.group} in namespace {namespace} "
                f"({ROLES[verb]})"
            )
    if missing:
        raise kopf.AdmissionError(
            f"{user} may not make this change to CleanupPolicy {namespace}/{name or '(new)'}: "
            + "; ".join(missing),
            code=403,
        )


def _policy(
    obj: Mapping[str, Any], name: str, namespace: str, aws_accounts: Any
) -> tuple[policies.CleanupPolicy, bool]:
    """The engine's policy from the object; accounts are resolved within the namespace only."""
    spec = obj["spec"]
    document = {k: v for k, v in spec.items() if k not in _NOT_POLICY}
    document["name"] = name
    selected = True
    if spec.get("accounts") or spec.get("accountSelector") is not None:
        objects = common.same_namespace_names(aws_accounts, namespace)
        names = common.select(objects, spec.get("accounts"), spec.get("accountSelector"))
        ids = [
            objects[n].get("accountId")
            for n in names
            if isinstance(objects[n].get("accountId"), str)
        ]
        document["accounts"] = ids
        selected = bool(ids)
    return policies.parse_policy(document, source=f"CleanupPolicy {namespace}/{name}"), selected


@kopf.on.resume(R.group, R.version, R.plural, id="register")
@kopf.on.create(R.group, R.version, R.plural, id="register")
@kopf.on.update(R.group, R.version, R.plural, id="register")
def register(
    body: kopf.Body,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    aws_accounts: Any,
    namespace_uids: Any,
    **_: Any,
) -> None:
    rt = runtime.get()
    try:
        obj = common.validated(KIND, body)
        policy, selected = _policy(obj, name, namespace, aws_accounts)
    except (common.InvalidSpec, policies.PolicyError) as error:
        with rt.lock:
            rt.policies.pop((namespace, name), None)
        common.refuse(patch, body, error)
        raise kopf.PermanentError(str(error)) from None
    org = common.organization(namespace, namespace_uids)
    suspended = bool(obj["spec"].get("suspend")) or not selected
    with rt.lock:
        rt.policies[(namespace, name)] = PolicyEntry(policy=policy, suspended=suspended)
    rt.store.save_policy(org.id, policy.to_document(), active=not suspended)
    _apply_approvals(body, patch, namespace, name, org.id)
    _evaluate(body, patch, namespace, name, policy, selected, obj["spec"].get("suspend", False))


def _apply_approvals(
    body: kopf.Body, patch: kopf.Patch, namespace: str, name: str, org_id: Any
) -> None:
    """Entries of ``spec.approvals`` are never honoured (docs/approvals.md): their stamp could
    be had from the webhook by anyone who reached it, and under GitOps they would record the
    GitOps controller as the approver. Approvals are CleanupApproval objects; say so."""
    entries = [e for e in body.get("spec", {}).get("approvals") or [] if isinstance(e, Mapping)]
    if entries:
        kopf.warn(
            body,
            reason="ApprovalIgnored",
            message=(
                f"{len(entries)} entries of spec.approvals are ignored: approvals are "
                "CleanupApproval objects now, created with kubectl under your own credentials; "
                "see docs/approvals.md"
            ),
        )


@kopf.timer(
    R.group,
    R.version,
    R.plural,
    id="evaluate",
    interval=get_settings().status_refresh_seconds,
    initial_delay=get_settings().status_refresh_seconds,
)
@common.writes_only_changes(heartbeat="lastEvaluationTime")
def evaluate(
    body: kopf.Body,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    aws_accounts: Any,
    **_: Any,
) -> None:
    """Keep status current: what the policy matches, awaits approval for, has done and saved."""
    rt = runtime.get()
    try:
        obj = common.validated(KIND, body)
        policy, selected = _policy(obj, name, namespace, aws_accounts)
    except (common.InvalidSpec, policies.PolicyError) as error:
        common.refuse_again(patch, body, error)  # register() reported it, unless that was lost
        return
    suspended = bool(obj["spec"].get("suspend"))
    with rt.lock:
        rt.policies[(namespace, name)] = PolicyEntry(
            policy=policy, suspended=suspended or not selected
        )
    _evaluate(body, patch, namespace, name, policy, selected, suspended)


def _evaluate(
    body: kopf.Body,
    patch: kopf.Patch,
    namespace: str,
    name: str,
    policy: policies.CleanupPolicy,
    selected: bool,
    suspended: bool,
) -> None:
    rt = runtime.get()
    org = rt.store.organization(namespace)
    patch.status["lastEvaluationTime"] = rt.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    if org is None:
        common.set_conditions(
            patch, body, [Condition("Ready", True, "Evaluated", "no findings yet")]
        )
        return
    if not selected:
        message = "no AwsAccount in this namespace matches the policy's accounts or selector"
        common.set_conditions(
            patch, body, [Condition("Ready", False, "NoAccountsSelected", message)]
        )
        return
    plan = cleaning.plan_cleanup(
        rt.store, org.id, [policy], mode=policies.RunMode.AUTOMATED, now=rt.now()
    )
    counts = plan.counts()
    waiting = [d for d in plan.decisions if d.kind is policies.DecisionKind.NEEDS_APPROVAL]
    stats = rt.store.policy_stats(org.id, name)
    patch.status["matched"] = sum(
        1 for d in plan.decisions if d.kind is not policies.DecisionKind.SKIP or d.deferred
    )
    patch.status["planned"] = len(plan.actionable)
    patch.status["awaitingApproval"] = counts[policies.DecisionKind.NEEDS_APPROVAL.value]
    patch.status["executed"] = stats.executed
    patch.status["failed"] = stats.failed
    patch.status["savingsMonthly"] = f"{stats.savings_monthly:.2f}"
    patch.status["pendingApprovals"] = [
        {
            "accountId": d.candidate.account_id,
            "region": d.candidate.region,
            "resourceId": d.candidate.resource_id,
            "maxMonthlyCost": f"{d.candidate.monthly_cost:.2f}",
            "reason": d.reason[:256],
        }
        for d in waiting[:PENDING_SHOWN]
    ]
    failure = rt.policy_failure(namespace, name)
    if suspended:
        reason, ready, message = "Suspended", True, "the policy is suspended"
    elif failure is not None:
        reason, ready, message = (
            "EvaluationFailed",
            False,
            f"the last cleanup run of this policy failed ({failure}); the namespace's other "
            "policies ran without it",
        )
    elif stats.failing:
        # Until a later attempt succeeds: one failure must not mark the policy failed forever.
        reason, ready, message = (
            "CleanupFailed",
            False,
            f"the latest cleanup attempt failed ({stats.failed} failed in all); "
            "see `cloudsweep actions`",
        )
    elif waiting:
        reason, ready, message = (
            "AwaitingApproval",
            True,
            f"{len(waiting)} items wait for an approval",
        )
    else:
        reason, ready, message = (
            "Evaluated",
            True,
            f"{len(plan.actionable)} items may be acted on in the next run",
        )
    common.set_conditions(patch, body, [Condition("Ready", ready, reason, message)])


@kopf.on.delete(R.group, R.version, R.plural, id="retire", optional=True)
def retire(body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    rt = runtime.get()
    with rt.lock:
        entry = rt.policies.pop((namespace, name), None)
    org = rt.store.organization(namespace)
    if entry is not None and org is not None:
        rt.store.save_policy(org.id, entry.policy.to_document(), active=False)
