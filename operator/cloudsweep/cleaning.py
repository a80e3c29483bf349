"""A cleanup run: evaluate policies, record the plan, then dry-run or act on each item exactly once.

Called by ``cloudsweep cleanup`` / ``cloudsweep rollback`` and the CleanupPolicy handler. The
actions (``cloudsweep.cleanup``) say how to remove one resource; this module decides when, and owns
the safety invariants of DESIGN.md:

1. An item is acted on only when a policy's decision is actionable (rules, safety checks, approval,
   caps) and neither the run nor the policy is a dry run. The run's mode is fixed when it starts.
2. Exactly once: a per-item advisory lock (released by PostgreSQL when its holder dies), a claim
   under ``FOR UPDATE SKIP LOCKED`` that commits the intent before any AWS call, a partial unique
   index allowing one live attempt per item, and idempotent action steps. Interrupted attempts
   (an intent without an outcome, and no live lock) are reconciled from AWS by the next real run.
3. ``prepare`` (undo data, e.g. a snapshot) runs and is checkpointed before ``execute``.
4. Every attempt, dry run or real, success, failure or refusal, is a ``cleanup_actions`` row.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cloudsweep import aws, cleanup, domain
from cloudsweep.cleanup import ActionContext, CleanupAction, CleanupItem, Recheck, Selection
from cloudsweep.policies import (
    CleanupPolicy,
    Decision,
    DecisionKind,
    Plan,
    RunMode,
    decide,
    evaluate,
)
from cloudsweep.settings import Settings, get_settings
from cloudsweep.store import Candidate, Intent, Store, rate_budget

log = logging.getLogger(__name__)

SessionFactory = Callable[..., aws.AccountSession]


class LostLock(RuntimeError):
    """The database connection holding the item's lock is gone: stop before touching AWS."""


class CleanupRefused(domain.InvalidInput):
    """The run cannot start (unknown organization, no identity for a manual real run)."""


