"""What every handler module needs: the tenant of a namespace, spec validation, events, status.

Only ``cloudsweep.handlers`` imports kopf. A namespace is an organization: its name is the slug,
and its UID (from the namespaces index) tells a recreated namespace from the old one. Nothing here
ever reads or writes another namespace on a tenant's behalf.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import kopf

from cloudsweep import crds, domain, redaction
from cloudsweep.handlers import conditions, runtime
from cloudsweep.store import OrganizationRecord

# Set by a cluster administrator on a tenant's namespace (tenants cannot edit namespaces): the
# organization's opt-in to unattended cleanup, the first of the three keys autoExecute needs
# (then the AwsAccount's spec.autoCleanupEnabled, then the CleanupPolicy's autoExecute).
AUTO_CLEANUP_ANNOTATION = "cloudsweep.io/auto-cleanup"


@kopf.index("v1", "namespaces")
def namespace_uids(
    name: str, uid: str | None, annotations: Mapping[str, str], **_: Any
) -> dict[str, tuple[str | None, bool]]:
    """Namespace name -> (UID, auto cleanup): the organization behind a namespace.

    The UID tells a recreated namespace from the old one.
    """
    return {name: (uid, annotations.get(AUTO_CLEANUP_ANNOTATION) == "enabled")}


@kopf.on.event("v1", "namespaces", id="namespace-auto-cleanup")
def namespace_auto_cleanup(
    name: str, type: str | None, annotations: Mapping[str, str], logger: Any, **_: Any
) -> None:
    """Follow the annotation on every namespace event (stateless: nothing is written to the
    namespace). Namespaces without an organization are left alone."""
    if type == "DELETED":
        return
    enabled = annotations.get(AUTO_CLEANUP_ANNOTATION) == "enabled"
    if runtime.get().store.set_organization_auto_cleanup(name, enabled):
        logger.info("auto cleanup of organization %s is now %s", name, "on" if enabled else "off")


def organization(namespace: str, namespace_uids: Any) -> OrganizationRecord:
    """The organization of a namespace, created on first use with the configured scan limit;
    its auto cleanup follows the namespace's annotation at every call."""
    rt = runtime.get()
    found = namespace_uids.get(namespace) if namespace_uids is not None else None
    uid, auto_cleanup = next(iter(found), (None, None)) if found else (None, None)
    return rt.store.ensure_organization(
        namespace,
        namespace_uid=uid,
        monthly_scan_limit=rt.settings.default_monthly_scan_limit,
        auto_cleanup_enabled=auto_cleanup,
    )


def validated(
    kind: str, body: Mapping[str, Any], old: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The object with the CRD's defaults, or a PermanentError listing what is wrong.

    The API server validates at admission; this repeats it (KMock and a bypassed webhook do not),
    so bad input never reaches AWS.
    """
    obj = crds.apply_defaults(kind, dict(body))
    errors = crds.validate(kind, obj, old=dict(old) if old else None)
    if errors:
        raise InvalidSpec("; ".join(errors))
    return obj


class InvalidSpec(kopf.PermanentError):
    """The object's spec is wrong; fixing it (a new generation) is the only way forward."""


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def writes_only_changes(
    *, heartbeat: str | None = None, heartbeat_seconds: float = 300.0
) -> Callable[[_Handler], _Handler]:
    """For timers, which run every few seconds per object: drop the status fields the object
    already has, so an unchanged object costs no API write and no watch event for every watcher.

    ``heartbeat`` names a timestamp field the timer always sets ("evaluated at"): alone, it is
    written only once the stored one is ``heartbeat_seconds`` old.
    """

    def decorate(handler: _Handler) -> _Handler:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = handler(*args, **kwargs)
            patch, body = kwargs.get("patch"), kwargs.get("body")
            if patch is not None and body is not None:
                drop_unchanged_status(patch, body, heartbeat, heartbeat_seconds)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


def drop_unchanged_status(
    patch: Any,
    body: Mapping[str, Any],
    heartbeat: str | None = None,
    heartbeat_seconds: float = 300.0,
) -> None:
    status = patch.get("status")
    if not isinstance(status, dict):
        return
    current = dict(body.get("status") or {})
    for key in list(status):
        value = status[key]
        if (key in current and current[key] == value) or (value is None and key not in current):
            del status[key]
    if heartbeat is not None and list(status) == [heartbeat]:
        written = _parse_stamp(current.get(heartbeat))
        fresh = _parse_stamp(status[heartbeat])
        if written and fresh and (fresh - written).total_seconds() < heartbeat_seconds:
            del status[heartbeat]
    if not status:
        del patch["status"]


def _parse_stamp(value: Any) -> datetime | None:
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def set_conditions(
    patch: kopf.Patch, body: Mapping[str, Any], updates: Sequence[conditions.Condition]
) -> None:
    generation = body.get("metadata", {}).get("generation")
    existing = (patch.get("status") or {}).get("conditions") or body.get("status", {}).get(
        "conditions"
    )
    patch.status["conditions"] = conditions.merged(
        existing, updates, generation=generation if isinstance(generation, int) else None
    )
    if isinstance(generation, int):
        patch.status["observedGeneration"] = generation


def refuse(
    patch: kopf.Patch, body: Any, error: Exception, *, also: Sequence[conditions.Condition] = ()
) -> None:
    """Record a refusal as a condition and a Warning event; the caller then stops."""
    message = redaction.redact(str(error), remembered=False)  # an Event: no secret in it
    set_conditions(
        patch, body, [conditions.Condition("Ready", False, "InvalidSpec", message), *also]
    )
    kopf.warn(body, reason="InvalidSpec", message=message[:1000])


def ready_reason(body: Mapping[str, Any]) -> str | None:
    """The reason of the object's Ready condition as stored, or None without one."""
    for condition in body.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("reason"))
    return None


def refuse_again(patch: kopf.Patch, body: Any, error: Exception) -> None:
    """For timers: write the refusal if the stored status lacks it (its patch may have been
    lost), and stay quiet otherwise, so an invalid object costs no writes or events per tick."""
    if ready_reason(body) != "InvalidSpec":
        refuse(patch, body, error)


def normal(body: Any, *, reason: str, message: str) -> None:
    """A Normal Event for an act users care about (kopf's own INFO logs are not posted)."""
    kopf.event(
        body,
        type="Normal",
        reason=reason,
        message=redaction.redact(message, remembered=False)[:1000],
    )


def same_namespace_names(index: Any, namespace: str) -> dict[str, Mapping[str, Any]]:
    """The objects of one namespace in a kopf index keyed by (namespace, name)."""
    found: dict[str, Mapping[str, Any]] = {}
    if index is None:
        return found
    for (ns, name), values in index.items():
        if ns == namespace:
            for value in values:
                found[name] = value
    return found


def select(
    objects: Mapping[str, Mapping[str, Any]],
    names: Sequence[str] | None,
    selector: Mapping[str, Any] | None,
) -> list[str]:
    """Names chosen by a list of names or by a label selector (matchLabels / matchExpressions)."""
    if names:
        return [n for n in names if n in objects]
    if selector is None:
        return []
    labels_wanted = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    chosen = []
    for name, obj in sorted(objects.items()):
        labels = obj.get("labels") or {}
        if any(labels.get(k) != v for k, v in labels_wanted.items()):
            continue
        if all(_matches(expr, labels) for expr in expressions):
            chosen.append(name)
    return chosen


def _matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = (
        expression.get("key"),
        expression.get("operator"),
        expression.get("values") or [],
    )
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def is_invalid_input(error: BaseException) -> bool:
    return isinstance(error, domain.InvalidInput)
