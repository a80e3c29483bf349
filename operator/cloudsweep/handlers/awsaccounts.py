"""AwsAccount: register the account for the namespace's organization, verify the connection.

Following AWS's confused-deputy guidance, CloudSweep generates each account's ExternalId itself,
keeps it in its database (nothing a tenant can edit), and publishes it in ``status.externalId`` for
the customer's role trust policy. Connection problems are conditions and Events, re-checked on a
timer, never a crash loop.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any

import kopf

from cloudsweep import aws, crds, detectors, domain
from cloudsweep.handlers import common, runtime
from cloudsweep.handlers.conditions import Condition
from cloudsweep.settings import get_settings
from cloudsweep.store import AccountClaimed, AccountRecord, ScanRecord

R = crds.AWS_ACCOUNT
KIND = R.kind


def new_external_id() -> str:
    return "cs-" + secrets.token_hex(16)


@kopf.index(R.group, R.version, R.plural)
def aws_accounts(
    name: str, namespace: str, spec: Mapping[str, Any], labels: Mapping[str, str], **_: Any
) -> Any:
    """(namespace, name) -> what schedules and policies need to select accounts by name or label."""
    return {(namespace, name): {"accountId": spec.get("accountId"), "labels": dict(labels)}}


@kopf.on.resume(R.group, R.version, R.plural, id="reconcile")
@kopf.on.create(R.group, R.version, R.plural, id="reconcile")
@kopf.on.update(R.group, R.version, R.plural, id="reconcile", field="spec")
def reconcile(
    body: kopf.Body,
    old: Any,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    namespace_uids: Any,
    logger: Any,
    memo: Any,
    reason: Any = None,
    **_: Any,
) -> None:
    """Register the account and verify it; a bad spec gets a permanent InvalidSpec condition.

    On resume (the operator restarted), an account whose status already says it is connected,
    for this generation, is not verified again: the ``recheck`` timer does that within
    ``account_recheck_seconds``. A restart of an operator with 1,000 accounts so makes no AWS call
    instead of 3,000 (AssumeRole, GetCallerIdentity and the ExternalId probe each).
    """
    resumed = str(reason) == "resume"
    try:
        _reconcile(body, old, namespace, name, patch, namespace_uids, logger, resumed=resumed)
    finally:
        # kopf writes the handler's bookkeeping (metadata) before its status: when the API server
        # refuses the status, the handler counts as done and is not called again, so
        # publish_totals writes the status remembered here until it lands. The resourceVersion
        # the handler saw tells "not landed yet" (kopf applies the patch after this returns, and
        # the object as the timers see it changes only when its watch event arrives) from "lost".
        generation = body.get("metadata", {}).get("generation")
        status = patch.get("status")
        if memo is not None and isinstance(generation, int) and status:
            memo[_RECONCILED] = Reconciled(
                generation=generation,
                status=copy.deepcopy(dict(status)),
                resource_version=body.get("metadata", {}).get("resourceVersion"),
                at=time.monotonic(),
            )


_RECONCILED = "cloudsweep.io/reconciled-status"  # the object's memo: a Reconciled
# kopf patches the object's metadata, then its status subresource: between the two watch events
# the object has a new resourceVersion and not yet the new status. Rewritten only after this, or
# two refresh intervals if longer: a busy operator processes the status's watch event long after
# the metadata's (19 s seen with 300 new accounts at a load of 18 on 2 cores, which rewrote 51
# statuses that were on their way).
STATUS_LANDING_SECONDS = 5.0
STATUS_LANDING_INTERVALS = 2


@dataclasses.dataclass(frozen=True)
class Reconciled:
    """The status a reconcile wrote, and the object as the reconcile saw it."""

    generation: int
    status: dict[str, Any]
    resource_version: str | None
    at: float  # time.monotonic() when the reconcile returned


def _restore_status(
    memo: Any, body: kopf.Body, patch: kopf.Patch, logger: Any, refresh_seconds: float
) -> None:
    """The status the last reconcile wrote, again, if it has not reached the object."""
    remembered = memo.get(_RECONCILED) if memo is not None else None
    generation = body.get("metadata", {}).get("generation")
    if not isinstance(remembered, Reconciled) or remembered.generation != generation:
        return
    if body.get("status", {}).get("observedGeneration") == generation:
        memo.pop(_RECONCILED, None)  # it landed
        return
    age = time.monotonic() - remembered.at
    unseen = body.get("metadata", {}).get("resourceVersion") == remembered.resource_version
    # The object as this process sees it lags the API server (its watch events queue behind
    # others: 17 s seen with 100 new accounts, over 5 minutes with 1,000 on an overloaded
    # machine), so an absent status is lost only once kopf's patch has visibly landed (a new
    # resourceVersion) two refresh intervals ago, or after ten refresh intervals whatever the
    # resourceVersion says (an API server that does not change it on a refused patch: KMock).
    patience = 10 * refresh_seconds
    landing = max(STATUS_LANDING_SECONDS, STATUS_LANDING_INTERVALS * refresh_seconds)
    if (unseen or age < landing) and age < patience:
        return
    logger.warning(f"the status of generation {generation} did not reach the object: rewriting it")
    patch.status.update(copy.deepcopy(remembered.status))
    # The rewrite is a patch on its way too: waited for like the reconcile's (from the object as
    # seen now), so a view of the object minutes behind does not rewrite it at every tick
    # (2,746 rewrites for 1,000 AwsAccounts at a load of 38 on 2 cores).
    memo[_RECONCILED] = dataclasses.replace(
        remembered,
        resource_version=body.get("metadata", {}).get("resourceVersion"),
        at=time.monotonic(),
    )


def _reconcile(
    body: kopf.Body,
    old: Any,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    namespace_uids: Any,
    logger: Any,
    *,
    resumed: bool = False,
) -> None:
    try:
        obj = common.validated(KIND, body, old=old if isinstance(old, Mapping) else None)
    except common.InvalidSpec as error:
        common.refuse(
            patch, body, error, also=[Condition("Connected", None, "InvalidSpec", "not checked")]
        )
        raise
    spec = obj["spec"]
    org = common.organization(namespace, namespace_uids)
    account = _register(body, patch, org.id, spec, name, logger)
    if account is None:
        return
    if resumed and _connected_before(body, account):
        logger.info(
            f"account {account.account_id} was connected before the restart: "
            "the recheck timer verifies it again"
        )
    else:
        _verify(body, patch, account)
    _publish_last_scan(patch, account)
    logger.info(f"account {account.account_id} registered for organization {namespace}")


def _connected_before(body: kopf.Body, account: AccountRecord) -> bool:
    """The object's status and the database both say the account is connected, for the object's
    current generation and with the ExternalId the database holds."""
    generation = body.get("metadata", {}).get("generation")
    status = body.get("status") or {}
    if status.get("observedGeneration") != generation or not isinstance(generation, int):
        return False
    if status.get("externalId") != account.external_id:
        return False
    if account.connection_status != domain.ConnectionStatus.CONNECTED.value:
        return False
    current = {c.get("type"): c for c in status.get("conditions") or []}
    wanted = ["Connected"]
    if not runtime.get().settings.allow_shared_accounts:
        wanted.append("ExternalIdEnforced")  # sharing was allowed before the restart, not now
    return all(
        (current.get(kind) or {}).get("status") == "True"
        and (current.get(kind) or {}).get("observedGeneration") == generation
        for kind in wanted
    )


def _register(
    body: kopf.Body,
    patch: kopf.Patch,
    organization_id: Any,
    spec: Mapping[str, Any],
    name: str,
    logger: Any,
) -> AccountRecord | None:
    """Register the account for the organization, or refuse it (None) when another organization
    holds it: no AWS call is made for a refused account, and the holder's data is not touched."""
    rt = runtime.get()
    existing = rt.store.account(organization_id, spec["accountId"])
    external_id = existing.external_id if existing and existing.external_id else new_external_id()
    try:
        account = rt.store.register_account(
            organization_id,
            account_id=spec["accountId"],
            role_arn=spec["roleArn"],
            external_id=external_id,
            regions=spec.get("regions") or ["us-east-1", "us-west-2"],
            account_name=spec.get("displayName") or name,
            scan_enabled=spec.get("scanEnabled", True),
            auto_cleanup_enabled=spec.get("autoCleanupEnabled", False),
            allow_shared=rt.settings.allow_shared_accounts,
        )
    except AccountClaimed as error:
        if existing is not None and not existing.deleted:
            # Registered before claims existed (or while sharing was allowed): stop using it.
            rt.store.mark_account_deleted(existing.id, rt.now())
        logger.warning(
            f"account {spec['accountId']} refused: organization {error.holder_id} holds it"
        )
        reason = "AccountClaimedByAnotherOrganization"
        common.set_conditions(
            patch,
            body,
            [
                Condition("Connected", False, reason, str(error)),
                Condition("Ready", False, reason, "the account is not registered; see Connected"),
            ],
        )
        patch.status["externalId"] = None
        if _changed(body, "Connected", "False", reason):
            kopf.warn(body, reason=reason, message=str(error)[:1000])
        return None
    except domain.InvalidInput as error:
        common.refuse(patch, body, error)
        raise kopf.PermanentError(str(error)) from None
    patch.status["externalId"] = account.external_id
    return account