class AccountNotHeld(CleanupRefused):
    """The item's account is held by another organization: nothing of it is touched."""


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What happened to one item in a run."""

    item_id: uuid.UUID
    resource_type: str
    resource_id: str
    region: str
    account_id: str
    policy: str
    action: str
    outcome: str  # dry-run-ok, dry-run-fail, succeeded, failed, refused, skipped, recovered
    message: str
    action_id: uuid.UUID | None = None
    monthly_cost: Any = None


@dataclass
class RunReport:
    run_id: uuid.UUID
    dry_run: bool
    plan: Plan
    results: list[ItemResult] = field(default_factory=list)
    interrupted_found: int = 0


@dataclass
class CleanupOptions:
    """How a run behaves; ``dry_run`` is read once, when the run starts."""

    dry_run: bool = True
    method: domain.ExecutionMethod = domain.ExecutionMethod.MANUAL
    actor_email: str | None = None
    settings: Settings | None = None
    session_factory: SessionFactory = aws.AccountSession
    recorder: aws.CallRecorder | None = None
    now: Callable[[], datetime] = domain.utcnow
    protection_tags: tuple[str, ...] = ("cloudsweep.io/protect", "do-not-delete")
    # Called after each item (for progress bars and status updates).
    progress: Callable[[ItemResult], None] | None = None


def cleanup_item(
    candidate: Candidate,
    policy: CleanupPolicy | None = None,
    protection_tags: Sequence[str] = (),
) -> CleanupItem:
    """The item an action works on, with the tag rules that selected it (the scan's protection
    tags from the stored finding, the policy's include and exclude tags)."""
    selection = Selection.of(
        candidate.resource_details,
        include_tags=policy.rules.include_tags if policy is not None else None,
        exclude_tags=policy.rules.exclude_tags if policy is not None else None,
        protection_tags=protection_tags,
    )
    return CleanupItem(
        waste_item_id=candidate.id,
        account_id=candidate.account_id,
        region=candidate.region,
        resource_type=candidate.resource_type,
        resource_id=candidate.resource_id,
        resource_arn=candidate.resource_arn,
        availability_zone=candidate.availability_zone,
        monthly_cost=candidate.monthly_cost,
        resource_details=candidate.resource_details,
        selection=selection,
    )


def recheck_item(action: CleanupAction, ctx: ActionContext, item: CleanupItem) -> Recheck:
    """The action's re-check, then the rules that selected the item applied to the live tags it
    reports: the re-check at execution is never laxer than the scan and the policy, whatever
    the action checks itself. An action that reports no tags is refused (fail closed)."""
    recheck = action.recheck(ctx, item)
    if not recheck.still_waste:
        return recheck
    tags = recheck.facts.get("tags")
    if not isinstance(tags, Mapping):
        return Recheck(
            False,
            f"the re-check of {action.resource_type} {action.action} reported no current tags, "
            "so the rules that selected the item cannot be checked",
            recheck.facts,
        )
    refusal = item.selection.refusal({str(k): str(v) for k, v in tags.items()})
    if refusal is not None:
        return Recheck(False, refusal, recheck.facts)
    return recheck


class _Sessions:
    """One cleanup session per account for the run (not the scan's read-only sessions)."""

    def __init__(
        self,
        options: CleanupOptions,
        settings: Settings,
        budget: aws.RequestBudget | None,
        store: Store,
    ) -> None:
        self._options = options
        self._settings = settings
        self._budget = budget
        self._store = store
        self._sessions: dict[str, aws.AccountSession] = {}

    def get(self, candidate: Candidate) -> aws.AccountSession:
        """The account's cleanup session; ``AccountNotHeld`` (before any AWS call) when the
        candidate's organization does not hold the account and sharing is not allowed."""
        if not self._settings.allow_shared_accounts:
            holder = self._store.account_holder(candidate.account_id)
            if holder != candidate.organization_id:
                raise AccountNotHeld(
                    f"AWS account {candidate.account_id} is not held by this organization "
                    "(another organization registered it): nothing of it is cleaned"
                )
        session = self._sessions.get(candidate.account_id)
        if session is None:
            if candidate.role_arn is None:
                raise aws.AwsError(
                    aws.ErrorKind.ACCESS_DENIED,
                    service="sts",
                    operation="AssumeRole",
                    code="NoRole",
                    message=f"account {candidate.account_id} was scanned on your own credentials, "
                    "which CloudSweep never cleans with; scan it with --role-arn to register its "
                    "role",
                )
            session = self._options.session_factory(
                candidate.account_id,
                candidate.role_arn,
                external_id=candidate.external_id,
                purpose=aws.Purpose.CLEANUP,
                settings=self._settings,
                recorder=self._options.recorder,
                budget=self._budget,
                # No cleanup ever runs in an account whose role lets CloudSweep in without the
                # ExternalId: the session refuses before any call beyond STS.
                require_external_id=not self._settings.allow_shared_accounts,
            )
            self._sessions[candidate.account_id] = session
        return session


def plan_cleanup(
    store: Store,
    organization_id: uuid.UUID,
    policies: Sequence[CleanupPolicy],
    *,
    mode: RunMode,
    now: datetime,
) -> Plan:
    """Decide every open finding (pending or approved) the policies cover; nothing is written."""

    def candidates_for(policy: CleanupPolicy) -> Iterator[Candidate]:
        return store.candidates(
            organization_id, resource_type=policy.resource_type, account_ids=policy.accounts
        )

    return evaluate(policies, candidates_for, mode=mode, now=now)


def run_cleanup(
    store: Store,
    organization_slug: str,
    policies: Sequence[CleanupPolicy],
    options: CleanupOptions | None = None,
) -> RunReport:
    """Plan, record the plan, reconcile interrupted attempts (real runs), then act or dry-run."""
    options = options or CleanupOptions()
    dry_run = options.dry_run  # fixed for the whole run, whatever changes meanwhile
    settings = options.settings or get_settings()
    organization = store.organization(organization_slug)
    if organization is None:
        raise CleanupRefused(f"organization {organization_slug!r} has no findings; scan it first")
    mode = (
        RunMode.AUTOMATED if options.method is not domain.ExecutionMethod.MANUAL else RunMode.MANUAL
    )
    actor = None
    if options.actor_email:
        actor = store.ensure_user(organization.id, options.actor_email)
    elif mode is RunMode.MANUAL and not dry_run:
        raise CleanupRefused(
            "a manual cleanup that acts needs the identity of who runs it (--as EMAIL)"
        )

    now = options.now()
    plan = plan_cleanup(store, organization.id, policies, mode=mode, now=now)
    run_id = store.open_cleanup_run(
        organization.id,
        dry_run=dry_run,
        method=options.method,
        executed_by=actor,
        policies=[p.to_document() for p in policies],
        plan=plan.document(),
        now=now,
    )
    report = RunReport(run_id=run_id, dry_run=dry_run, plan=plan)
    sessions = _Sessions(options, settings, rate_budget.for_settings(store.url, settings), store)
    by_name = {p.name: p for p in policies}
    try:
        quiet_since = now - timedelta(seconds=settings.cleanup_takeover_seconds)
        interrupted = store.interrupted_actions(organization.id, quiet_since=quiet_since)
        report.interrupted_found = len(interrupted)
        if not dry_run:
            for action_id in interrupted:
                result = _recover(store, action_id, by_name, sessions, options, mode, actor, run_id)
                if result is not None:
                    _report(report, result, options)
        for decision in plan.decisions:
            if decision.lapsed_approval and not dry_run:
                store.lapse_approval(decision.candidate.id, decision.lapsed_approval, options.now())
            if not decision.kind.actionable:
                continue
            item_dry_run = dry_run or decision.policy.dry_run
            handler = _dry_run_item if item_dry_run else _act_on_item
            result = handler(store, decision, sessions, options, actor, run_id)
            _report(report, result, options)
    except Exception:
        store.close_cleanup_run(
            run_id, status=domain.RunStatus.FAILED, summary=_summary(report), now=options.now()
        )
        raise
    store.close_cleanup_run(
        run_id, status=domain.RunStatus.COMPLETED, summary=_summary(report), now=options.now()
    )
    return report


@dataclass
class IsolatedRuns:
    """The runs of ``run_cleanup_isolated``: their reports, and each policy that failed and why."""

    reports: list[RunReport] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # policy name -> why its run failed

    @property
    def results(self) -> list[ItemResult]:
        return [result for report in self.reports for result in report.results]


def _why(error: Exception) -> str:
    """An error on one short line (a database error quotes its SQL and parameters after it)."""
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first[:300]}"


