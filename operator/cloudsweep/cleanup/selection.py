"""What selected an item for cleanup, carried to its re-check so that the re-check is never laxer
than the scan and the policy.

Built by the executor (``cleaning``) from the stored finding (the detector parameters of the scan
that found it: its protection tags) and the policy that chose it (``includeTags``,
``excludeTags``); applied by the executor to the live tags every action's ``recheck`` reports, and
handed to the actions as ``ActionContext.protection_tags``. The policy evaluation
(``policies``) uses the same tag rules, from here, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PROTECTION_TAGS: tuple[str, ...] = ("cloudsweep.io/protect", "do-not-delete")
# A protection tag whose value is one of these does not protect (``do-not-delete=false``), as in
# the detectors.
NOT_PROTECTING = frozenset({"false", "no", "0", "off"})


def protected_by(tags: Mapping[str, str], keys: Iterable[str]) -> str | None:
    """The ``key=value`` of a protection tag on the resource, or None (keys case-insensitive)."""
    wanted = {k.lower() for k in keys}
    for key, value in tags.items():
        if key.lower() in wanted and value.strip().lower() not in NOT_PROTECTING:
            return f"{key}={value}"
    return None


def missing_included(tags: Mapping[str, str], included: Mapping[str, str]) -> list[str]:
    """Keys of ``included`` (a policy's ``includeTags``; value ``*``: any) the tags lack."""
    return [
        key
        for key, value in included.items()
        if key not in tags or (value != "*" and tags[key] != value)
    ]


def present_excluded(tags: Mapping[str, str], excluded: Mapping[str, str]) -> list[str]:
    """Keys of ``excluded`` (a policy's ``excludeTags``; value ``*``: any) the tags carry."""
    return [k for k, v in excluded.items() if k in tags and (v == "*" or tags[k] == v)]


@dataclass(frozen=True, slots=True)
class Selection:
    """The tag rules an item was selected under: the scan's protection tags (with CloudSweep's
    defaults, which always apply) and the policy's include and exclude tags."""

    protection_tags: tuple[str, ...] = DEFAULT_PROTECTION_TAGS
    include_tags: Mapping[str, str] = field(default_factory=dict)
    exclude_tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        resource_details: Mapping[str, Any],
        *,
        include_tags: Mapping[str, str] | None = None,
        exclude_tags: Mapping[str, str] | None = None,
        protection_tags: Iterable[str] = (),
    ) -> Selection:
        """The selection of a stored finding under a policy's tag rules (``protection_tags``:
        more keys the caller adds, e.g. the CLI's)."""
        scanned = (resource_details.get("selection") or {}).get("protection_tags") or ()
        keys = [*DEFAULT_PROTECTION_TAGS, *protection_tags, *(str(k) for k in scanned)]
        return cls(
            protection_tags=tuple(dict.fromkeys(keys)),
            include_tags=dict(include_tags or {}),
            exclude_tags=dict(exclude_tags or {}),
        )

    def refusal(self, tags: Mapping[str, str]) -> str | None:
        """Why the resource with these live tags must not be acted on, or None."""
        protection = protected_by(tags, self.protection_tags)
        if protection is not None:
            return f"protected by tag {protection} (a protection tag of the scan that found it)"
        excluded = present_excluded(tags, self.exclude_tags)
        if excluded:
            return f"now has the policy's excluded tags {', '.join(excluded)}"
        missing = missing_included(tags, self.include_tags)
        if missing:
            return f"no longer has the policy's included tags {', '.join(missing)}"
        return None
