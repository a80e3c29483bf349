"""E-mail to a local SMTP server (aiosmtpd): one message per recipient, safe headers."""

from __future__ import annotations

import email
import email.policy

import pytest

from cloudsweep.notify import email as mail
from cloudsweep.notify.events import Message
from cloudsweep.notify.urls import DeliveryError, Timeouts

from .conftest import Mailbox

MESSAGE = Message(
    subject="New waste: $30.00/month in account 111111111111 (payments <prod>)\r\nBcc: x@evil",
    summary="A scan found 2 new waste items <script>alert(1)</script>",
    facts=(("Account", "111111111111"), ("Monthly cost", "$30.00")),
    items_title="The most expensive",
    items=("$20.00/month ebs-volume vol-0001",),
)


def test_a_message_reaches_the_smtp_server_with_recipient_and_subject(
    smtp_server: Mailbox,
) -> None:
    server = mail.SmtpServer(
        host="127.0.0.1", port=smtp_server.port, sender="cloudsweep@example.com", starttls=False
    )
    mail.send(server, MESSAGE, "alice@example.com", timeouts=Timeouts(1, 5))
    [(sender, recipients, raw)] = smtp_server.messages
    assert sender == "cloudsweep@example.com"
    assert recipients == ["alice@example.com"]
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["To"] == "alice@example.com"
    assert parsed["Subject"].startswith("[CloudSweep] New waste: $30.00/month")
    assert "\n" not in parsed["Subject"] and parsed["Bcc"] is None  # no header injection
    plain = parsed.get_body(("plain",)).get_content()
    assert "Monthly cost  $30.00" in plain
    html = parsed.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_an_unreachable_server_is_a_retryable_failure() -> None:
    server = mail.SmtpServer(host="127.0.0.1", port=1, starttls=False)
    with pytest.raises(DeliveryError) as failed:
        mail.send(server, MESSAGE, "alice@example.com", timeouts=Timeouts(0.5, 1))
    assert failed.value.retryable is True
