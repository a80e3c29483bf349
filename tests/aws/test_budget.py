"""One AWS request budget per account, region and service, across processes, measured at AWS.

Two worker processes call EC2 in the same account through sessions budgeted by one PostgreSQL
token bucket; a moto server that logs the arrival time and SigV4 scope of every request is the
oracle for the rate AWS would see. Throttling is injected with a botocore ``before-send`` answer.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from cloudsweep import aws
from cloudsweep.aws import budget as aws_budget
from cloudsweep.settings import Settings
from cloudsweep.store.rate_budget import PostgresBudget

from .. import faults
from .budget_worker import ACCOUNT, ROLE

REPO = Path(__file__).resolve().parents[2]
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/")


class LoggingMotoServer(ThreadedMotoServer):
    """moto, plus the arrival time, region and service of every request it receives."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.arrivals: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)

        def logged(environ: dict[str, Any], start_response: Any) -> Any:
            match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
            if match:
                with self._lock:
                    self.arrivals.append(
                        (time.monotonic(), match.group("region"), match.group("service"))
                    )
            return app(environ, start_response)

        self._server = make_server(
            self._ip_address, self._port, logged, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    def ec2_times(self) -> list[float]:
        with self._lock:
            return sorted(t for t, _, service in self.arrivals if service == "ec2")


@pytest.fixture
def logging_moto() -> Iterator[tuple[LoggingMotoServer, str]]:
    server = LoggingMotoServer()
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield server, f"http://{host}:{port}"
    finally:
        server.stop()


def _workers(database_url: str, endpoint: str, count: int, rate: float) -> list[Any]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.aws.budget_worker",
                database_url,
                endpoint,
                str(count),
                str(rate),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return procs


def test_two_processes_share_one_rate_as_aws_sees_it(
    database_url: str, logging_moto: tuple[LoggingMotoServer, str]
) -> None:
    server, endpoint = logging_moto
    rate, count = 20.0, 40  # 80 calls; a bucket of 20 at 20/s: at least 3 s at AWS
    procs = _workers(database_url, endpoint, count, rate)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.wait(timeout=120) == 0

    times = server.ec2_times()
    assert len(times) == 2 * count
    span = times[-1] - times[0]
    assert span >= (2 * count - rate) / rate * 0.9, f"80 calls in {span:.2f} s"
    # No second at AWS saw more than the bucket plus one second of refill.
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 2 * rate + 2, f"{busiest} EC2 requests in one second"


def test_throttling_halves_the_rate_for_every_caller(
    database_url: str, logging_moto: tuple[LoggingMotoServer, str]
) -> None:
    _, endpoint = logging_moto
    budget = PostgresBudget(database_url, rates={"ec2": 20.0})
    session = aws.AccountSession(
        ACCOUNT,
        ROLE,
        external_id="budget-test",
        purpose=aws.Purpose.CLEANUP,
        settings=Settings(aws_endpoint_url=endpoint, aws_max_attempts=3),
        base_session=boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing"),
        budget=budget,
    )
    faults.throttle(session.events, "ec2", "DescribeVolumes", times=1)
    before = aws_budget.STATS.snapshot()[2].get("ec2", 0)
    session.client("ec2", "us-east-1").describe_volumes()  # throttled once, then retried

    key = aws.BudgetKey(ACCOUNT, "us-east-1", "ec2")
    state = budget.state(key)
    assert state is not None
    _, stored_rate = state
    assert stored_rate <= 10.5  # halved from 20 (and regained at most a little since)
    assert aws_budget.STATS.snapshot()[2]["ec2"] == before + 1

    # Another process's budget on the same database sees the same, lowered rate.
    assert PostgresBudget(database_url, rates={"ec2": 20.0}).state(key) == state


def test_no_budget_row_is_shared_across_accounts_or_regions(database_url: str) -> None:
    budget = PostgresBudget(database_url, rates={"ec2": 1.0}, burst_seconds=1.0)
    slept: list[float] = []
    budget._sleep = slept.append  # type: ignore[method-assign]
    for account, region in (
        ("111111111111", "us-east-1"),
        ("222222222222", "us-east-1"),
        ("111111111111", "eu-west-1"),
    ):
        assert budget.take(aws.BudgetKey(account, region, "ec2")) == 0.0
    assert slept == []
