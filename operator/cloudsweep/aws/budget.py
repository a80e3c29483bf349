"""One AWS request budget per account, region and service, shared by everything that calls it.

Called by :class:`~cloudsweep.aws.session.AccountSession` (``attach``: every HTTP attempt of its
clients, retries included, takes a token first; every throttling answer shrinks the rate). The
budget itself lives outside this package (``store.rate_budget``: a token bucket in PostgreSQL, so
several ScanSchedules, a cleanup, a rollback, the operator and scan Jobs share one rate per
account); here is only the contract and the botocore wiring.

AWS throttles per account and region, per API family; a multi-tenant operator that lets each
scan keep its own pace (botocore's *adaptive* mode) multiplies its rate by the number of scans
running in that account. The budget makes the sum of them the rate, and backs off for everybody
when AWS says "slow down" to anybody (additive increase, multiplicative decrease).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from cloudsweep.aws import errors


@dataclass(frozen=True, slots=True)
class BudgetKey:
    account_id: str
    region: str
    service: str  # botocore's hyphenized service id: ec2, elastic-load-balancing-v2, rds, ...


class RequestBudget(Protocol):
    def take(self, key: BudgetKey) -> float:
        """Block until one request may be sent; return the seconds waited."""
        ...

    def throttled(self, key: BudgetKey) -> None:
        """AWS answered a request with throttling: shrink the rate for every caller."""
        ...


class BudgetStats:
    """Process-wide counts for ``/metrics``: requests, seconds waited and throttling answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.waited_seconds: dict[str, float] = {}
        self.throttled: Counter[str] = Counter()

    def record(self, service: str, *, waited: float = 0.0, throttled: bool = False) -> None:
        with self._lock:
            if throttled:
                self.throttled[service] += 1
            else:
                self.requests[service] += 1
                self.waited_seconds[service] = self.waited_seconds.get(service, 0.0) + waited

    def snapshot(self) -> tuple[dict[str, int], dict[str, float], dict[str, int]]:
        with self._lock:
            return dict(self.requests), dict(self.waited_seconds), dict(self.throttled)


STATS = BudgetStats()


def _service(event_name: str) -> str:
    # before-send.<service-id>.<Operation> / response-received.<service-id>.<Operation>
    return event_name.split(".")[1]


def attach(events: Any, budget: RequestBudget, account_id: str) -> None:
    """Make every request of clients created from ``events``' session pass through ``budget``.

    Attach before creating clients: botocore copies handlers into each client when it is made.
    """

    def key(event_name: str, context: dict[str, Any] | None) -> BudgetKey:
        region = str((context or {}).get("client_region") or "global")
        return BudgetKey(account_id, region, _service(event_name))

    def before_send(request: Any, event_name: str, **_: Any) -> None:
        found = key(event_name, getattr(request, "context", None))
        waited = budget.take(found)
        STATS.record(found.service, waited=waited)

    def on_response(
        parsed_response: Any, context: dict[str, Any], event_name: str, **_: Any
    ) -> None:
        error = parsed_response.get("Error", {}) if isinstance(parsed_response, dict) else {}
        code = str(error.get("Code") or "")
        if code and errors.kind_of_code(code) is errors.ErrorKind.THROTTLED:
            found = key(event_name, context)
            STATS.record(found.service, throttled=True)
            budget.throttled(found)

    unique = f"cloudsweep-budget-{id(budget)}"
    events.register("before-send", before_send, unique_id=f"{unique}-send")
    events.register("response-received", on_response, unique_id=f"{unique}-response")