def run_cleanup_isolated(
    store: Store,
    organization_slug: str,
    policies: Sequence[CleanupPolicy],
    options: CleanupOptions,
) -> IsolatedRuns:
    """The operator's run after a scan: all of a namespace's policies together, as one plan; if
    that run fails, each policy alone, so one bad policy cannot stop the others.

    Together first, because the plan gives an item matched by several policies to the first one
    (in name order) that would act, and a dry-run policy can shadow a real one. Alone afterwards,
    in the same order: whatever the failed run did is in the ledger, so no item is acted on twice
    (the claim only takes items still pending or approved).
    """
    try:
        return IsolatedRuns(reports=[run_cleanup(store, organization_slug, policies, options)])
    except CleanupRefused:
        raise
    except Exception as error:
        if len(policies) < 2:
            return IsolatedRuns(failed={p.name: _why(error) for p in policies})
        log.warning(
            "cleanup run of %s's %d policies failed (%s); running each policy alone",
            organization_slug,
            len(policies),
            _why(error),
        )
    isolated = IsolatedRuns()
    for policy in sorted(policies, key=lambda p: p.name):
        try:
            isolated.reports.append(run_cleanup(store, organization_slug, [policy], options))
        except Exception as error:
            log.warning("policy %s of %s failed: %s", policy.name, organization_slug, _why(error))
            isolated.failed[policy.name] = _why(error)
    return isolated


def _report(report: RunReport, result: ItemResult, options: CleanupOptions) -> None:
    report.results.append(result)
    if options.progress is not None:
        options.progress(result)


def _summary(report: RunReport) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    for result in report.results:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
    return {"outcomes": outcomes, "interrupted_found": report.interrupted_found}


def _intent(
    decision: Decision,
    action: CleanupAction,
    options: CleanupOptions,
    actor: uuid.UUID | None,
    run_id: uuid.UUID,
    *,
    dry_run: bool,
) -> Intent:
    item = decision.candidate
    return Intent(
        item_id=item.id,
        run_id=run_id,
        action=action.action,
        action_type=action.action_type,
        description=f"{action.action} {item.resource_type} {item.resource_id} in {item.region} "
        f"of account {item.account_id}",
        method=options.method,
        executed_by=actor,
        policy_name=decision.policy.name,
        decision_reason=f"{decision.kind.value}: {decision.reason}",
        rollback_possible=action.rollback_possible,
        estimated_monthly_savings=action.estimated_monthly_savings(cleanup_item(item)),
        dry_run=dry_run,
    )