@kopf.timer(
    R.group,
    R.version,
    R.plural,
    id="publish-totals",
    interval=get_settings().status_refresh_seconds,
    initial_delay=get_settings().status_refresh_seconds,
)
async def publish_totals(
    body: kopf.Body, namespace: str, patch: kopf.Patch, memo: Any, logger: Any, **_: Any
) -> None:
    """The latest scan's totals into status (scans run on the pool, outside any handler); the
    last reconcile's status if it was lost.

    On kopf's event loop, not its thread pool: it runs every refresh interval for every
    AwsAccount and almost always answers from memory; the hop to a thread cost more than the
    work (issue 16). What needs the database (an account's id once, the latest scans once per
    interval for all accounts) goes to a thread.
    """
    _restore_status(memo, body, patch, logger, runtime.get().settings.status_refresh_seconds)
    account_uuid = _remembered_account_uuid(memo, namespace, body)
    if account_uuid is None:
        account_uuid = await asyncio.to_thread(_account_uuid, memo, namespace, body)
    if account_uuid is not None:
        latest = runtime.get().latest_scans
        fresh, scan = latest.cached(account_uuid)
        if not fresh:
            scan = await asyncio.to_thread(latest.get, account_uuid)
        _publish_scan(patch, scan)
    common.drop_unchanged_status(patch, body)


