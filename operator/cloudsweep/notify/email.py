"""E-mail over SMTP: one message per recipient, plain text with an HTML alternative.

Called by ``notify.dispatch`` (inside its retrying worker). The server comes from ``SmtpServer``
(``CLOUDSWEEP_SMTP_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD``, ``_FROM``, ``_STARTTLS``, ``_SSL``,
read by ``dispatch.NotifySettings``); it is the operator's own, so its address is not checked like a
tenant's webhook. Each recipient gets a message of their own: no one sees who else is told.
"""

from __future__ import annotations

import html
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from cloudsweep.notify.events import Message
from cloudsweep.notify.urls import DeliveryError, Timeouts


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int = 587
    user: str | None = None
    password: str | None = None
    sender: str = "cloudsweep@localhost"
    starttls: bool = True  # upgrade with STARTTLS (port 587); False for a local relay
    ssl: bool = False  # implicit TLS (port 465)


def _header(text: str) -> str:
    """No line breaks or control characters in a header, whatever a resource is named."""
    cleaned = "".join(" " if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)
    return cleaned[:200]


def build(message: Message, *, sender: str, recipient: str) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = _header(f"[CloudSweep] {message.subject}")
    mail["From"] = _header(sender)
    mail["To"] = _header(recipient)
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain="cloudsweep")
    lines = [message.summary, ""]
    width = max((len(label) for label, _ in message.facts), default=0)
    lines += [f"{label.ljust(width)}  {value}" for label, value in message.facts]
    if message.items:
        lines += ["", message.items_title or "Details", *(f"- {item}" for item in message.items)]
    lines += [
        "",
        "-- ",
        "Sent by CloudSweep. Change what you receive in your notification settings.",
    ]
    mail.set_content("\n".join(lines))
    e = html.escape
    facts = "".join(
        f"<tr><th align='left' style='padding:2px 12px 2px 0;color:#6b7280'>{e(label)}</th>"
        f"<td>{e(value)}</td></tr>"
        for label, value in message.facts
    )
    items = ""
    if message.items:
        items = (
            f"<h3>{e(message.items_title or 'Details')}</h3><ul>"
            + "".join(f"<li>{e(item)}</li>" for item in message.items)
            + "</ul>"
        )
    mail.add_alternative(
        "<html><body style='font-family:system-ui,sans-serif'>"
        f"<h2>{e(message.subject)}</h2><p>{e(message.summary)}</p>"
        f"<table>{facts}</table>{items}"
        "<p style='color:#6b7280;font-size:12px'>Sent by CloudSweep.</p></body></html>",
        subtype="html",
    )
    return mail


def send(
    server: SmtpServer,
    message: Message,
    recipient: str,
    *,
    timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen
) -> None:
    """Deliver one message; raises ``DeliveryError`` (temporary failures are retryable)."""
    mail = build(message, sender=server.sender, recipient=recipient)
    deadline = time.monotonic() + timeouts.total
    client: smtplib.SMTP | None = None
    try:
        if server.ssl:
            client = smtplib.SMTP_SSL(
                server.host,
                server.port,
                timeout=timeouts.connect,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=timeouts.connect)
        if client.sock is not None:
            client.sock.settimeout(max(0.01, deadline - time.monotonic()))
        client.ehlo()
        if server.starttls and not server.ssl:
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if server.user:
            client.login(server.user, server.password or "")
        client.send_message(mail, from_addr=server.sender, to_addrs=[recipient])
    except smtplib.SMTPResponseException as error:
        text = error.smtp_error
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        raise DeliveryError(
            f"SMTP {server.host}:{server.port} answered {error.smtp_code} {text[:200]}",
            retryable=400 <= error.smtp_code < 500,
        ) from None
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        raise DeliveryError(
            f"SMTP {server.host}:{server.port} refused the recipient ({codes})",
            retryable=all(400 <= code < 500 for code in codes),
        ) from None
    except (TimeoutError, smtplib.SMTPException, OSError) as error:
        raise DeliveryError(
            f"SMTP {server.host}:{server.port}: {error or type(error).__name__}", retryable=True
        ) from None
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