def _context(
    store: Store,
    candidate: Candidate,
    sessions: _Sessions,
    options: CleanupOptions,
    action_id: uuid.UUID,
    *,
    persist: bool,
    item: CleanupItem | None = None,
) -> ActionContext:
    session = sessions.get(candidate)
    region = candidate.region

    def checkpoint(data: Mapping[str, Any]) -> None:
        if persist:
            store.checkpoint(action_id, data)
            store.heartbeat(action_id, options.now())

    return ActionContext(
        account_id=candidate.account_id,
        region=region,
        partition=session.partition,
        action_id=action_id,
        client=lambda service: session.client(service, region),
        now=options.now,
        checkpoint=checkpoint,
        protection_tags=(
            item.selection.protection_tags if item is not None else options.protection_tags
        ),
    )


def _result(
    decision: Decision, outcome: str, message: str, action_id: uuid.UUID | None
) -> ItemResult:
    item = decision.candidate
    return ItemResult(
        item_id=item.id,
        resource_type=item.resource_type,
        resource_id=item.resource_id,
        region=item.region,
        account_id=item.account_id,
        policy=decision.policy.name,
        action=decision.policy.action,
        outcome=outcome,
        message=message,
        action_id=action_id,
        monthly_cost=item.monthly_cost,
    )


def _refuse(
    store: Store,
    decision: Decision,
    action_id: uuid.UUID,
    now: datetime,
    why: str,
    response: Mapping[str, Any],
) -> ItemResult:
    """Record a started attempt as refused: no destructive call was made, and the item goes back
    to pending (its approval, if any, is void) until what refused it changes."""
    store.finish(
        action_id,
        status=domain.AttemptStatus.REFUSED,
        now=now,
        error=f"refused: {why}",
        response=dict(response),
        item_status=domain.CleanupStatus.PENDING,
    )
    return _result(decision, "refused", why, action_id)


def _error_response(error: aws.AwsError) -> dict[str, str]:
    """What the ledger keeps of an AWS error besides its message."""
    return {"error_kind": error.kind.value, "code": error.code}


def _dry_run_item(
    store: Store,
    decision: Decision,
    sessions: _Sessions,
    options: CleanupOptions,
    actor: uuid.UUID | None,
    run_id: uuid.UUID,
) -> ItemResult:
    action = cleanup.get(decision.policy.resource_type, decision.policy.action)()
    params = action.parameters(decision.policy.parameters)
    item = cleanup_item(decision.candidate, decision.policy, options.protection_tags)
    intent = _intent(decision, action, options, actor, run_id, dry_run=True)
    response: dict[str, Any]
    try:
        ctx = _context(
            store, decision.candidate, sessions, options, uuid.uuid4(), persist=False, item=item
        )
        recheck = recheck_item(action, ctx, item)
        if not recheck.still_waste:
            would, message, response = (
                False,
                f"would refuse: {recheck.reason}",
                {"recheck": dict(recheck.facts)},
            )
        else:
            result = action.dry_run(ctx, item, params)
            would, message = result.would_succeed, result.message
            response = {"checked": list(result.calls), "recheck": dict(recheck.facts)}
    except AccountNotHeld as error:
        would, message, response = False, f"would refuse: {error}", {"code": "AccountNotHeld"}
    except aws.AwsError as error:
        would, message, response = (
            False,
            str(error),
            {"error_kind": error.kind.value, "code": error.code},
        )
    action_id = store.record_dry_run(
        intent, would_succeed=would, message=message, response=response, now=options.now()
    )
    return _result(decision, "dry-run-ok" if would else "dry-run-fail", message, action_id)


