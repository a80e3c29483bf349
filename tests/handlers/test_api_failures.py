"""The operator against a failing Kubernetes API server: errors (5xx, 409, 422), hung requests,
silent watches, an unreachable server. Faults are injected into KMock's emulator before it applies
a request (``Cluster.inject``), so a rejected write is really not written."""

from __future__ import annotations

import itertools
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from cloudsweep.demo import world as demo_world
from cloudsweep.handlers.resilience import RetryBackoffs, guard_timer_patches

from .conftest import Cluster, alive, condition, wait_for
from .test_awsaccounts import account_spec
from .test_schedules_and_policies import connected_account, schedule_spec

NS = "team-a"
API = "/apis/cloudsweep.io/v1alpha1/namespaces/team-a"
# The operator's retries of a failed API call, fast here so that many of them fit in a test:
# more failures in a row than kopf's default retries (9 attempts) would survive.
FAST_RETRIES = {"CLOUDSWEEP_KUBE_RETRY_MAX_BACKOFF_SECONDS": "0.2"}
FAILURES = 10


def ready_account(cluster: Cluster, name: str, timeout: float = 30) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (
                (o := cluster.get("awsaccounts", NS, name))
                and (condition(o, "Ready") or {}).get("status") == "True"
                and o.get("status", {}).get("externalId")
                and o
            ),
            timeout=timeout,
            what=f"{name} Ready",
        )
    )


def scans_this_month(operator: Any) -> int:
    org = operator.store.organization(NS)
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return int(operator.store.scans_since(org.id, start))


def api_errors(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and text in r.getMessage()
    ]


def test_retry_backoffs_never_run_out_and_start_afresh_for_each_call() -> None:
    backoffs = RetryBackoffs(cap=20)
    assert list(itertools.islice(backoffs, 8)) == [1, 2, 5, 10, 20, 20, 20, 20]
    assert list(itertools.islice(backoffs, 3)) == [1, 2, 5]  # kopf iterates it per API call
    assert not hasattr(backoffs, "__len__")  # kopf then sets no limit on the attempts
    assert guard_timer_patches() and guard_timer_patches()  # idempotent


# --- 1. transient 5xx ------------------------------------------------------------------------


@pytest.mark.parametrize("operator_env", [FAST_RETRIES], ids=["fast-retries"])
@pytest.mark.parametrize("applied", [False, True], ids=["rejected", "applied-answer-lost"])
def test_5xx_on_status_patches_are_retried_and_nothing_runs_twice(
    cluster: Cluster, operator: Any, world: demo_world.DemoWorld, applied: bool
) -> None:
    """More failures in a row than kopf's default retries survive: the operator keeps retrying,
    the account gets Ready, the run-now scan runs once and its outcome is published."""
    cluster.create_namespace(NS, "uid-team-a")
    account_fault = cluster.inject(
        method="PATCH",
        path=f"{API}/awsaccounts/prod/status$",
        status=503,
        times=FAILURES,
        applied=applied,
    )
    connected_account(cluster, world)
    ready_account(cluster, "prod")
    wait_for(
        lambda: account_fault.hits == FAILURES, what="every failure"
    )  # applied: Ready at the 1st

    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec())
    wait_for(
        lambda: cluster.get("scanschedules", NS, "nightly")["status"]["nextScheduleTime"],
        what="the schedule ticks",
    )
    run_now_fault = cluster.inject(
        method="PATCH",
        path=f"{API}/scanschedules/nightly/status$",
        body="lastRunNow",
        status=500,
        reason="InternalError",
        times=FAILURES,
        applied=applied,
    )
    cluster.patch(
        "scanschedules",
        NS,
        "nightly",
        {"metadata": {"annotations": {"cloudsweep.io/run-now": "go"}}},
    )
    status = wait_for(
        lambda: (
            (s := cluster.get("scanschedules", NS, "nightly")["status"]).get("lastRunOutcome")
            == "completed"
            and s
        ),
        timeout=60,
        what="the scan's outcome",
    )
    assert run_now_fault.hits == FAILURES
    assert status["lastRunNow"] == "go"
    time.sleep(2)  # more ticks: none may start the scan again
    assert scans_this_month(operator) == 1
    assert alive(operator)


