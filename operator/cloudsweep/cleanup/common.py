"""Helpers every cleanup action shares: AWS calls, tags, protection, dry runs, waiters, savings.

Imported by the action modules of ``cloudsweep.cleanup``; not an action itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from cloudsweep import aws
from cloudsweep.aws import ErrorKind
from cloudsweep.cleanup import selection, service_calls
from cloudsweep.cleanup.base import (
    ACTION_TAG,
    ActionContext,
    ActionParameters,
    CleanupItem,
    DryRunResult,
    Outcome,
)
from cloudsweep.domain import money
from cloudsweep.pricing import PriceCatalog, active


def call(ctx: ActionContext, operation: str, **params: Any) -> dict[str, Any]:
    """One EC2 call of the item's account and region; failures raise ``aws.AwsError``."""
    return service_calls.call(ctx, "ec2", operation, **params)


def describe_one(describe: Callable[[], Mapping[str, Any]], key: str) -> dict[str, Any] | None:
    """The first entry of the list ``key`` of a Describe answer (``describe()``, any service), or
    None when the list is empty or AWS answers that the resource does not exist."""
    try:
        found = describe().get(key) or []
    except aws.AwsError as exc:
        if exc.kind is ErrorKind.NOT_FOUND:
            return None
        raise
    return dict(found[0]) if found else None


def destroy(
    ctx: ActionContext,
    operation: str,
    resource_id: str,
    verb: str,
    /,
    *,
    id_key: str,
    note: str | None = None,
    **params: Any,
) -> Outcome:
    """The destructive EC2 call ``operation`` (``DeleteVolume``, ``ReleaseAddress``...) with
    ``params``; ``verb`` says what it does (``deleted``), ``note`` overrides the note of success.

    Only reached after prepare recorded the intent, so a not-found answer means an earlier attempt
    did it (its response was lost): the outcome is done, not a reason to try anything else.
    """
    try:
        response = call(ctx, operation, **params)
    except aws.AwsError as exc:
        if exc.kind is ErrorKind.NOT_FOUND:
            return Outcome(
                {id_key: resource_id, "Error": exc.code},
                already_done=True,
                note=f"{resource_id} was already {verb} (an earlier attempt)",
            )
        raise
    return Outcome(jsonable(response), note=note or f"{verb} {resource_id}")


def gone_before_recorded(
    ctx: ActionContext, service: str, operation: str, code: str, resource: str
) -> aws.AwsError:
    """What prepare raises when the resource is gone before its configuration was recorded."""
    return aws.AwsError(
        ErrorKind.NOT_FOUND,
        service=service,
        operation=operation,
        code=code,
        message=f"{resource} is gone before its configuration was recorded",
        region=ctx.region,
    )


class MissingRollbackData(aws.AwsError):
    """``execute`` was asked to act without the undo data that prepare records (or with undo data
    that no longer works): refused, nothing is called."""

    def __init__(
        self, operation: str, verb: str, resource_id: str, region: str, reason: str
    ) -> None:
        super().__init__(
            ErrorKind.TERMINAL,
            service="ec2",
            operation=operation,
            code="MissingRollbackData",
            message=f"refusing to {verb} {resource_id}: {reason}; run prepare again",
            region=region,
        )


def earlier_attempt(
    ctx: ActionContext,
    operation: str,
    key: str,
    *,
    live: Callable[[Mapping[str, Any]], bool] | None = None,
    filters: Sequence[Mapping[str, Any]] = (),
    **params: Any,
) -> list[dict[str, Any]]:
    """What an earlier attempt of this action (or of this rollback) made: the entries of the
    Describe ``operation`` (EC2) tagged ``ACTION_TAG`` = ``ctx.action_id``, in AWS's order.

    AWS is asked with the tag filter (and ``filters``, ``params``), and every entry is checked
    here again: it carries the tag, and ``live(entry)`` holds where given. The check here is what
    keeps a rollback from taking over a stranger's resource where an endpoint ignores a filter
    (the emulator of the tests and the demo ignores them on ``DescribeNatGateways``). ``key``
    names the answer's list; ``"Reservations.Instances"`` flattens the instances of
    ``DescribeInstances``.
    """
    action_id = str(ctx.action_id)
    answer = call(
        ctx,
        operation,
        Filters=[{"Name": f"tag:{ACTION_TAG}", "Values": [action_id]}, *filters],
        **params,
    )
    return [
        entry
        for entry in _listed(answer, key.split("."))
        if tag_map(entry.get("Tags")).get(ACTION_TAG) == action_id and (live is None or live(entry))
    ]


def _listed(answer: Mapping[str, Any], path: list[str]) -> Iterable[dict[str, Any]]:
    head, *rest = path
    for entry in answer.get(head) or ():
        if rest:
            yield from _listed(entry, rest)
        else:
            yield dict(entry)


def oldest_usable(
    found: Sequence[Mapping[str, Any]], usable: Callable[[Mapping[str, Any]], bool], started: str
) -> dict[str, Any] | None:
    """The oldest (by the timestamp field ``started``) of the usable entries, else of them all:
    an earlier attempt's failed copy is still worth reporting over taking a second one."""
    candidates = [f for f in found if usable(f)] or list(found)
    chosen = sorted(candidates, key=lambda f: str(f.get(started, "")))
    return dict(chosen[0]) if chosen else None


