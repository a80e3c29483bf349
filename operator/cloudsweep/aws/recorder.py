"""A record of every AWS call made through a boto3 session, taken at botocore's event layer.

Attached by ``aws.session.AccountSession`` (when given a recorder) to the sessions it builds.
Tests use the records as the oracle ("no mutating call", "no call under another tenant's
credentials", "refused before any call beyond STS"); the scan benchmark counts calls with it, and
the operator feeds ``metrics.observe_aws_call`` from it through a listener (``add_listener``): each
listener is called once with each record when its response or failure is seen.

Events used: ``before-parameter-build`` (the call as the caller made it: one record per API call,
retries included in it), ``after-call`` (HTTP status and error code of the final attempt, also
for responses that a fault-injecting ``before-call`` handler supplied) and ``after-call-error``
(no response at all: connection errors, time-outs). A record stays ``pending`` if the call never
left (botocore refused its parameters, or credentials could not be obtained).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_RECORD_KEY = "cloudsweep_record"

# Operation-name prefixes that only read; anything else counts as mutating.
_READ_PREFIXES = ("Describe", "List", "Get", "Lookup", "Search", "BatchGet")
# Credential calls change nothing in the account.
_READ_OPERATIONS = frozenset({"AssumeRole", "AssumeRoleWithWebIdentity", "GetSessionToken"})


@dataclass(slots=True)
class CallRecord:
    """One AWS API call. ``outcome`` is ``pending`` until the response (or failure) is seen."""

    caller_account: str | None
    region: str | None
    service: str
    operation: str
    params: dict[str, Any]
    outcome: str = "pending"  # ok | error | pending
    error_code: str | None = None
    http_status: int | None = None
    retries: int = 0

    @property
    def mutating(self) -> bool:
        return not (self.operation.startswith(_READ_PREFIXES) or self.operation in _READ_OPERATIONS)


class CallRecorder:
    """Thread-safe list of :class:`CallRecord`; attach it to one or more boto3 sessions.

    Example::

        recorder = CallRecorder()
        recorder.attach(boto3_session, caller_account="111111111111")
        ...
        assert recorder.count(service="ec2", operation="DescribeVolumes") == 3
    """

    def __init__(self, listeners: Iterable[Callable[[CallRecord], None]] = ()) -> None:
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []
        self._listeners: list[Callable[[CallRecord], None]] = list(listeners)

    def add_listener(self, listener: Callable[[CallRecord], None]) -> None:
        """Call ``listener(record)`` once for every call that finishes from now on.

        Listeners run on the thread that made the call, outside the recorder's lock; one that
        raises is logged and never breaks the AWS call.
        """
        with self._lock:
            self._listeners.append(listener)

    def _finished(self, record: CallRecord) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(record)
            except Exception:
                log.exception("call recorder listener %r failed", listener)

    def attach(self, session: Any, caller_account: str | None) -> None:
        """Record calls of clients created from ``session`` (boto3 or botocore) from now on.

        ``caller_account`` is whose credentials the session carries (``None`` for the base
        credentials). Attach before creating clients: botocore copies the event handlers into
        each client when the client is created.
        """
        events = (
            session.events if hasattr(session, "events") else session.get_component("event_emitter")
        )
        unique = f"cloudsweep-recorder-{id(self)}"

        def on_params(
            params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
        ) -> None:
            record = CallRecord(
                caller_account=caller_account,
                region=context.get("client_region"),
                service=model.service_model.service_name,
                operation=model.name,
                params=copy.deepcopy(params),
            )
            with self._lock:
                self._records.append(record)
            context[_RECORD_KEY] = record

        def on_after_call(
            http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
        ) -> None:
            record = context.get(_RECORD_KEY)
            if record is None:
                return
            status = getattr(http_response, "status_code", None)
            error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
            metadata = parsed.get("ResponseMetadata", {}) if isinstance(parsed, dict) else {}
            with self._lock:
                record.http_status = status
                record.retries = int(metadata.get("RetryAttempts", 0) or 0)
                if status is not None and status >= 300:
                    record.outcome = "error"
                    record.error_code = str(error.get("Code") or status)
                else:
                    record.outcome = "ok"
            self._finished(record)

        def on_after_call_error(
            exception: BaseException, context: dict[str, Any], **_: Any
        ) -> None:
            record = context.get(_RECORD_KEY)
            if record is None:
                return
            with self._lock:
                record.outcome = "error"
                record.error_code = type(exception).__name__
            self._finished(record)

        events.register("before-parameter-build", on_params, unique_id=f"{unique}-params")
        events.register("after-call", on_after_call, unique_id=f"{unique}-after")
        events.register("after-call-error", on_after_call_error, unique_id=f"{unique}-error")

    @property
    def records(self) -> list[CallRecord]:
        """A snapshot copy of the records so far, oldest first."""
        with self._lock:
            return list(self._records)

    def calls(
        self,
        *,
        service: str | None = None,
        operation: str | None = None,
        region: str | None = None,
        caller_account: str | None = None,
    ) -> list[CallRecord]:
        return [
            r
            for r in self.records
            if (service is None or r.service == service)
            and (operation is None or r.operation == operation)
            and (region is None or r.region == region)
            and (caller_account is None or r.caller_account == caller_account)
        ]

    def count(
        self,
        *,
        service: str | None = None,
        operation: str | None = None,
        region: str | None = None,
        caller_account: str | None = None,
    ) -> int:
        return len(
            self.calls(
                service=service, operation=operation, region=region, caller_account=caller_account
            )
        )

    def by_operation(self) -> Counter[tuple[str, str]]:
        """Number of calls per (service, operation): what the scan benchmark reports."""
        return Counter((r.service, r.operation) for r in self.records)

    def mutating(self) -> list[CallRecord]:
        return [r for r in self.records if r.mutating]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