def _act_on_item(
    store: Store,
    decision: Decision,
    sessions: _Sessions,
    options: CleanupOptions,
    actor: uuid.UUID | None,
    run_id: uuid.UUID,
) -> ItemResult:
    action = cleanup.get(decision.policy.resource_type, decision.policy.action)()
    params = action.parameters(decision.policy.parameters)
    item = cleanup_item(decision.candidate, decision.policy, options.protection_tags)
    with store.item_lock(decision.candidate.id) as lock:
        if lock is None:
            return _result(decision, "skipped", "another worker is acting on this item", None)
        intent = _intent(decision, action, options, actor, run_id, dry_run=False)
        allowed = [domain.CleanupStatus.APPROVED.value]
        if decision.kind is DecisionKind.RUN_AUTOMATICALLY or decision.candidate.approval is None:
            allowed.append(domain.CleanupStatus.PENDING.value)
        action_id = store.claim(intent, allowed=allowed, now=options.now())
        if action_id is None:
            return _result(
                decision, "skipped", "the item changed state or was taken by another run", None
            )
        try:
            ctx = _context(
                store, decision.candidate, sessions, options, action_id, persist=True, item=item
            )
        except AccountNotHeld as error:
            return _refuse(
                store, decision, action_id, options.now(), str(error), {"code": "AccountNotHeld"}
            )
        except aws.AwsError as error:
            # No session for the account before any AWS call (it was scanned without a role):
            # the run goes on with the others.
            return _refuse(
                store, decision, action_id, options.now(), str(error), _error_response(error)
            )
        return _carry_out(store, decision, action, params, item, ctx, lock, action_id, recorded={})


def _carry_out(
    store: Store,
    decision: Decision,
    action: CleanupAction,
    params: cleanup.ActionParameters,
    item: CleanupItem,
    ctx: ActionContext,
    lock: Any,
    action_id: uuid.UUID,
    *,
    recorded: Mapping[str, Any],
) -> ItemResult:
    """Re-check, prepare undo data, act, and record the one outcome of a started attempt."""
    now = ctx.now
    try:
        if not lock.alive():
            raise LostLock("lost the database before the re-check")
        store.heartbeat(action_id, now())
        recheck = recheck_item(action, ctx, item)
        if not recheck.still_waste:
            return _refuse(
                store, decision, action_id, now(), recheck.reason, {"recheck": dict(recheck.facts)}
            )
        rollback_data = dict(action.prepare(ctx, item, params, recorded))
        store.checkpoint(action_id, rollback_data)
        if not lock.alive():
            raise LostLock("lost the database before the destructive call")
        # The last sign of life before the call: no other worker takes this attempt over until
        # cleanup_takeover_seconds after it, longer than this call can be in flight.
        store.heartbeat(action_id, now())
        outcome = action.execute(ctx, item, params, rollback_data)
    except aws.ExternalIdNotEnforced as error:
        # Refused before any call beyond STS: the item waits for the trust policy to be fixed.
        return _refuse(store, decision, action_id, now(), str(error), _error_response(error))
    except LostLock as error:
        # No outcome can be written; the intent stays and the next real run reconciles it.
        log.error("cleanup of %s stopped: %s", item.resource_id, error)
        return _result(decision, "interrupted", str(error), action_id)
    except aws.AwsError as error:
        if aws.errors.outcome_unknown(error):
            # The call may have taken effect: leave the intent open; the next real run reconciles
            # it from AWS (gone: done, recorded once; still there: carried on).
            log.warning(
                "cleanup of %s: outcome unknown (%s); left for reconciliation",
                item.resource_id,
                error,
            )
            return _result(
                decision, "interrupted", f"outcome unknown, will be reconciled: {error}", action_id
            )
        store.finish(
            action_id,
            status=domain.AttemptStatus.FAILED,
            now=now(),
            error=str(error),
            response=_error_response(error),
            item_status=domain.CleanupStatus.FAILED,
        )
        return _result(decision, "failed", str(error), action_id)
    except Exception as error:
        log.exception("cleanup of %s raised", item.resource_id)
        message = f"internal error: {type(error).__name__}: {error}"
        store.finish(
            action_id,
            status=domain.AttemptStatus.FAILED,
            now=now(),
            error=message,
            item_status=domain.CleanupStatus.FAILED,
        )
        return _result(decision, "failed", message, action_id)
    note = outcome.note or (
        "already done by an earlier attempt" if outcome.already_done else "done"
    )
    # The undo data is in the ledger already: checkpointed after ``prepare``, and by ``execute``
    # as it went. Writing ``prepare``'s dict again here would put back a value ``execute`` had
    # replaced (a resumed attempt's ``modify_requested_at``).
    recorded_here = store.finish(
        action_id,
        status=domain.AttemptStatus.SUCCEEDED,
        now=now(),
        response={**dict(outcome.response), "already_done": outcome.already_done, "note": note},
        item_status=domain.CleanupStatus.CLEANED,
    )
    if not recorded_here:
        return _result(
            decision, "reconciled", "another worker recorded this attempt's outcome", action_id
        )
    return _result(decision, "succeeded", note, action_id)


