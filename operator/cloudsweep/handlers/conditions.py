"""Status conditions in the Kubernetes / Crossplane style, for every custom resource's status.

Called by the handlers. Each condition has type, status, CamelCase reason, message,
``lastTransitionTime`` (changed only when the status flips) and ``observedGeneration``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudsweep import redaction
from cloudsweep.domain import utcnow


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool | None  # None: Unknown
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def merged(
    existing: Sequence[Mapping[str, Any]] | None,
    updates: Sequence[Condition],
    *,
    generation: int | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The status.conditions list with ``updates`` applied; other types are kept as they were."""
    stamp = (now or utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")
    by_type = {c.get("type"): dict(c) for c in existing or [] if c.get("type")}
    for update in updates:
        previous = by_type.get(update.type, {})
        flipped = previous.get("status") != update.status_text
        entry = {
            "type": update.type,
            "status": update.status_text,
            "reason": update.reason,
            # Status is read by the whole namespace: no credential or webhook secret in it.
            "message": redaction.redact(update.message, remembered=False)[:1024],
            "lastTransitionTime": stamp if flipped else previous.get("lastTransitionTime", stamp),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        by_type[update.type] = entry
    order = ["Ready", "Connected", "Synced"]
    return sorted(
        by_type.values(),
        key=lambda c: (order.index(c["type"]) if c["type"] in order else 9, c["type"]),
    )
