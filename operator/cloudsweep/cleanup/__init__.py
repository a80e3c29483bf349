"""THE cleanup action registry: one class per (resource type, action), registered once.

Called by the policy validation (which actions exist for a type), the executor (``get``), the IAM
template builder (``permissions``) and the contract tests. Importing this package registers every
action module listed at the bottom.
"""

from __future__ import annotations

from typing import TypeVar

from cloudsweep.cleanup.base import (
    ACTION_TAG,
    ActionContext,
    ActionParameters,
    CleanupAction,
    CleanupItem,
    DryRunResult,
    Outcome,
    Recheck,
)
from cloudsweep.cleanup.selection import Selection
from cloudsweep.domain import InvalidInput

A = TypeVar("A", bound=type[CleanupAction])

_REGISTRY: dict[tuple[str, str], type[CleanupAction]] = {}


class UnknownAction(InvalidInput, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: A) -> A:
    """Class decorator; a second class for the same (resource type, action) is refused."""
    key = cls.key()
    existing = _REGISTRY.get(key)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"cleanup action {key[0]}/{key[1]} is already registered by "
            f"{existing.__module__}.{existing.__qualname__}"
        )
    _REGISTRY[key] = cls
    return cls


def get(resource_type: str, action: str) -> type[CleanupAction]:
    try:
        return _REGISTRY[(resource_type, action)]
    except KeyError:
        known = actions_for(resource_type)
        hint = (
            f"actions for {resource_type}: {', '.join(known)}"
            if known
            else "no actions for that type"
        )
        raise UnknownAction(
            f"unknown cleanup action {action!r} for {resource_type!r}; {hint}"
        ) from None


def actions_for(resource_type: str) -> list[str]:
    return sorted(action for rtype, action in _REGISTRY if rtype == resource_type)


def all_actions() -> list[type[CleanupAction]]:
    return [_REGISTRY[key] for key in sorted(_REGISTRY)]


__all__ = [
    "ACTION_TAG",
    "ActionContext",
    "ActionParameters",
    "CleanupAction",
    "CleanupItem",
    "DryRunResult",
    "Outcome",
    "Recheck",
    "Selection",
    "UnknownAction",
    "actions_for",
    "all_actions",
    "get",
    "register",
]


# Imported for their side effect: each module registers its actions.
from cloudsweep.cleanup import (  # noqa: E402, F401
    ami,
    ebs_gp3_candidate,
    ebs_snapshot,
    ebs_volume,
    ec2_instance,
    ec2_stopped_instance,
    elastic_ip,
    load_balancer,
    log_group,
    nat_gateway,
    rds_instance,
    s3_multipart,
)