def _recover(
    store: Store,
    action_id: uuid.UUID,
    policies: Mapping[str, CleanupPolicy],
    sessions: _Sessions,
    options: CleanupOptions,
    mode: RunMode,
    actor: uuid.UUID | None,
    run_id: uuid.UUID,
) -> ItemResult | None:
    """Reconcile an attempt whose worker died between its intent and its outcome."""
    record = store.action(action_id)
    if record is None or record.status != domain.AttemptStatus.STARTED.value:
        return None
    with store.item_lock(record.waste_item_id) as lock:
        if lock is None:
            return None  # its worker is alive and still at it
        record = store.action(action_id)  # re-read under the lock
        candidate = store.candidate(record.waste_item_id) if record else None
        if (
            record is None
            or candidate is None
            or record.status != domain.AttemptStatus.STARTED.value
        ):
            return None
        action = cleanup.get(record.resource_type, record.action)()
        policy = policies.get(record.policy_name or "")
        item = cleanup_item(candidate, policy, options.protection_tags)
        stand_in = policy or CleanupPolicy.model_construct(
            name=record.policy_name or "?", action=record.action
        )
        try:
            ctx = _context(store, candidate, sessions, options, action_id, persist=True, item=item)
            recheck = action.recheck(ctx, item)
        except (aws.AwsError, AccountNotHeld) as error:
            return _result(
                Decision(candidate, stand_in, DecisionKind.SKIP, ""),
                "interrupted",
                f"could not reconcile: {error}",
                action_id,
            )
        if recheck.facts.get("gone"):  # Recheck.gone: the effect is there, after our intent
            # The resource is absent after our recorded intent: the interrupted attempt did it.
            store.finish(
                action_id,
                status=domain.AttemptStatus.SUCCEEDED,
                now=options.now(),
                response={
                    "recovered": True,
                    "note": "the resource was gone when the attempt was reconciled",
                },
                item_status=domain.CleanupStatus.CLEANED,
            )
            return _result(
                Decision(candidate, stand_in, DecisionKind.SKIP, ""),
                "recovered",
                "completed by an interrupted attempt (the resource is gone)",
                action_id,
            )
        decision = decide(policy, candidate, mode=mode, now=options.now()) if policy else None
        if decision is None or not decision.kind.actionable or policy is None or policy.dry_run:
            why = (
                "its policy is not in this run"
                if policy is None
                else (
                    "its policy is a dry run"
                    if policy.dry_run
                    else decision.reason
                    if decision
                    else ""
                )
            )
            store.finish(
                action_id,
                status=domain.AttemptStatus.REFUSED,
                now=options.now(),
                error=f"interrupted, and no longer allowed: {why}",
                response={"recovered": True, "rollback_data_kept": record.rollback_data or {}},
                item_status=domain.CleanupStatus.PENDING,
            )
            return _result(
                Decision(candidate, stand_in, DecisionKind.SKIP, why),
                "refused",
                f"interrupted; {why}",
                action_id,
            )
        params = action.parameters(policy.parameters)
        result = _carry_out(
            store,
            decision,
            action,
            params,
            item,
            ctx,
            lock,
            action_id,
            recorded=record.rollback_data or {},
        )
        return ItemResult(
            item_id=result.item_id,
            resource_type=result.resource_type,
            resource_id=result.resource_id,
            region=result.region,
            account_id=result.account_id,
            policy=result.policy,
            action=result.action,
            outcome=result.outcome,
            message=f"resumed an interrupted attempt: {result.message}",
            action_id=result.action_id,
            monthly_cost=result.monthly_cost,
        )


# --- rollback ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollbackResult:
    action_id: uuid.UUID
    rollback_id: uuid.UUID | None
    outcome: str  # dry-run, succeeded, failed, interrupted (rerun to resume), reconciled
    message: str
    response: Mapping[str, Any] = field(default_factory=dict)


