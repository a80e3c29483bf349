"""Slack payloads, and posting them: pinned address, no redirects, bounded time-outs."""

from __future__ import annotations

import time

import pytest

from cloudsweep.notify import slack, urls
from cloudsweep.notify.events import Message, Tone

from .conftest import MakeResolver, Receiver

MESSAGE = Message(
    subject="Scan completed: account 111111111111",
    summary="Found <!channel> waste & more in <https://evil.example|click>",
    facts=(("Account", "111111111111 (payments <prod>)"), ("Monthly waste", "$30.00")),
    items_title="The most expensive",
    items=("$20.00/month ebs-volume vol-0001",),
    tone=Tone.WARNING,
)
FAST = urls.Timeouts(connect=0.5, total=0.6)


def test_payload_has_blocks_and_escapes_what_the_database_says() -> None:
    body = slack.payload(MESSAGE)
    types = [block["type"] for block in body["blocks"]]
    assert types == ["header", "section", "section", "section", "context"]
    assert body["blocks"][0]["text"]["text"] == MESSAGE.subject
    text = body["blocks"][1]["text"]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "&amp;" in text
    assert "payments &lt;prod&gt;" in body["blocks"][2]["fields"][0]["text"]
    assert body["text"].startswith(MESSAGE.subject)


def test_payload_respects_slack_limits() -> None:
    long = Message(subject="x" * 500, summary="y" * 5000, facts=(("a", "b"),) * 15)
    body = slack.payload(long)
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    assert len(body["blocks"][1]["text"]["text"]) <= 3000
    assert len(body["blocks"][2]["fields"]) == 10


def test_post_goes_to_the_pinned_address_with_the_original_host(
    receiver: Receiver, stub_resolver: MakeResolver
) -> None:
    port = receiver.url.rsplit(":", 1)[1]
    resolve = stub_resolver({"hooks.example.test": ["127.0.0.1"]})
    slack.send(
        f"http://hooks.example.test:{port}/services/T/B/secret",
        MESSAGE,
        allow_private=True,
        resolver=resolve,
        timeouts=FAST,
    )
    [request] = receiver.requests
    assert request.path == "/services/T/B/secret"
    assert request.headers["Host"] == f"hooks.example.test:{port}"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.body["blocks"][0]["type"] == "header"


def test_without_the_test_switch_the_local_receiver_is_refused(receiver: Receiver) -> None:
    with pytest.raises(urls.WebhookRefused):
        slack.send(receiver.url + "/hook", MESSAGE, timeouts=FAST)
    assert receiver.count() == 0


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.behaviour = "redirect"
    with pytest.raises(urls.DeliveryError, match="redirect") as failed:
        slack.send(receiver.url + "/hook", MESSAGE, allow_private=True, timeouts=FAST)
    assert failed.value.retryable is False
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_a_failing_receiver_is_a_retryable_error(receiver: Receiver) -> None:
    receiver.behaviour = "fail"
    with pytest.raises(urls.DeliveryError, match="answered 500") as failed:
        slack.send(receiver.url + "/hook", MESSAGE, allow_private=True, timeouts=FAST)
    assert failed.value.retryable is True
    assert "/hook" not in str(failed.value)  # the secret path is not in messages or logs


def test_a_slow_receiver_times_out_within_the_total_bound(receiver: Receiver) -> None:
    receiver.behaviour = "slow"
    receiver.delay = 3.0
    started = time.monotonic()
    with pytest.raises(urls.DeliveryError, match="timed out") as failed:
        slack.send(receiver.url + "/hook", MESSAGE, allow_private=True, timeouts=FAST)
    assert time.monotonic() - started < 1.5
    assert failed.value.retryable is True


def test_nothing_listening_is_a_retryable_connection_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(urls.DeliveryError) as failed:
        slack.send(f"http://127.0.0.1:{port}/x", MESSAGE, allow_private=True, timeouts=FAST)
    assert failed.value.retryable is True
