"""Notifications: Slack incoming webhooks and e-mail, per each user's ``notification_settings``.

The operator creates one ``Notifier`` per process and calls ``notify_scan`` after every scan,
``notify_cleanup`` after every cleanup run and ``send_report`` from its weekly and monthly timers;
each call returns at once and never fails the caller.
"""

from cloudsweep.notify.dispatch import Notifier, NotifySettings, Period, RetryPolicy, Stats
from cloudsweep.notify.events import Event, EventKind, Message
from cloudsweep.notify.urls import (
    DeliveryError,
    Timeouts,
    WebhookRefused,
    check_webhook_url,
    resolve_webhook,
)

__all__ = [
    "DeliveryError",
    "Event",
    "EventKind",
    "Message",
    "Notifier",
    "NotifySettings",
    "Period",
    "RetryPolicy",
    "Stats",
    "Timeouts",
    "WebhookRefused",
    "check_webhook_url",
    "resolve_webhook",
]