_ACCOUNT_UUID = "cloudsweep.io/account-uuid"  # the object's memo: (namespace, accountId, db id)


def _remembered_account_uuid(memo: Any, namespace: str, body: kopf.Body) -> uuid.UUID | None:
    account_id = body.get("spec", {}).get("accountId")
    remembered = memo.get(_ACCOUNT_UUID) if memo is not None else None
    if remembered is not None and remembered[:2] == (namespace, account_id):
        return remembered[2]  # type: ignore[no-any-return]
    return None


def _account_uuid(memo: Any, namespace: str, body: kopf.Body) -> uuid.UUID | None:
    """The database id of the object's account: asked once per object, then from its memo (the
    timers run every few seconds per object; the id of a registered account never changes)."""
    account_id = body.get("spec", {}).get("accountId")
    if not isinstance(account_id, str):
        return None
    remembered = memo.get(_ACCOUNT_UUID) if memo is not None else None
    if remembered is not None and remembered[:2] == (namespace, account_id):
        return remembered[2]  # type: ignore[no-any-return]
    rt = runtime.get()
    org = rt.store.organization(namespace)
    account = rt.store.account(org.id, account_id) if org else None
    if account is None:
        return None  # not registered yet: asked again at the next tick
    if memo is not None:
        memo[_ACCOUNT_UUID] = (namespace, account_id, account.id)
    return account.id


@kopf.timer(
    R.group,
    R.version,
    R.plural,
    id="recheck",
    interval=get_settings().account_recheck_seconds,
    initial_delay=get_settings().account_recheck_seconds,
)
@common.writes_only_changes()
def recheck(
    body: kopf.Body,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    namespace_uids: Any,
    logger: Any,
    **_: Any,
) -> None:
    """Re-verify the connection now and then (a trust policy may change), refresh the totals;
    an account refused because another organization held it is tried again (it may be free)."""
    rt = runtime.get()
    spec = body.get("spec", {})
    account_id = spec.get("accountId")
    if not isinstance(account_id, str):
        return
    org = rt.store.organization(namespace)
    account = rt.store.account(org.id, account_id) if org else None
    claimed_elsewhere = (condition_reason(body, "Connected") == _CLAIMED) or (
        account is not None and account.deleted
    )
    if claimed_elsewhere and org is not None:
        try:
            obj = common.validated(KIND, body)
        except common.InvalidSpec:
            return
        account = _register(body, patch, org.id, obj["spec"], name, logger)
    if account is None or account.deleted:
        return  # not registered (invalid spec, or held by another organization): status says why
    _verify(body, patch, account)
    _publish_last_scan(patch, account)


_CLAIMED = "AccountClaimedByAnotherOrganization"


def condition_reason(body: Mapping[str, Any], kind: str) -> str | None:
    for condition in body.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("reason"))
    return None


