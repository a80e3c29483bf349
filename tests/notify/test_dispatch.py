"""The Notifier: each user's events, channels and thresholds; never blocking a scan or cleanup."""

from __future__ import annotations

import email
import email.policy
import logging
import threading
import time
from decimal import Decimal

import pytest

from cloudsweep.cleaning import ItemResult, RunReport
from cloudsweep.domain import ExecutionMethod
from cloudsweep.notify import (
    Notifier,
    NotifySettings,
    Period,
    RetryPolicy,
    Timeouts,
    dispatch,
    urls,
)
from cloudsweep.policies import Plan

from .conftest import Mailbox, MakeResolver, Receiver, Tenant

FAST = Timeouts(connect=0.5, total=0.5)


def no_sleep(seconds: float) -> None:
    pass


def make_notifier(
    database_url: str, smtp: Mailbox | None = None, *, attempts: int = 3, **settings: object
) -> Notifier:
    config = NotifySettings(
        smtp_host="127.0.0.1" if smtp else None,
        smtp_port=smtp.port if smtp else 587,
        smtp_from="cloudsweep@example.com",
        smtp_starttls=False,
        notify_allow_private=True,  # the receivers are plain http on 127.0.0.1
        **settings,
    )
    return Notifier(
        database_url,
        settings=config,
        timeouts=FAST,
        retry=RetryPolicy(attempts=attempts, initial=0.01, maximum=0.05),
        sleep=no_sleep,
    )


def subjects(mailbox: Mailbox) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for _, recipients, raw in mailbox.messages:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        for recipient in recipients:
            found.setdefault(recipient, []).append(" ".join(str(parsed["Subject"]).split()))
    return {k: sorted(v) for k, v in found.items()}


def test_each_user_gets_the_events_and_channels_they_chose_above_their_threshold(
    tenant: Tenant, receiver: Receiver, smtp_server: Mailbox
) -> None:
    tenant.user(
        "alice@example.com",
        slack_enabled=True,
        slack_webhook_url=receiver.url + "/alice",
        min_waste_amount_notify=Decimal("5.00"),
    )
    # The scan's new waste is $30/month: below Bob's threshold, so no high-value message.
    tenant.user("bob@example.com", min_waste_amount_notify=Decimal("1000.00"))
    # Slack disabled (the URL is kept but unused), e-mail disabled: nothing at all.
    tenant.user(
        "carol@example.com",
        email_enabled=False,
        slack_enabled=False,
        slack_webhook_url=receiver.url + "/carol",
    )
    # Only high-value messages.
    tenant.user("dave@example.com", scan_completed=False, min_waste_amount_notify=Decimal("0"))
    # No settings row: not told.
    tenant.store.ensure_user(tenant.organization.id, "erin@example.com")
    outcome = tenant.scan(["10.00", "20.00"])

    notifier = make_notifier(tenant.store.url, smtp_server)
    try:
        notifier.notify_scan(outcome)
        assert notifier.flush(20)
    finally:
        notifier.close()

    mail = subjects(smtp_server)
    assert set(mail) == {"alice@example.com", "bob@example.com", "dave@example.com"}
    assert [s.split(":")[0] for s in mail["alice@example.com"]] == [
        "[CloudSweep] New waste",
        "[CloudSweep] Scan completed",
    ]
    assert [s.split(":")[0] for s in mail["bob@example.com"]] == ["[CloudSweep] Scan completed"]
    assert [s.split(":")[0] for s in mail["dave@example.com"]] == ["[CloudSweep] New waste"]
    assert "$30.00/month" in mail["dave@example.com"][0]
    assert sorted(r.path for r in receiver.requests) == ["/alice", "/alice"]
    headers = sorted(r.body["blocks"][0]["text"]["text"] for r in receiver.requests)
    assert headers[0].startswith("New waste: $30.00/month")
    assert headers[1].startswith("Scan completed: account 111111111111")
    assert notifier.stats.delivered == 6
    assert notifier.stats.failed == notifier.stats.dropped == 0


def test_waste_seen_again_is_not_high_value_news(tenant: Tenant, smtp_server: Mailbox) -> None:
    tenant.user("dave@example.com", scan_completed=False, min_waste_amount_notify=Decimal("0"))
    first = tenant.scan(["10.00", "20.00"])
    second = tenant.scan(["10.00", "20.00"])
    notifier = make_notifier(tenant.store.url, smtp_server)
    try:
        notifier.notify_scan(first)
        notifier.notify_scan(second)
        assert notifier.flush(20)
    finally:
        notifier.close()
    assert len(smtp_server.messages) == 1