def rollback(
    store: Store,
    organization_slug: str,
    action_id: uuid.UUID,
    options: CleanupOptions | None = None,
) -> RollbackResult:
    """Undo a successful real action from its rollback data, and record the rollback."""
    options = options or CleanupOptions()
    settings = options.settings or get_settings()
    record = store.action(action_id)
    if record is None or record.organization_slug != organization_slug:
        raise CleanupRefused(f"no cleanup action {action_id} in organization {organization_slug!r}")
    if record.dry_run or record.status != domain.AttemptStatus.SUCCEEDED.value:
        raise CleanupRefused(
            f"action {action_id} is a {'dry run' if record.dry_run else record.status} attempt: nothing to undo"
        )
    if record.action_type == domain.ActionType.ROLLBACK.value:
        raise CleanupRefused(f"action {action_id} is itself a rollback")
    action = cleanup.get(record.resource_type, record.action)()
    if not record.rollback_possible or not action.rollback_possible:
        raise CleanupRefused(
            f"{record.resource_type} {record.action} cannot be undone: {action.rollback_note}"
        )
    if record.rollback_executed:
        raise CleanupRefused(f"action {action_id} was already rolled back")
    candidate = store.candidate(record.waste_item_id)
    if candidate is None:
        raise CleanupRefused(f"the finding of action {action_id} no longer exists")
    sessions = _Sessions(options, settings, rate_budget.for_settings(store.url, settings), store)
    if options.dry_run:
        return RollbackResult(
            action_id,
            None,
            "dry-run",
            f"the rollback {action.rollback_note}",
            dict(record.rollback_data or {}),
        )
    organization = store.organization(organization_slug)
    assert organization is not None
    if not options.actor_email:
        raise CleanupRefused("a rollback needs the identity of who runs it (--as EMAIL)")
    actor = store.ensure_user(organization.id, options.actor_email)
    sessions.get(candidate)  # AccountNotHeld before anything is recorded or called
    intent = Intent(
        item_id=record.waste_item_id,
        run_id=None,
        action=f"rollback-{record.action}",
        action_type=domain.ActionType.ROLLBACK,
        description=f"undo {record.action} of {record.resource_type} {record.resource_id}",
        method=options.method,
        executed_by=actor,
        policy_name=record.policy_name,
        decision_reason=f"rollback of {action_id} requested",
        rollback_possible=False,
        estimated_monthly_savings=None,
        rollback_of=action_id,
    )
    quiet_since = options.now() - timedelta(seconds=settings.cleanup_takeover_seconds)
    # The item's lock, as a cleanup takes it: one worker at a time undoes (or acts on) an item.
    with store.item_lock(record.waste_item_id) as lock:
        if lock is None:
            raise CleanupRefused(
                f"another worker is acting on or rolling back the item of {action_id}; try later"
            )
        started = store.start_rollback(intent, options.now(), quiet_since=quiet_since)
        if started is None:
            raise CleanupRefused(f"a rollback of {action_id} is already under way or done")
        rollback_id = started.id
        ctx = _context(store, candidate, sessions, options, rollback_id, persist=True)
        params = action.parameters({})
        resumed = " (resumed an interrupted rollback)" if started.resumed else ""
        try:
            # The intent is committed; as in a cleanup, no AWS call without our lock.
            if not lock.alive():
                raise LostLock("lost the database before the rollback call")
            store.heartbeat(rollback_id, options.now())
            outcome = action.rollback(ctx, record.rollback_data or {}, params)
        except LostLock as error:
            log.error("rollback of %s stopped: %s", action_id, error)
            return RollbackResult(action_id, rollback_id, "interrupted", str(error))
        except aws.AwsError as error:
            if aws.errors.outcome_unknown(error):
                # It may have taken effect: the next rollback of this action resumes the intent
                # under the same ID and finds what this one made.
                return RollbackResult(
                    action_id,
                    rollback_id,
                    "interrupted",
                    f"outcome unknown, rerun the rollback to resume it: {error}",
                )
            store.finish(
                rollback_id,
                status=domain.AttemptStatus.FAILED,
                now=options.now(),
                error=str(error),
                response={"error_kind": error.kind.value, "code": error.code},
            )
            return RollbackResult(action_id, rollback_id, "failed", str(error))
        recorded = store.finish(
            rollback_id,
            status=domain.AttemptStatus.SUCCEEDED,
            now=options.now(),
            response={
                **dict(outcome.response),
                "note": outcome.note,
                "already_done": outcome.already_done,
                "resumed": started.resumed,
            },
        )
    if not recorded:
        return RollbackResult(
            action_id, rollback_id, "reconciled", "another worker recorded this rollback's outcome"
        )
    return RollbackResult(
        action_id,
        rollback_id,
        "succeeded",
        (outcome.note or "restored") + resumed,
        dict(outcome.response),
    )