@pytest.mark.parametrize("operator_env", [FAST_RETRIES], ids=["fast-retries"])
def test_5xx_on_list_and_watch_are_retried(
    cluster: Cluster,
    world: demo_world.DemoWorld,
    request: pytest.FixtureRequest,
    operator_env: dict[str, str],
) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))
    listing = cluster.inject(method="GET", path=r"/awsaccounts$", watch=False, times=FAILURES)
    watching = cluster.inject(
        method="GET",
        path=r"/awsaccounts$",
        watch=True,
        status=500,
        reason="InternalError",
        times=FAILURES,
    )
    operator = request.getfixturevalue("operator")
    ready_account(cluster, "prod")
    # The watch works once its errors are over: an account created now is seen.
    wait_for(lambda: watching.hits == FAILURES, what="the watch errors")
    cluster.create("awsaccounts", "AwsAccount", NS, "staging", account_spec(world))
    ready_account(cluster, "staging")
    assert listing.hits == FAILURES
    assert alive(operator)


@pytest.mark.parametrize(
    "fault",
    [
        {"stream_error": 500, "reason": "InternalError"},
        {"status": 400, "reason": "BadRequest"},
        {"status": 410, "reason": "Gone"},
    ],
    ids=["error-event-500", "http-400", "http-410"],
)
def test_a_watch_error_kopf_gives_up_on_is_followed_by_a_new_list_and_watch(
    cluster: Cluster,
    world: demo_world.DemoWorld,
    request: pytest.FixtureRequest,
    operator_env: dict[str, str],
    fault: dict[str, Any],
) -> None:
    """kopf 1.45 ends a resource's watcher for good (logged once, /healthz still fine: an
    operator alive but deaf) on an ERROR event other than 410 in the stream and on a 4xx it
    does not retry; the resilience hook lists and watches again instead."""
    cluster.create_namespace(NS, "uid-team-a")
    failed = cluster.inject(method="GET", path=r"/awsaccounts$", watch=True, **fault)
    operator = request.getfixturevalue("operator")
    wait_for(lambda: failed.hits, what="the failed watch")
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))
    ready_account(cluster, "prod", timeout=30)
    assert alive(operator)


# --- 2. 409 Conflict -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [("/status$", "externalId"), ("$", "last-handled-configuration")],
    ids=["status-patch", "metadata-patch"],
)
def test_a_conflict_on_a_patch_still_ends_in_the_right_status(
    cluster: Cluster, operator: Any, world: demo_world.DemoWorld, path: str, body: str
) -> None:
    """A 409 is not retried by kopf's HTTP client; what the handler decided must still land."""
    cluster.create_namespace(NS, "uid-team-a")
    conflict = cluster.inject(
        method="PATCH",
        path=f"{API}/awsaccounts/prod{path}",
        body=body,
        status=409,
        reason="Conflict",
    )
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))
    obj = ready_account(cluster, "prod", timeout=20)
    assert conflict.hits == 1
    org = operator.store.organization(NS)
    account = operator.store.account(org.id, world.account_id)
    assert obj["status"]["externalId"] == account.external_id
    assert condition(obj, "Connected")["status"] == "True"
    assert obj["status"]["observedGeneration"] == 1