def test_one_webhook_shared_by_two_users_gets_each_event_once(
    tenant: Tenant, receiver: Receiver
) -> None:
    for user in ("alice@example.com", "bob@example.com"):
        tenant.user(
            user,
            email_enabled=False,
            slack_enabled=True,
            slack_webhook_url=receiver.url + "/team",
            high_value_waste_found=False,
        )
    notifier = make_notifier(tenant.store.url)
    try:
        notifier.notify_scan(tenant.scan(["10.00"]))
        assert notifier.flush(20)
    finally:
        notifier.close()
    assert receiver.count() == 1


def test_a_slow_receiver_never_blocks_the_scan_and_is_retried_a_bounded_number_of_times(
    tenant: Tenant, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.behaviour = "slow"
    receiver.delay = 2.0
    tenant.user(
        "alice@example.com",
        email_enabled=False,
        slack_enabled=True,
        slack_webhook_url=receiver.url + "/services/T/B/secret-token",
        high_value_waste_found=False,
    )
    outcome = tenant.scan(["10.00"])
    notifier = make_notifier(tenant.store.url, attempts=2)
    try:
        started = time.perf_counter()
        notifier.notify_scan(outcome)
        elapsed = time.perf_counter() - started
        assert elapsed < 0.05, f"notify_scan took {elapsed:.4f} s"
        with caplog.at_level(logging.INFO, logger="cloudsweep.notify"):
            assert notifier.flush(20)
    finally:
        notifier.close()
    assert receiver.count() == 2
    assert notifier.stats.attempts == 2
    assert notifier.stats.failed == 1
    assert "could not be delivered" in caplog.text and "timed out" in caplog.text
    assert "secret-token" not in caplog.text
    # The scan itself is untouched.
    assert tenant.store.latest_scan(tenant.account.id).status == "completed"


def test_a_failing_receiver_is_retried_then_logged(
    tenant: Tenant, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.behaviour = "fail"
    tenant.user(
        "alice@example.com",
        email_enabled=False,
        slack_enabled=True,
        slack_webhook_url=receiver.url + "/hook",
        high_value_waste_found=False,
    )
    notifier = make_notifier(tenant.store.url, attempts=3)
    try:
        with caplog.at_level(logging.INFO, logger="cloudsweep.notify"):
            notifier.notify_scan(tenant.scan(["10.00"]))
            assert notifier.flush(20)
    finally:
        notifier.close()
    assert receiver.count() == 3
    assert notifier.stats.failed == 1
    assert caplog.text.count("retrying") == 2
    assert "answered 500" in caplog.text


def test_redirects_are_not_followed_nor_retried(
    tenant: Tenant, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.behaviour = "redirect"
    tenant.user(
        "alice@example.com",
        email_enabled=False,
        slack_enabled=True,
        slack_webhook_url=receiver.url + "/hook",
        high_value_waste_found=False,
    )
    notifier = make_notifier(tenant.store.url, attempts=3)
    try:
        with caplog.at_level(logging.WARNING, logger="cloudsweep.notify"):
            notifier.notify_scan(tenant.scan(["10.00"]))
            assert notifier.flush(20)
    finally:
        notifier.close()
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert notifier.stats.failed == 1
    assert "redirects are not followed" in caplog.text


def test_a_tenant_webhook_pointing_inside_is_refused_not_called(
    tenant: Tenant, stub_resolver: MakeResolver, caplog: pytest.LogCaptureFixture
) -> None:
    for user, url in [
        ("mallory@example.com", "https://169.254.169.254/latest/meta-data/"),
        ("trudy@example.com", "https://kubernetes.default.svc/api"),
        ("oscar@example.com", "https://sneaky.example.com/hook"),  # resolves to a private address
        ("peggy@example.com", "http://hooks.slack.com/services/x"),
    ]:
        tenant.user(
            user,
            email_enabled=False,
            slack_enabled=True,
            slack_webhook_url=url,
            high_value_waste_found=False,
        )
    connected: list[object] = []
    notifier = Notifier(
        tenant.store.url,
        settings=NotifySettings(),  # production defaults: allow_private is off
        timeouts=FAST,
        retry=RetryPolicy(attempts=3, initial=0.01, maximum=0.05),
        resolver=stub_resolver({"sneaky.example.com": ["10.0.0.5"]}),
        sleep=no_sleep,
    )
    original = urls.socket.create_connection
    urls.socket.create_connection = lambda *a, **k: connected.append(a) or original(*a, **k)  # type: ignore[assignment]
    try:
        with caplog.at_level(logging.WARNING, logger="cloudsweep.notify"):
            notifier.notify_scan(tenant.scan(["10.00"]))
            assert notifier.flush(20)
    finally:
        urls.socket.create_connection = original  # type: ignore[assignment]
        notifier.close()
    assert connected == []
    assert notifier.stats.refused == 4
    assert notifier.stats.attempts == 4  # refused at once, never retried
    for reason in ("link-local", "'.svc' are internal", "10.0.0.5 is a private", "only https"):
        assert reason in caplog.text


def test_a_full_queue_drops_and_logs_instead_of_blocking(caplog: pytest.LogCaptureFixture) -> None:
    pool = dispatch._Pool(workers=1, size=1, name="test")
    gate = threading.Event()
    try:
        assert pool.submit(gate.wait)  # taken by the worker
        time.sleep(0.05)
        assert pool.submit(gate.wait)  # waits in the queue
        started = time.perf_counter()
        assert not pool.submit(gate.wait)  # full: refused at once
        assert time.perf_counter() - started < 0.01
    finally:
        gate.set()
        assert pool.wait_idle(5)
        pool.stop(5)


def test_the_notifier_drops_work_when_its_queue_is_full(
    tenant: Tenant, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.behaviour = "slow"
    tenant.user(
        "alice@example.com",
        email_enabled=False,
        slack_enabled=True,
        slack_webhook_url=receiver.url + "/hook",
    )
    outcome = tenant.scan(["10.00"])
    notifier = make_notifier(tenant.store.url, attempts=1, notify_workers=1, notify_queue_size=2)
    try:
        with caplog.at_level(logging.WARNING, logger="cloudsweep.notify"):
            slowest = 0.0
            for _ in range(20):
                started = time.perf_counter()
                notifier.notify_scan(outcome)
                slowest = max(slowest, time.perf_counter() - started)
            assert slowest < 0.05, f"a notify_scan call took {slowest:.4f} s"
            assert notifier.flush(30)
    finally:
        notifier.close()
    assert notifier.stats.dropped > 0
    assert "notification queue full" in caplog.text


def test_cleanup_completed_goes_to_users_who_want_it(tenant: Tenant, smtp_server: Mailbox) -> None:
    from datetime import UTC, datetime

    tenant.user("alice@example.com")
    tenant.user("bob@example.com", cleanup_completed=False)
    run_id = tenant.store.open_cleanup_run(
        tenant.organization.id,
        dry_run=False,
        method=ExecutionMethod.MANUAL,
        executed_by=None,
        policies=[],
        plan={},
        now=datetime.now(UTC),
    )
    item = tenant.scan(["12.50"]).scan.id
    report = RunReport(
        run_id=run_id,
        dry_run=False,
        plan=Plan(()),
        results=[
            ItemResult(
                item_id=item,
                resource_type="ebs-volume",
                resource_id="vol-0000",
                region="us-east-1",
                account_id="111111111111",
                policy="old-volumes",
                action="delete",
                outcome="succeeded",
                message="deleted",
                monthly_cost=Decimal("12.50"),
            )
        ],
    )
    notifier = make_notifier(tenant.store.url, smtp_server)
    try:
        started = time.perf_counter()
        notifier.notify_cleanup(report)
        assert time.perf_counter() - started < 0.05
        assert notifier.flush(20)
    finally:
        notifier.close()
    mail = subjects(smtp_server)
    assert list(mail) == ["alice@example.com"]
    assert mail["alice@example.com"] == [
        "[CloudSweep] Cleanup completed in team-a: 1 removed, $12.50/month saved"
    ]


def test_weekly_and_monthly_reports_follow_each_users_choice(
    tenant: Tenant, smtp_server: Mailbox
) -> None:
    tenant.user("alice@example.com", monthly_report=False)
    tenant.user("bob@example.com", weekly_report=False)
    tenant.scan(["10.00", "20.00"])
    tenant.store.refresh_views()
    notifier = make_notifier(tenant.store.url, smtp_server)
    try:
        notifier.send_report("team-a", Period.WEEKLY)
        notifier.send_report("team-a", Period.MONTHLY)
        assert notifier.flush(20)
    finally:
        notifier.close()
    mail = subjects(smtp_server)
    assert mail == {
        "alice@example.com": ["[CloudSweep] Weekly report for team-a: $30.00/month of waste"],
        "bob@example.com": ["[CloudSweep] Monthly report for team-a: $30.00/month of waste"],
    }
