"""The shared AWS request budget: a token bucket per account, region and service in PostgreSQL.

Called through ``aws.budget`` by every AWS session the scan run and the cleanup executor open (the
``RequestBudget`` they pass in is a :class:`PostgresBudget`). PostgreSQL is what every CloudSweep
process already shares (operator replicas, scan Jobs, the command line), so a row there is one
budget for all of them: taking a token is one ``UPDATE`` of that row, which serialises callers
of the same key and no others.

The rate adapts (AIMD): a throttling answer halves it for everyone (never below ``min_rate``), and
it grows back by ``max_rate / recovery_seconds`` per second without throttling.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from cloudsweep.aws.budget import BudgetKey
from cloudsweep.settings import Settings
from cloudsweep.store.engine import get_engine

# Below AWS's documented per-account limits where AWS documents them (EC2's non-mutating actions
# refill 20 a second; CloudWatch GetMetricData 50 a second; CloudWatch Logs DescribeLogGroups 5 a
# second); conservative elsewhere. Keys are botocore's hyphenized service ids.
DEFAULT_RATES: Mapping[str, float] = {
    "ec2": 15.0,
    "elastic-load-balancing": 8.0,
    "elastic-load-balancing-v2": 8.0,
    "rds": 8.0,
    "cloudwatch": 20.0,
    "cloudwatch-logs": 4.0,
    "s3": 20.0,
    "auto-scaling": 8.0,
    "backup": 5.0,
    "sts": 10.0,
}
DEFAULT_RATE = 5.0  # any other service
# AWS's buckets hold several seconds of refill (EC2's non-mutating bucket: 100 tokens at 20 a
# second), so a short burst after a quiet spell is normal; sustained, the rate holds.
BURST_SECONDS = 5.0
MIN_RATE_FRACTION = 0.05
RECOVERY_SECONDS = 60.0
MAX_SLEEP_SECONDS = 1.0

_TAKE = sa.text(
    """
    WITH cur AS (
        SELECT tokens, rate,
               greatest(extract(epoch FROM clock_timestamp() - updated_at), 0) AS elapsed
        FROM aws_request_budgets
        WHERE account_id = :account AND region = :region AND service = :service
        FOR UPDATE
    ), nxt AS (
        SELECT least(:max_rate, rate + :recovery * elapsed) AS rate,
               least(:burst, tokens + rate * elapsed) AS tokens
        FROM cur
    )
    UPDATE aws_request_budgets b
    SET rate = nxt.rate,
        tokens = CASE WHEN nxt.tokens >= 1 THEN nxt.tokens - 1 ELSE nxt.tokens END,
        updated_at = clock_timestamp()
    FROM nxt
    WHERE b.account_id = :account AND b.region = :region AND b.service = :service
    RETURNING nxt.tokens, nxt.rate
    """
)
_CREATE = sa.text(
    """
    INSERT INTO aws_request_budgets (account_id, region, service, tokens, rate, updated_at)
    VALUES (:account, :region, :service, :burst, :max_rate, clock_timestamp())
    ON CONFLICT DO NOTHING
    """
)
_THROTTLED = sa.text(
    """
    UPDATE aws_request_budgets
    SET rate = greatest(:min_rate, rate / 2), tokens = least(tokens, 0),
        updated_at = clock_timestamp()
    WHERE account_id = :account AND region = :region AND service = :service
    """
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_rate: float  # requests a second
    burst: float  # tokens the bucket holds at most
    min_rate: float
    recovery: float  # rate regained per second without throttling


def for_settings(url: str, settings: Settings) -> PostgresBudget | None:
    """The budget the settings ask for, or None when ``aws_rate_budget`` is off."""
    if not settings.aws_rate_budget:
        return None
    return PostgresBudget(url, rates=settings.aws_request_rates)


class PostgresBudget:
    """``aws.budget.RequestBudget`` on the database at ``url``.

    Example::

        budget = PostgresBudget(store.url, rates={"ec2": 10})
        session = AccountSession(..., budget=budget)   # every EC2 call now waits its turn
    """

    def __init__(
        self,
        url: str,
        *,
        rates: Mapping[str, float] | None = None,
        default_rate: float = DEFAULT_RATE,
        burst_seconds: float = BURST_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self._rates = {**DEFAULT_RATES, **(rates or {})}
        self._default = default_rate
        self._burst_seconds = burst_seconds
        self._sleep = sleep

    def limits(self, service: str) -> Limits:
        rate = float(self._rates.get(service, self._default))
        return Limits(
            max_rate=rate,
            burst=max(1.0, rate * self._burst_seconds),
            min_rate=rate * MIN_RATE_FRACTION,
            recovery=rate / RECOVERY_SECONDS,
        )

    def take(self, key: BudgetKey) -> float:
        limits = self.limits(key.service)
        params = {
            "account": key.account_id,
            "region": key.region,
            "service": key.service,
            "max_rate": limits.max_rate,
            "burst": limits.burst,
            "recovery": limits.recovery,
        }
        waited = 0.0
        engine = get_engine(self.url)
        while True:
            with engine.begin() as connection:
                row = connection.execute(_TAKE, params).one_or_none()
                if row is None:
                    connection.execute(_CREATE, params)
                    continue
            tokens, rate = float(row[0]), float(row[1])
            if tokens >= 1:
                return waited
            pause = min(MAX_SLEEP_SECONDS, (1 - tokens) / rate)
            self._sleep(pause)
            waited += pause

    def throttled(self, key: BudgetKey) -> None:
        limits = self.limits(key.service)
        with get_engine(self.url).begin() as connection:
            connection.execute(
                _THROTTLED,
                {
                    "account": key.account_id,
                    "region": key.region,
                    "service": key.service,
                    "min_rate": limits.min_rate,
                },
            )

    def state(self, key: BudgetKey) -> tuple[float, float] | None:
        """``(tokens, rate)`` as stored (for tests and ``cloudsweep`` diagnostics)."""
        with get_engine(self.url).connect() as connection:
            row = connection.execute(
                sa.text(
                    "SELECT tokens, rate FROM aws_request_budgets "
                    "WHERE account_id = :a AND region = :r AND service = :s"
                ),
                {"a": key.account_id, "r": key.region, "s": key.service},
            ).one_or_none()
        return None if row is None else (float(row[0]), float(row[1]))
