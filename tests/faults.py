"""AWS fault injection at the botocore event layer, as SAFETY-TESTS.md asks: no application code is
edited, the moto server stays real, and a handler answers (or breaks) chosen calls.

- ``before-send`` handlers return a synthetic HTTP response: botocore's retry logic sees it, so a
  throttling answer is retried with back-off exactly as a real one would be.
- ``after-call`` handlers raise after the call took effect in moto: a response lost on the way back.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def ec2_error_body(code: str, message: str) -> bytes:
    return (
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>injected</RequestID></Response>"
    ).encode()


def query_error_body(code: str, message: str, kind: str = "Sender") -> bytes:
    """The error body of query-protocol services (ELB, ELBv2, RDS, STS, CloudWatch)."""
    return (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
        "</Error><RequestId>injected</RequestId></ErrorResponse>"
    ).encode()


def request_region(request: Any) -> str | None:
    """The region a signed request is for (its SigV4 credential scope): moto serves all regions
    on one URL, so the URL does not tell."""
    header = request.headers.get("Authorization", "")
    if isinstance(header, bytes):
        header = header.decode()
    match = _SCOPE_RE.search(header)
    return match.group("region") if match else None


@dataclass
class Injected:
    """How often an injected fault fired (thread-safe)."""

    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self) -> None:
        with self.lock:
            self.hits += 1


def fail_with(
    events: Any,
    event: str,
    *,
    status: int,
    body: bytes,
    region: str | None = None,
    times: int | None = None,
    headers: dict[str, str] | None = None,
    after: int = 0,
) -> Injected:
    """Answer ``event`` (e.g. ``before-send.ec2.DescribeVolumes``) with an error response, only in
    ``region`` if given, the first ``times`` times if given (then the real server answers), once
    ``after`` requests have gone through (to fail the second call of an operation, not the first).
    """
    injected = Injected()
    let_through = Injected()

    def handler(request: Any, **_: Any) -> AWSResponse | None:
        if region is not None and request_region(request) != region:
            return None
        with injected.lock:
            if let_through.hits < after:
                let_through.hits += 1
                return None
            if times is not None and injected.hits >= times:
                return None
            injected.hits += 1
        return AWSResponse(request.url, status, dict(headers or {}), _Raw(body))

    events.register(event, handler)
    return injected


def throttle(events: Any, service: str, operation: str, **kwargs: Any) -> Injected:
    body = (ec2_error_body if service == "ec2" else query_error_body)(
        "RequestLimitExceeded" if service == "ec2" else "Throttling", "Rate exceeded"
    )
    return fail_with(events, f"before-send.{service}.{operation}", status=503, body=body, **kwargs)


def throttle_json(events: Any, service: str, operation: str, **kwargs: Any) -> Injected:
    """A throttling answer of a JSON-protocol service (CloudWatch, as botocore talks to it)."""
    return fail_with(
        events,
        f"before-send.{service}.{operation}",
        status=400,
        body=b'{"__type": "Throttling", "message": "Rate exceeded"}',
        headers={"Content-Type": "application/x-amz-json-1.0"},
        **kwargs,
    )


def lose_response(events: Any, service: str, operation: str, *, times: int = 1) -> Injected:
    """Let the call take effect, then lose its response (a read time-out), ``times`` times."""
    injected = Injected()

    def handler(http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
        with injected.lock:
            if injected.hits >= times:
                return
            injected.hits += 1
        raise ReadTimeoutError(endpoint_url="injected://lost-response")

    events.register(f"after-call.{service}.{operation}", handler)
    return injected


def on_call(events: Any, service: str, operation: str, action: Callable[[], None]) -> None:
    """Run ``action`` just before ``operation`` is sent (a crash or a clock jump at that moment)."""

    def handler(**_: Any) -> None:
        action()

    events.register(f"before-call.{service}.{operation}", handler)


def one_entry_a_page(
    events: Any,
    service: str,
    operation: str,
    key: str,
    *,
    marker: str = "Marker",
    next_marker: str = "NextMarker",
    most_calls: int = 200,
) -> Injected:
    """Answer ``operation`` one entry of ``key`` a page, as AWS does past its page size (moto
    answers everything at once). The first page is the server's answer cut to its first entry;
    each later page is served from the rest of that answer, by the marker it was given. A caller
    that does not send the marker back starts over and gets the first page again: past
    ``most_calls`` pages this raises rather than loop forever. ``hits``: the pages served."""
    injected = Injected()
    rest_by_token: dict[str, list[Any]] = {}

    def token_for(entries: list[Any]) -> str:
        with injected.lock:
            injected.hits += 1
            if injected.hits > most_calls:
                raise AssertionError(f"{operation}: {most_calls} pages and no end")
            token = f"injected-page-{injected.hits}"
        rest_by_token[token] = entries
        return token

    def remember_marker(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["injected_marker"] = params.get(marker)

    def serve_later_page(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, Any] | None:
        token = context.get("injected_marker")
        if token is None:
            return None  # a first page: the server answers
        if token not in rest_by_token:
            raise AssertionError(f"{operation}: a marker it never gave ({token!r})")
        rest = rest_by_token.pop(token)
        page: dict[str, Any] = {key: rest[:1], "ResponseMetadata": {"HTTPStatusCode": 200}}
        if len(rest) > 1:
            page[next_marker] = token_for(rest[1:])
        context["injected_page"] = True
        return AWSResponse("injected://page", 200, {}, _Raw(b"")), page

    def cut_first_page(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        entries = parsed.get(key) or []
        if context.get("injected_page") or len(entries) < 2:
            return
        assert not parsed.get(next_marker), f"{operation}: the server paged by itself"
        parsed[key] = entries[:1]
        parsed[next_marker] = token_for(entries[1:])

    events.register(f"before-parameter-build.{service}.{operation}", remember_marker)
    events.register(f"before-call.{service}.{operation}", serve_later_page)
    events.register(f"after-call.{service}.{operation}", cut_first_page)
    return injected