def action_tags(
    tags: Mapping[str, str] | None, action_id: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``tags`` (as recorded) less ``ACTION_TAG`` and the ``extra`` keys, plus ``ACTION_TAG`` =
    ``action_id`` and ``extra``: the tags of what an action (or its rollback) makes."""
    marks = {ACTION_TAG: action_id, **(extra or {})}
    return {**{k: v for k, v in dict(tags or {}).items() if k not in marks}, **marks}


def changes_since_scan(
    seen: Mapping[str, Any], facts: Mapping[str, Any], fields: Iterable[tuple[str, str, str]]
) -> list[str]:
    """``"name seen -> now"`` for each ``(name, seen key, fact key)`` whose value the scan saw and
    the re-check sees, and which differ."""
    return [
        f"{name} {seen[key]} -> {facts[fact]}"
        for name, key, fact in fields
        if seen.get(key) is not None and facts[fact] is not None and seen[key] != facts[fact]
    ]


def jsonable(response: Mapping[str, Any]) -> dict[str, Any]:
    """A response fit for the ledger's ``aws_response``: no metadata but the request ID."""
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    request_id = (response.get("ResponseMetadata") or {}).get("RequestId")
    if request_id:
        body["RequestId"] = request_id
    result: dict[str, Any] = json.loads(json.dumps(body, default=str))
    return result


def tag_map(tags: Any) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or () if "Key" in t}


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags a caller may set again: AWS reserves the ``aws:`` prefix."""
    return {k: v for k, v in tags.items() if not k.lower().startswith("aws:")}


def tag_specification(resource_type: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "ResourceType": resource_type,
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        }
    ]


def protected_by(tags: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    """The ``key=value`` of a protection tag present on the resource, or None.

    Keys match case-insensitively and ``false``/``no``/``0``/``off`` values do not protect, exactly
    as the detectors judge them: a re-check must never be laxer than the scan.
    """
    return selection.protected_by(tags, keys)


def dry_run_calls(ctx: ActionContext, calls: list[tuple[str, dict[str, Any]]]) -> DryRunResult:
    """Ask AWS whether each call would succeed (``DryRun=True``); nothing changes.

    AWS answers a permitted dry run with the error ``DryRunOperation`` and a forbidden one with
    ``UnauthorizedOperation``. Throttling and server errors are raised: they tell nothing.
    """
    names = tuple(f"ec2:{operation}" for operation, _ in calls)
    problems: list[str] = []
    for operation, params in calls:
        try:
            call(ctx, operation, DryRun=True, **params)
        except aws.AwsError as exc:
            if exc.code == "DryRunOperation":
                continue
            if exc.kind.retryable:
                raise
            problems.append(f"ec2:{operation} would fail ({exc.code}): {exc.message}")
            continue
        # A success means the endpoint ignored DryRun and may have acted: stop everything.
        raise aws.AwsError(
            ErrorKind.TERMINAL,
            service="ec2",
            operation=operation,
            code="DryRunIgnored",
            message="the endpoint answered a DryRun call with success instead of "
            "DryRunOperation; it may have changed something: check the AWS endpoint setting",
            region=ctx.region,
        )
    if problems:
        return DryRunResult(False, "; ".join(problems), names)
    return DryRunResult(True, "AWS would allow " + ", ".join(names), names)


def wait(
    ctx: ActionContext, waiter_name: str, operation: str, params: ActionParameters, **kwargs: Any
) -> None:
    """Wait with a botocore waiter; running out of attempts is recoverable (the next attempt
    waits for the same resource), a resource that failed is terminal."""
    waiter = ctx.client("ec2").get_waiter(waiter_name)
    config = {"Delay": params.wait_delay_seconds, "MaxAttempts": params.wait_max_attempts}
    try:
        with aws.translated("ec2", operation, ctx.region):
            waiter.wait(WaiterConfig=config, **kwargs)
    except aws.AwsError as exc:
        if exc.code != "WaiterError":
            raise
        # botocore says "terminal failure state" when the resource reached a failed state;
        # "Max attempts exceeded" (still pending) and unexpected errors are worth a later retry.
        failed = "terminal failure state" in exc.message
        raise aws.AwsError(
            ErrorKind.TERMINAL if failed else ErrorKind.RECOVERABLE,
            service="ec2",
            operation=operation,
            code="WaiterFailed" if failed else "WaiterTimedOut",
            message=f"{waiter_name}: {exc.message}",
            region=ctx.region,
        ) from exc


def savings_keeping(
    item: CleanupItem,
    size_key: str,
    kept: Callable[[PriceCatalog, str, int], Decimal],
    *,
    unpriced: Decimal | None = None,
) -> Decimal:
    """The item's monthly cost less what the copy the action keeps costs a month, at least 0.

    ``kept(catalog, region, size_gib)`` prices the copy (a snapshot) with the active catalog, at the
    size the scan priced the item at (``resource_details["pricing"][size_key]``). Without that
    size or a price for the copy the result is ``unpriced``, by default the item's whole cost.
    """
    fallback = item.monthly_cost if unpriced is None else unpriced
    size = (item.resource_details.get("pricing") or {}).get(size_key)
    if size is None:
        return fallback
    try:
        price = kept(active.active_catalog(), item.region, int(size))
    except LookupError:
        return fallback
    return max(money(0), money(item.monthly_cost - price))