@pytest.mark.parametrize("status", [409, 422])
def test_a_refused_run_now_status_does_not_start_the_scan_twice(
    cluster: Cluster, operator: Any, world: demo_world.DemoWorld, status: int
) -> None:
    """The status patch recording the run-now is refused: the schedule's timer goes on, knows
    the run-now was handled, and writes it down again."""
    cluster.create_namespace(NS, "uid-team-a")
    connected_account(cluster, world)
    cluster.create("scanschedules", "ScanSchedule", NS, "nightly", schedule_spec())
    wait_for(
        lambda: cluster.get("scanschedules", NS, "nightly")["status"]["nextScheduleTime"],
        what="the schedule ticks",
    )
    refused = cluster.inject(
        method="PATCH",
        path=f"{API}/scanschedules/nightly/status$",
        body="lastRunNow",
        status=status,
        times=2,
    )
    cluster.patch(
        "scanschedules",
        NS,
        "nightly",
        {"metadata": {"annotations": {"cloudsweep.io/run-now": "go"}}},
    )
    wait_for(
        lambda: (
            cluster.get("scanschedules", NS, "nightly")["status"].get("lastRunOutcome")
            == "completed"
        ),
        timeout=60,
        what="the scan's outcome",
    )
    assert refused.hits == 2
    assert cluster.get("scanschedules", NS, "nightly")["status"]["lastRunNow"] == "go"
    time.sleep(2)  # more ticks: none may start the scan again
    assert scans_this_month(operator) == 1


# --- 3. 422 Unprocessable --------------------------------------------------------------------


