"""A local HTTP receiver and SMTP server for notification tests, and a tenant with users.

Only 127.0.0.1 is ever contacted. The receiver speaks plain HTTP, which the notifier accepts only
with its test-only ``allow_private`` switch (``CLOUDSWEEP_NOTIFY_ALLOW_PRIVATE``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from cloudsweep import domain
from cloudsweep.scanning import ScanOutcome
from cloudsweep.store import AccountRecord, OrganizationRecord, Store
from cloudsweep.store.notification_settings import NotificationSettingsStore, Preferences
from tests.net import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """Answers each POST as ``behaviour`` says: ``ok``, ``fail`` (500), ``slow``, ``redirect``."""

    url: str = ""
    behaviour: str = "ok"
    delay: float = 2.0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, dict(self.headers.items()), json.loads(raw or b"null"))
                )
            if receiver.behaviour == "slow":
                time.sleep(receiver.delay)
            if receiver.behaviour == "redirect":
                self.send_response(302)
                self.send_header("Location", f"{receiver.url}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 500 if receiver.behaviour == "fail" else 200
            body = b"ok" if status == 200 else b"boom"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (time-out)

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox(port=free_port())
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


# --- a tenant ---------------------------------------------------------------------------------


@dataclass
class Tenant:
    store: Store
    organization: OrganizationRecord
    account: AccountRecord
    settings: NotificationSettingsStore

    def user(self, email: str, **preferences: Any) -> None:
        user_id = self.store.ensure_user(self.organization.id, email)
        self.settings.upsert(user_id, Preferences(**preferences))

    def scan(self, costs: list[str], *, started_at: datetime | None = None) -> ScanOutcome:
        started = started_at or datetime.now(UTC) - timedelta(minutes=5)
        scan = self.store.open_scan(
            self.account.id,
            scan_type=domain.ScanType.FULL,
            regions=["us-east-1"],
            started_at=started,
        )
        self.store.upsert_findings(
            scan,
            [
                domain.Finding(
                    resource_type="ebs-volume",
                    resource_id=f"vol-{index:04d}",
                    region="us-east-1",
                    monthly_cost=Decimal(cost),
                    confidence=90,
                    risk=domain.RiskLevel.LOW,
                    availability_zone="us-east-1a",
                    evidence=("unattached",),
                    safety_checks=(),
                    tags={},
                )
                for index, cost in enumerate(costs)
            ],
        )
        closed = self.store.close_scan(
            scan,
            status=domain.ScanStatus.COMPLETED,
            completed_at=started + timedelta(seconds=3),
            resources_scanned=len(costs),
        )
        return ScanOutcome(scan=closed, tasks=(), api_calls=0)


@pytest.fixture
def tenant(database_url: str) -> Tenant:
    store = Store(database_url)
    organization = store.ensure_organization("team-a", name="Team A")
    account = store.register_account(
        organization.id,
        account_id="111111111111",
        role_arn="arn:aws:iam::111111111111:role/CloudSweepScanner",
        external_id="ext-1",
        regions=["us-east-1"],
        account_name="payments <prod>",
    )
    return Tenant(store, organization, account, NotificationSettingsStore(database_url))


MakeResolver = Callable[[dict[str, list[str]]], Callable[[str, int], list[str]]]


@pytest.fixture
def stub_resolver() -> MakeResolver:
    """A resolver from a table of names; no real DNS is ever asked."""

    def make(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
        def resolve(host: str, port: int) -> list[str]:
            return list(table.get(host, []))

        return resolve

    return make
