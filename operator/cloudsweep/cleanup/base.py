"""The contract every cleanup action implements, and what the executor hands it.

Subclassed by one module per resource type (``cleanup.ebs_volume`` ...); registered in
``cleanup/__init__.py``; driven only by ``cleanup.executor``, which owns the ledger, locks, dry-run
mode and the order of steps. An action never decides *whether* to act: it re-checks, prepares undo
data, acts, and undoes, each step idempotent so that a crash and a rerun repeat nothing.

Steps, in the order the executor calls them for one item:

1. ``recheck``: read-only; is the resource still the waste the scan saw (not attached, not
   protected, not changed)? If not, the executor refuses and records it. Its facts must carry
   the resource's live tags under ``"tags"`` (a ``{key: value}`` mapping): the executor applies
   the rules that selected the item (``CleanupItem.selection``) to them and refuses an item
   whose re-check does not report them.
2. ``dry_run``: for a dry run only: ask AWS whether the calls would succeed (``DryRun=True`` where
   the API has it, read-only checks where it does not) and change nothing.
3. ``prepare``: record what undo needs (a snapshot, a final configuration). Call
   ``ctx.checkpoint(data)`` as soon as anything exists in AWS (a snapshot ID), so a crash before the
   step finishes leaves the ID in the ledger; find earlier work by the action ID before creating
   anything (tag what you create with ``ACTION_TAG`` = ``ctx.action_id``).
4. ``execute``: the destructive call. A not-found answer means an earlier attempt succeeded: return
   ``Outcome(already_done=True)``, never raise.
5. ``rollback``: later, on request: undo from the rollback data ``prepare`` returned.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from cloudsweep.cleanup.selection import DEFAULT_PROTECTION_TAGS, Selection
from cloudsweep.domain import CLEANUP_ACTION_TAG, ActionType

ACTION_TAG = CLEANUP_ACTION_TAG


class ActionParameters(BaseModel):
    """Parameters every action accepts; subclasses add their own. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wait_delay_seconds: float = 5.0
    wait_max_attempts: int = 720  # with the delay above: an hour for a large snapshot


@dataclass(frozen=True, slots=True)
class CleanupItem:
    """The finding to act on, as the scan stored it."""

    waste_item_id: uuid.UUID
    account_id: str
    region: str
    resource_type: str
    resource_id: str
    resource_arn: str | None
    availability_zone: str | None
    monthly_cost: Decimal
    resource_details: Mapping[str, Any]
    # The tag rules that selected it (scan and policy); the executor applies them to the live
    # tags the re-check reports.
    selection: Selection = field(default_factory=Selection)

    @property
    def tags(self) -> Mapping[str, str]:
        return dict(self.resource_details.get("tags") or {})


@dataclass(frozen=True)
class ActionContext:
    """What an action may use: clients of the item's account and region, the clock, the ledger."""

    account_id: str
    region: str
    partition: str
    action_id: uuid.UUID
    client: Callable[[str], Any]  # service name -> boto3 client (cleanup session, this region)
    now: Callable[[], datetime]
    # Persist progress into the action's rollback_data right away (merged, committed).
    checkpoint: Callable[[Mapping[str, Any]], None]
    # The scan's protection tags (see ``CleanupItem.selection``), CloudSweep's defaults included.
    protection_tags: tuple[str, ...] = DEFAULT_PROTECTION_TAGS


@dataclass(frozen=True, slots=True)
class Recheck:
    still_waste: bool
    reason: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def gone(cls, reason: str, **facts: Any) -> Recheck:
        """The action's effect is already there (deleted, deleting, released, stopped).

        A fresh attempt then refuses (nothing to do); the reconciliation of an interrupted
        attempt records it as done, once: the effect came after its recorded intent.
        """
        return cls(False, reason, {**facts, "gone": True})


@dataclass(frozen=True, slots=True)
class DryRunResult:
    would_succeed: bool
    message: str
    calls: tuple[
        str, ...
    ] = ()  # the operations checked, e.g. ("ec2:CreateSnapshot", "ec2:DeleteVolume")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a step did; ``response`` is JSON-serialisable and goes into ``aws_response``."""

    response: Mapping[str, Any]
    already_done: bool = False
    note: str = ""


class CleanupAction(abc.ABC):
    """One way of removing one resource type's waste; see an action module for an example."""

    resource_type: ClassVar[str]  # a detector's name, e.g. "ebs-volume"
    action: ClassVar[str]  # short kebab-case, e.g. "snapshot-and-delete"
    action_type: ClassVar[ActionType]  # what the audit trail calls it
    permissions: ClassVar[tuple[str, ...]]  # IAM actions of every step, rollback included
    rollback_possible: ClassVar[bool]
    rollback_note: ClassVar[str]  # what undo does, or why there is none
    Parameters: ClassVar[type[ActionParameters]] = ActionParameters

    @classmethod
    def key(cls) -> tuple[str, str]:
        return (cls.resource_type, cls.action)

    def parameters(self, raw: Mapping[str, Any] | None = None) -> ActionParameters:
        return self.Parameters.model_validate(dict(raw or {}))

    def estimated_monthly_savings(self, item: CleanupItem) -> Decimal:
        """What the item stops costing; actions that keep a paid copy (a snapshot) subtract it."""
        return item.monthly_cost

    @abc.abstractmethod
    def recheck(self, ctx: ActionContext, item: CleanupItem) -> Recheck: ...

    @abc.abstractmethod
    def dry_run(
        self, ctx: ActionContext, item: CleanupItem, params: ActionParameters
    ) -> DryRunResult: ...

    @abc.abstractmethod
    def prepare(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        recorded: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        """Return the rollback data (``recorded`` is what an interrupted attempt checkpointed)."""

    @abc.abstractmethod
    def execute(
        self,
        ctx: ActionContext,
        item: CleanupItem,
        params: ActionParameters,
        rollback_data: Mapping[str, Any],
    ) -> Outcome: ...

    def rollback(
        self, ctx: ActionContext, rollback_data: Mapping[str, Any], params: ActionParameters
    ) -> Outcome:
        raise NotImplementedError(
            f"{self.resource_type} {self.action} cannot be undone: {self.rollback_note}"
        )