def _verify(body: kopf.Body, patch: kopf.Patch, account: AccountRecord) -> None:
    """AssumeRole with the ExternalId + GetCallerIdentity, and the role must refuse AssumeRole
    without the ExternalId (unless the installation allows shared accounts: then a warning)."""
    rt = runtime.get()
    strict = not rt.settings.allow_shared_accounts
    session = rt.session_factory(
        account.account_id,
        account.role_arn,
        external_id=account.external_id,
        purpose=aws.Purpose.SCAN,
        scan_permissions=detectors.permissions(),
        settings=rt.settings,
        recorder=rt.recorder_factory(),
        require_external_id=strict,
    )
    try:
        identity = session.verify()
    except aws.AwsError as error:
        if isinstance(error, aws.ExternalIdNotEnforced):
            reason = "ExternalIdNotEnforced"
        elif isinstance(error, aws.IdentityMismatch):
            reason = "IdentityMismatch"
        else:
            reason = "AssumeRoleFailed"
        rt.store.set_connection(account.id, domain.ConnectionStatus.FAILED, str(error))
        updates = [
            Condition("Connected", False, reason, str(error)),
            Condition("Ready", False, reason, "CloudSweep cannot use the account; see Connected"),
        ]
        if reason == "ExternalIdNotEnforced":
            updates.append(Condition("ExternalIdEnforced", False, reason, str(error)))
        common.set_conditions(patch, body, updates)
        if _changed(body, "Connected", "False", reason):
            kopf.warn(body, reason=reason, message=str(error)[:1000])
        return
    rt.store.set_connection(account.id, domain.ConnectionStatus.CONNECTED)
    updates = [
        Condition("Connected", True, "Connected", f"assumed {account.role_arn} as {identity.arn}"),
        Condition("Ready", True, "Connected", "the account is registered and reachable"),
    ]
    if not strict and _assumable_without_external_id(account):
        message = (
            f"{account.role_arn} can be assumed without the ExternalId: add the condition "
            f'"sts:ExternalId": "{account.external_id}" to its trust policy (confused deputy); '
            "used only because CLOUDSWEEP_ALLOW_SHARED_ACCOUNTS is on"
        )
        updates.append(Condition("ExternalIdEnforced", False, "ExternalIdNotEnforced", message))
        if _changed(body, "ExternalIdEnforced", "False", "ExternalIdNotEnforced"):
            kopf.warn(body, reason="ExternalIdNotEnforced", message=message)
    else:
        updates.append(
            Condition(
                "ExternalIdEnforced", True, "ExternalIdEnforced", "AssumeRole without it is refused"
            )
        )
    common.set_conditions(patch, body, updates)
    if _changed(body, "Connected", "True", "Connected"):
        common.normal(
            body, reason="Connected", message=f"connected to account {account.account_id}"
        )


def _assumable_without_external_id(account: AccountRecord) -> bool:
    rt = runtime.get()
    probe = rt.session_factory(
        account.account_id,
        account.role_arn,
        external_id=account.external_id,
        purpose=aws.Purpose.SCAN,
        scan_permissions=("sts:GetCallerIdentity",),
        settings=rt.settings,
        recorder=rt.recorder_factory(),
    )
    try:
        return bool(probe.assumable_without_external_id())
    except aws.AwsError:
        return False


def _changed(body: Mapping[str, Any], kind: str, status: str, reason: str) -> bool:
    for condition in body.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return bool(condition.get("status") != status or condition.get("reason") != reason)
    return True


def _publish_last_scan(patch: kopf.Patch, account: AccountRecord) -> None:
    _publish_scan(patch, runtime.get().store.latest_scan(account.id))


def _publish_scan(patch: kopf.Patch, scan: ScanRecord | None) -> None:
    if scan is None or scan.status == domain.ScanStatus.RUNNING.value:
        return
    patch.status["lastScan"] = {
        "scanId": str(scan.id),
        "scanType": scan.scan_type,
        "outcome": scan.status,
        "startTime": _timestamp(scan.started_at),
        "completionTime": _timestamp(scan.completed_at),
        "regionsScanned": list(scan.regions),
        "resourcesScanned": scan.total_resources_scanned,
        "wasteItems": scan.total_waste_items_found,
        "monthlyWaste": f"{scan.total_monthly_waste_cost:.2f}",
        "annualWaste": f"{scan.total_annual_waste_cost:.2f}",
    }


def _timestamp(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


@kopf.on.delete(R.group, R.version, R.plural, id="retire")
def retire(body: kopf.Body, namespace: str, **_: Any) -> None:
    """Stop scanning the account and keep its history; the finalizer keeps this orderly."""
    rt = runtime.get()
    account_id = body.get("spec", {}).get("accountId")
    org = rt.store.organization(namespace)
    if org is None or not isinstance(account_id, str):
        return
    account = rt.store.account(org.id, account_id)
    if account is None:
        return
    with rt.lock:
        running = rt.running.get(account.id)
    if running is not None:
        running.cancel.set()
    rt.store.mark_account_deleted(account.id, rt.now())
    common.normal(
        body, reason="Deleting", message=f"scans of account {account_id} stopped; history kept"
    )
