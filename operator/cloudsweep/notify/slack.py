"""Slack incoming webhooks: a message as Block Kit JSON, posted to a checked, pinned address.

Called by ``notify.dispatch`` (one call per event and webhook, inside its retrying worker). The URL
checks, pinning and time-outs are ``notify.urls``'s; Slack's limits (150 characters of header,
3,000 of section text, 10 fields) are kept here, and text from the database is escaped so a
resource name cannot ping ``@channel`` or forge a link.
"""

from __future__ import annotations

from typing import Any

from cloudsweep import redaction
from cloudsweep.notify import urls
from cloudsweep.notify.events import Message, Tone

_EMOJI = {Tone.GOOD: ":white_check_mark:", Tone.WARNING: ":warning:", Tone.BAD: ":x:"}


def escape(text: str) -> str:
    """Slack's three control characters; ``<!channel>`` and ``<url|label>`` need a literal ``<``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload(message: Message) -> dict[str, Any]:
    """The webhook body: ``text`` (notifications, old clients) and ``blocks``."""
    emoji = _EMOJI.get(message.tone, ":information_source:")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(message.subject, 150), "emoji": True},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(f"{emoji} {escape(message.summary)}", 3000)},
        },
    ]
    if message.facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": _cut(f"*{escape(label)}*\n{escape(value)}", 2000),
                    }
                    for label, value in message.facts[:10]
                ],
            }
        )
    if message.items:
        lines = "\n".join(f"• {escape(item)}" for item in message.items)
        title = f"*{escape(message.items_title)}*\n" if message.items_title else ""
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(title + lines, 3000)}}
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Sent by CloudSweep"}]}
    )
    return {"text": _cut(f"{message.subject}: {message.summary}", 3000), "blocks": blocks}


def send(
    url: str,
    message: Message,
    *,
    timeouts: urls.Timeouts = urls.Timeouts(),  # noqa: B008 - frozen
    allow_private: bool = False,
    resolver: urls.Resolver = urls.system_resolver,
) -> None:
    """Post ``message``; raises ``urls.WebhookRefused`` or ``urls.DeliveryError``."""
    redaction.remember(urls.secret_part(url))
    urls.post_json(
        url, payload(message), timeouts=timeouts, allow_private=allow_private, resolver=resolver
    )