def test_a_rejected_status_is_logged_and_retried_slowly_and_others_are_served(
    cluster: Cluster, operator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The API server refuses one schedule's status (422, as for a status its schema rejects):
    the operator says so in its log, keeps serving the other schedule, does not hammer the API
    server, and the status lands once the server accepts it again."""
    caplog.set_level(logging.INFO)
    cluster.create_namespace(NS, "uid-team-a")
    rejected = f"{API}/scanschedules/bad/status$"
    cluster.inject(method="PATCH", path=rejected, status=422, reason="Invalid", times=None)
    cluster.create("scanschedules", "ScanSchedule", NS, "bad", schedule_spec())
    cluster.create("scanschedules", "ScanSchedule", NS, "good", schedule_spec())
    wait_for(
        lambda: condition(cluster.get("scanschedules", NS, "good"), "Ready"), what="good Ready"
    )
    wait_for(lambda: cluster.requests("PATCH", rejected), what="a rejected patch")
    before = len(cluster.requests("PATCH", rejected))
    time.sleep(3)
    during = len(cluster.requests("PATCH", rejected)) - before
    assert during <= 3 + 1, f"{during} status patches in 3 s: a hot loop"  # one a tick (1 s)
    assert api_errors(caplog, "422"), "the rejection is not in the log"
    assert "status" not in cluster.get("scanschedules", NS, "bad")

    cluster.clear_faults()
    wait_for(
        lambda: condition(cluster.get("scanschedules", NS, "bad"), "Ready"),
        timeout=15,
        what="bad's status once accepted",
    )
    assert alive(operator)


@pytest.mark.parametrize("kind", ["scanschedules", "cleanuppolicies"])
def test_a_lost_invalid_spec_condition_is_written_again(
    cluster: Cluster, operator: Any, kind: str
) -> None:
    """The status patch carrying an object's InvalidSpec condition is refused once: the next
    timer tick notices the condition is missing and writes it, not a Ready one."""
    cluster.create_namespace(NS, "uid-team-a")
    lost = cluster.inject(
        method="PATCH", path=f"{API}/{kind}/bad/status$", body="InvalidSpec", status=422
    )
    if kind == "scanschedules":
        cluster.create("scanschedules", "ScanSchedule", NS, "bad", schedule_spec(schedule="x"))
    else:
        spec = {"resourceType": "elastic-ip", "action": "delete", "accountSelector": {}}
        cluster.create("cleanuppolicies", "CleanupPolicy", NS, "bad", spec)
    ready = wait_for(
        lambda: condition(cluster.get(kind, NS, "bad"), "Ready"),
        timeout=15,
        what="the InvalidSpec condition, written again",
    )
    assert lost.hits == 1
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert alive(operator)


# --- 4. hung requests and silent watches -----------------------------------------------------

SHORT_TIMEOUTS = {
    "CLOUDSWEEP_KUBE_REQUEST_TIMEOUT_SECONDS": "1",
    "CLOUDSWEEP_KUBE_WATCH_INACTIVITY_SECONDS": "1.5",
    "CLOUDSWEEP_KUBE_WATCH_TIMEOUT_SECONDS": "20",
    **FAST_RETRIES,
}


@pytest.mark.parametrize("operator_env", [SHORT_TIMEOUTS], ids=["short-timeouts"])
@pytest.mark.parametrize("headers", [True, False], ids=["silent-watch", "unanswered-watch"])
def test_a_stalled_watch_is_replaced_and_new_objects_are_seen(
    cluster: Cluster,
    world: demo_world.DemoWorld,
    request: pytest.FixtureRequest,
    operator_env: dict[str, str],
    headers: bool,
) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    stalled = cluster.inject(
        method="GET", path=r"/awsaccounts$", watch=True, stall=True, stall_headers=headers
    )
    operator = request.getfixturevalue("operator")
    wait_for(lambda: stalled.hits, what="the stalled watch")
    started = time.monotonic()
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))
    ready_account(cluster, "prod", timeout=15)
    assert time.monotonic() - started < 10
    assert alive(operator)
    watches = [r for r in cluster.requests("GET", "/awsaccounts$") if r.params.get("watch")]
    assert len(watches) >= 2 and {r.params.get("timeoutSeconds") for r in watches} == {"20"}


@pytest.mark.parametrize("operator_env", [SHORT_TIMEOUTS], ids=["short-timeouts"])
def test_a_hung_patch_times_out_and_is_retried(
    cluster: Cluster, operator: Any, world: demo_world.DemoWorld
) -> None:
    """The API server never answers the patch that records the handler as done: the request
    times out and is sent again, instead of holding the object's worker for good."""
    cluster.create_namespace(NS, "uid-team-a")
    done = "last-handled-configuration"
    hung = cluster.inject(method="PATCH", path=f"{API}/awsaccounts/prod$", body=done, stall=True)
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))
    ready_account(cluster, "prod", timeout=15)
    wait_for(
        lambda: (
            f"cloudsweep.io/{done}"
            in cluster.get("awsaccounts", NS, "prod")["metadata"].get("annotations", {})
        ),
        timeout=10,
        what="the handler recorded as done",
    )
    assert hung.hits == 1
    # The hung patch, then at least one more: on a loaded machine the retry can also outlast the
    # 1 s request timeout and be sent a third time (seen once in 30 runs at load 12).
    assert (
        len([r for r in cluster.requests("PATCH", f"{API}/awsaccounts/prod$") if done in r.text])
        >= 2
    )


# --- 5. an unreachable API server ------------------------------------------------------------


@pytest.mark.parametrize("operator_env", [FAST_RETRIES], ids=["fast-retries"])
def test_an_unreachable_api_server_at_start_up_and_later_only_delays_the_operator(
    cluster: Cluster,
    world: demo_world.DemoWorld,
    request: pytest.FixtureRequest,
    operator_env: dict[str, str],
) -> None:
    """Down for longer than kopf's default retries would last at this pace (9 attempts): the
    operator waits, then serves; the same after an outage while it runs."""
    cluster.create_namespace(NS, "uid-team-a")
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))
    cluster.down()
    operator = request.getfixturevalue("operator")
    time.sleep(3)
    assert alive(operator)
    cluster.up()
    ready_account(cluster, "prod")

    cluster.down()
    time.sleep(3)
    cluster.up()
    cluster.create("awsaccounts", "AwsAccount", NS, "staging", account_spec(world))
    ready_account(cluster, "staging")
    assert alive(operator)
