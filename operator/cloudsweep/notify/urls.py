"""Webhook URLs a tenant gives us, checked so the operator never calls inside the cluster or cloud.

Called by ``notify.slack`` before every delivery (``post_json``) and by anything that stores a
webhook URL (``check_webhook_url``, which does not resolve, for early, friendly errors).

A URL is refused unless it is ``https``, names a public DNS host (not ``localhost``, a single label,
``*.svc``, ``*.cluster.local``, ``*.internal``, ...) or a public IP written in the standard form,
carries no user-info, and every address its host resolves to is public (not loopback, private,
link-local such as ``169.254.169.254``, shared, reserved, multicast or unspecified; IPv4 embedded in
IPv6 is unwrapped first). The host is resolved once, as an absolute name (no search domains), and
the connection goes to that checked address with SNI, certificate check and ``Host`` still the
original name, so a DNS answer that changes between check and connect (rebinding) cannot move the
request. Redirects are never followed: a 3xx is a failed delivery.

``allow_private=True`` lifts the address and name checks and also permits plain ``http``. It exists
for tests and local development only (a receiver on 127.0.0.1); the operator reads it from
``CLOUDSWEEP_NOTIFY_ALLOW_PRIVATE``, which a production deployment must never set.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cloudsweep import domain

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses the host resolves to, as strings. Tests inject a stub.
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_LENGTH = 2048
MAX_RESPONSE_BYTES = 64 * 1024

_BLOCKED_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_BLOCKED_SUFFIXES = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".svc",
    ".cluster.local",
    ".home.arpa",
    ".in-addr.arpa",
    ".ip6.arpa",
)
# Ranges ``ipaddress`` calls global that no webhook should live in.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "100.64.0.0/10",  # carrier-grade NAT, also used for cluster networks
        "192.0.0.0/24",  # IETF protocol assignments
        "64:ff9b::/96",  # NAT64: the embedded IPv4 is checked as well
        "64:ff9b:1::/48",  # local-use NAT64
    )
)


class WebhookRefused(domain.InvalidInput):
    """The URL may not be called; the message says why and what a valid one looks like."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL and the one address the request will go to."""

    scheme: str
    host: str  # the original name, for SNI and Host
    port: int
    path: str  # path and query
    address: str

    @property
    def display(self) -> str:
        """The URL without its path: Slack webhook paths are secrets, never logged."""
        return f"{self.scheme}://{self.host}:{self.port}/..."


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` as an absolute name (trailing dot) so no search domain is tried."""
    absolute = host if host.endswith(".") else host + "."
    try:
        infos = socket.getaddrinfo(absolute, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise WebhookRefused(f"webhook host {host!r} does not resolve: {error}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def secret_part(url: str) -> str:
    """What of a webhook URL is its secret: everything after the host (path, query, fragment)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return url.split(parts.netloc, 1)[1] if parts.netloc else url


def shown(url: str) -> str:
    """A webhook URL as messages show it: scheme and host only, never the path or user-info."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an unparseable URL)"
    if not parts.scheme or not host:
        return "(a URL without scheme or host)"
    host = "".join(c if 0x21 <= ord(c) < 0x7F else "?" for c in host)[:253]
    return f"{parts.scheme}://{host}{port}/..."


def _refuse(url: str, why: str) -> WebhookRefused:
    # Never the path: a Slack webhook's path is its secret, and this message is logged.
    return WebhookRefused(
        f"webhook URL {shown(url)!r} refused: {why}; use a public https URL such as "
        "https://hooks.slack.com/services/..."
    )


def _unwrap(address: IPAddress) -> list[IPAddress]:
    """The address and any IPv4 address embedded in it (mapped, 6to4, Teredo, NAT64)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
        if address in ipaddress.ip_network("64:ff9b::/96"):
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        compat = int(address)
        if 0 < compat <= 0xFFFFFFFF and compat > 1:  # deprecated IPv4-compatible ::a.b.c.d
            found.append(ipaddress.IPv4Address(compat))
    return found


def address_problem(address: IPAddress) -> str | None:
    """Why a connection to ``address`` is not allowed, or None for a public unicast address."""
    # Embedded IPv4 first: "169.254.169.254" says more than "::ffff:a9fe:a9fe".
    for candidate in reversed(_unwrap(address)):
        shown = str(candidate)
        if candidate.is_loopback:
            return f"{shown} is a loopback address"
        if candidate.is_link_local:
            return f"{shown} is link-local (cloud metadata services live there)"
        if candidate.is_unspecified:
            return f"{shown} is the unspecified address"
        if candidate.is_multicast:
            return f"{shown} is a multicast address"
        if candidate.is_private:
            return f"{shown} is a private address"
        if candidate.is_reserved:
            return f"{shown} is a reserved address"
        if isinstance(candidate, ipaddress.IPv6Address) and candidate.is_site_local:
            return f"{shown} is a site-local address"
        if any(
            candidate in network
            for network in _EXTRA_BLOCKED
            if network.version == candidate.version
        ):
            return f"{shown} is not a public address"
        if not candidate.is_global:
            return f"{shown} is not a public address"
    return None


def _numeric_ipv4(host: str) -> bool:
    """True for any form the C library reads as IPv4: ``2852039166``, ``0xa9.0xfe.0xa9.0xfe``, ..."""
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Parsed:
    scheme: str
    host: str
    port: int
    path: str
    literal: IPAddress | None


def _parse(url: str, *, allow_private: bool) -> _Parsed:
    if not isinstance(url, str) or not url:
        raise WebhookRefused("a webhook URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(url, f"longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise _refuse(url, "it contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise _refuse(url, f"it is not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed:
        raise _refuse(url, f"the scheme is {scheme or 'missing'!r}, only https is allowed")
    if "@" in parts.netloc:
        raise _refuse(url, "it contains user-info (user@host)")
    raw_host = parts.hostname
    if not raw_host:
        raise _refuse(url, "it has no host")
    if "%" in raw_host:
        raise _refuse(url, "IPv6 zone identifiers are not allowed")
    host = raw_host.lower().rstrip(".")
    if not host:
        raise _refuse(url, "it has no host")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise _refuse(url, "the host is not a valid domain name") from None
    literal = _literal(host)
    if literal is None and _numeric_ipv4(host):
        if allow_private:
            literal = ipaddress.IPv4Address(socket.inet_aton(host))
        else:
            raise _refuse(
                url, "the host is an IP address in a non-standard (decimal, octal or hex) form"
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default_port = 443 if scheme == "https" else 80
    return _Parsed(scheme, host, port or default_port, path, literal)


def _name_problem(host: str) -> str | None:
    if host in _BLOCKED_NAMES:
        return f"{host!r} is the local machine"
    for suffix in _BLOCKED_SUFFIXES:
        if host.endswith(suffix):
            return f"names ending in {suffix!r} are internal"
    if "." not in host:
        return f"{host!r} is a single-label name, which resolves inside the cluster or network"
    last = host.rsplit(".", 1)[1]
    if last.isdigit() or last.startswith("0x"):
        return "the host looks like a numeric address"
    return None


def check_webhook_url(url: str, *, allow_private: bool = False) -> None:
    """Refuse a URL that can be refused without DNS (scheme, user-info, names, IP literals)."""
    parsed = _parse(url, allow_private=allow_private)
    if allow_private:
        return
    if parsed.literal is not None:
        problem = address_problem(parsed.literal)
        if problem:
            raise _refuse(url, problem)
        return
    problem = _name_problem(parsed.host)
    if problem:
        raise _refuse(url, problem)


def resolve_webhook(
    url: str, *, allow_private: bool = False, resolver: Resolver = system_resolver
) -> Target:
    """Check ``url`` and resolve it once; every address must pass, the first one is pinned."""
    check_webhook_url(url, allow_private=allow_private)
    parsed = _parse(url, allow_private=allow_private)
    if parsed.literal is not None:
        addresses = [str(parsed.literal)]
    else:
        addresses = list(resolver(parsed.host, parsed.port))
        if not addresses:
            raise _refuse(url, f"{parsed.host!r} does not resolve")
    checked: list[str] = []
    for text in addresses:
        address = _literal(text.split("%", 1)[0])
        if address is None:
            raise _refuse(url, f"{parsed.host!r} resolved to {text!r}, which is not an address")
        if not allow_private:
            problem = address_problem(address)
            if problem:
                raise _refuse(url, f"{parsed.host!r} resolves to {problem}")
        checked.append(str(address))
    return Target(parsed.scheme, parsed.host, parsed.port, parsed.path, checked[0])


# --- the pinned request ----------------------------------------------------------------------


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Connect within ``connect`` seconds, and be done (TLS, request, response) within ``total``."""

    connect: float = 3.0
    total: float = 10.0


class _Deadline:
    """Shuts the socket down when the total time is up, however slowly the peer trickles bytes."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        return max(0.01, self._end - time.monotonic())

    def guard(self, sock: socket.socket) -> None:
        def expire() -> None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        self._timer = threading.Timer(self.remaining(), expire)
        self._timer.daemon = True
        self._timer.start()

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _connect(target: Target, timeouts: Timeouts, deadline: _Deadline) -> socket.socket:
    sock = socket.create_connection(
        (target.address, target.port), timeout=min(timeouts.connect, deadline.remaining())
    )
    sock.settimeout(deadline.remaining())
    deadline.guard(sock)
    if target.scheme == "https":
        context = ssl.create_default_context()
        return context.wrap_socket(sock, server_hostname=target.host)
    return sock


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to a checked address; ``Host`` (and SNI) stay the original name."""

    def __init__(self, target: Target, timeouts: Timeouts, deadline: _Deadline) -> None:
        super().__init__(target.host, target.port, timeout=timeouts.connect)
        # So ``Host`` carries no port when it is the scheme's default (443 for https).
        self.default_port = 443 if target.scheme == "https" else 80
        self._target = target
        self._timeouts = timeouts
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _connect(self._target, self._timeouts, self._deadline)


def post_json(
    url: str,
    payload: Any,
    *,
    timeouts: Timeouts = Timeouts(),
    allow_private: bool = False,
    resolver: Resolver = system_resolver,
    user_agent: str = "CloudSweep",
) -> int:
    """POST ``payload`` as JSON to a checked, pinned address; returns the 2xx status.

    Raises ``WebhookRefused`` for URLs that may not be called and ``DeliveryError`` for failures
    (connection errors, time-outs, 5xx and 429 are retryable; redirects and other 4xx are not).
    """
    target = resolve_webhook(url, allow_private=allow_private, resolver=resolver)
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    deadline = _Deadline(timeouts.total)
    connection = _PinnedConnection(target, timeouts, deadline)
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": user_agent,
                "Connection": "close",
            },
        )
        response = connection.getresponse()
        status = response.status
        response.read(MAX_RESPONSE_BYTES)
    except ssl.SSLCertVerificationError as error:
        raise DeliveryError(
            f"{target.display}: certificate check failed ({error.verify_message})", retryable=False
        ) from None
    except (OSError, http.client.HTTPException) as error:
        why = "timed out" if deadline.expired() or isinstance(error, TimeoutError) else str(error)
        raise DeliveryError(
            f"{target.display} ({target.address}): {why or type(error).__name__}", retryable=True
        ) from None
    finally:
        deadline.cancel()
        connection.close()
    if 200 <= status < 300:
        return status
    if 300 <= status < 400:
        raise DeliveryError(
            f"{target.display} answered with a redirect ({status}); redirects are not followed",
            retryable=False,
        )
    raise DeliveryError(
        f"{target.display} answered {status}", retryable=status >= 500 or status in (408, 429)
    )
