"""Webhook URLs pointing inside are refused (SAFETY-TESTS.md, bad inputs), without real DNS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudsweep.notify import urls

from .conftest import Receiver

PUBLIC = "93.184.216.34"


def resolver(table: dict[str, list[str]]) -> urls.Resolver:
    def resolve(host: str, port: int) -> list[str]:
        return table.get(host, [])

    return resolve


DNS = resolver(
    {
        "hooks.slack.com": [PUBLIC],
        "evil.example.com": ["10.1.2.3"],
        "metadata.example.com": ["169.254.169.254"],
        "mapped.example.com": ["::ffff:169.254.169.254"],
        "loop6.example.com": ["::1"],
        "mixed.example.com": [PUBLIC, "192.168.1.10"],
        "cgnat.example.com": ["100.64.0.7"],
    }
)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::ffff:169.254.169.254]/", "169.254.169.254 is link-local"),
        ("https://[::ffff:a9fe:a9fe]/", "169.254.169.254 is link-local"),
        ("https://2852039166/", "non-standard"),  # 169.254.169.254 as one decimal number
        ("https://0xa9fea9fe/", "non-standard"),
        ("https://0xa9.0xfe.0xa9.0xfe/", "non-standard"),
        ("https://0251.0376.0251.0376/", "non-standard"),
        ("https://127.1/", "non-standard"),
        ("https://127.0.0.1/", "loopback"),
        ("https://[::1]/", "loopback"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://[::]/", "unspecified"),
        ("https://localhost/hook", "local machine"),
        ("https://LOCALHOST./hook", "local machine"),
        ("https://app.localhost/", "internal"),
        ("https://10.0.0.8/", "private"),
        ("https://172.16.5.4/", "private"),
        ("https://192.168.0.1/", "private"),
        ("https://[fd12:3456::1]/", "private"),
        ("https://[fe80::1]/", "link-local"),
        ("https://100.64.0.1/", "not a public address"),
        ("https://224.0.0.251/", "multicast"),
        ("https://240.0.0.1/", "private"),
        ("https://[2002:a9fe:a9fe::1]/", "169.254.169.254"),  # 6to4 wrapping the metadata address
        ("https://kubernetes.default.svc/api", "'.svc' are internal"),
        ("https://kubernetes.default.svc.cluster.local/", "internal"),
        ("https://metadata.google.internal/", "'.internal' are internal"),
        ("https://kubernetes/", "single-label"),
        ("https://evil.example.com/hook", "10.1.2.3 is a private address"),
        ("https://metadata.example.com/", "169.254.169.254 is link-local"),
        ("https://mapped.example.com/", "169.254.169.254 is link-local"),
        ("https://loop6.example.com/", "loopback"),
        ("https://mixed.example.com/", "192.168.1.10 is a private address"),
        ("https://cgnat.example.com/", "not a public address"),
        ("https://nxdomain.example.com/", "does not resolve"),
        ("http://hooks.slack.com/services/x", "only https"),
        ("ftp://hooks.slack.com/x", "only https"),
        ("file:///etc/passwd", "only https"),
        ("gopher://127.0.0.1:6379/_INFO", "only https"),
        ("//hooks.slack.com/x", "only https"),
        ("https://user:pw@hooks.slack.com/x", "user-info"),
        ("https://hooks.slack.com@169.254.169.254/", "user-info"),
        ("https:///path-only", "no host"),
        ("https://hooks.slack.com/a b", "control characters"),
        ("https://hooks.slack.com/\r\nX-Injected: 1", "control characters"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://hooks.slack.com:99999/", "not a valid URL"),
        ("", "required"),
    ],
)
def test_hostile_webhook_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(urls.WebhookRefused) as refused:
        urls.resolve_webhook(url, resolver=DNS)
    message = str(refused.value)
    assert reason in message
    assert "use a public https URL" in message or reason == "required"


def test_a_public_https_url_is_accepted_and_pinned_to_the_checked_address() -> None:
    target = urls.resolve_webhook("https://hooks.slack.com/services/T0/B0/secret?x=1", resolver=DNS)
    assert target.scheme == "https"
    assert target.host == "hooks.slack.com"
    assert target.port == 443
    assert target.path == "/services/T0/B0/secret?x=1"
    assert target.address == PUBLIC
    assert "secret" not in target.display  # webhook paths are secrets: never logged


def test_public_ip_literals_are_accepted_without_dns() -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal needs no DNS")

    assert urls.resolve_webhook(f"https://{PUBLIC}:8443/x", resolver=no_dns).address == PUBLIC


def test_the_host_is_resolved_once_so_a_rebinding_answer_cannot_move_the_request() -> None:
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    target = urls.resolve_webhook("https://rebind.example.com/", resolver=rebinding)
    assert calls == ["rebind.example.com"]
    assert target.address == PUBLIC  # the connection goes here, whatever DNS says later


def test_check_without_dns_catches_what_it_can_before_a_url_is_stored() -> None:
    urls.check_webhook_url("https://hooks.slack.com/services/x")
    with pytest.raises(urls.WebhookRefused, match="only https"):
        urls.check_webhook_url("http://hooks.slack.com/services/x")
    with pytest.raises(urls.WebhookRefused, match="internal"):
        urls.check_webhook_url("https://kubernetes.default.svc/")


def test_allow_private_is_an_explicit_switch_for_tests_and_dev_only() -> None:
    with pytest.raises(urls.WebhookRefused):
        urls.resolve_webhook("http://127.0.0.1:8080/hook")
    target = urls.resolve_webhook("http://127.0.0.1:8080/hook", allow_private=True)
    assert (target.scheme, target.address, target.port) == ("http", "127.0.0.1", 8080)
    # Even then only http(s) and no user-info.
    with pytest.raises(urls.WebhookRefused, match="only https"):
        urls.resolve_webhook("file:///etc/passwd", allow_private=True)
    with pytest.raises(urls.WebhookRefused, match="user-info"):
        urls.resolve_webhook("http://a@127.0.0.1/", allow_private=True)


def test_the_system_resolver_asks_for_the_absolute_name(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def fake_getaddrinfo(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        asked.append(host)
        return [(2, 1, 6, "", ("10.96.0.1", port))]

    monkeypatch.setattr(urls.socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(urls.WebhookRefused, match=r"10\.96\.0\.1 is a private address"):
        urls.resolve_webhook("https://kubernetes.default/")
    # A trailing dot: no search domain turns it into kubernetes.default.svc.cluster.local.
    assert asked == ["kubernetes.default."]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.slack.com/services/T0AAA/B0BBB/s3cretPathValue",
        "https://localhost/services/T0AAA/B0BBB/s3cretPathValue?token=s3cretQueryValue",
        "https://user:s3cretPassword@hooks.slack.com/services/T0AAA/B0BBB/s3cretPathValue",
        "https://hooks.slack.com:99999/services/T0AAA/B0BBB/s3cretPathValue",
    ],
)
def test_a_refused_url_is_named_by_its_host_never_its_secret_path(url: str) -> None:
    with pytest.raises(urls.WebhookRefused) as refused:
        urls.resolve_webhook(url, resolver=lambda host, port: ["8.8.8.8"])
    message = str(refused.value)
    assert "s3cret" not in message, message
    assert "refused" in message


# --- what a refusal says, exactly, and the edges of each check ---------------------------------
# A refusal is read by a person fixing a CustomResource: the whole message is the interface,
# and its host part is the only piece of the URL it may show.

ADVICE = "; use a public https URL such as https://hooks.slack.com/services/..."


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://a b.example.com/",
            "'https://a?b.example.com/...' refused: it contains spaces or control ",
        ),
        ("ftp://hooks.slack.com/x", "'ftp://hooks.slack.com/...' refused: the scheme is 'ftp', "),
        (
            "//hooks.slack.com/x",
            "'(a URL without scheme or host)' refused: the scheme is 'missing'",
        ),
        (
            "https://u@hooks.slack.com/",
            "'https://hooks.slack.com/...' refused: it contains user-in",
        ),
        ("https:///x", "'(a URL without scheme or host)' refused: it has no host"),
        ("https://./x", "'https://./...' refused: it has no host"),
        (
            "https://[fe80::1%25eth0]/",
            "'https://fe80::1%25eth0/...' refused: IPv6 zone identifiers",
        ),
        (
            "https://a..b.com/",
            "'https://a..b.com/...' refused: the host is not a valid domain name",
        ),
        (
            "https://2852039166/",
            "'https://2852039166/...' refused: the host is an IP address in a ",
        ),
        ("https://10.0.0.8/", "'https://10.0.0.8/...' refused: 10.0.0.8 is a private address"),
        ("https://x.svc/", "'https://x.svc/...' refused: names ending in '.svc' are internal"),
        ("https://nx.example.com/", "'https://nx.example.com/...' refused: 'nx.example.com' does "),
        ("https://evil.example.com:8443/", "'https://evil.example.com:8443/...' refused: 'evil.ex"),
        (
            "https://bad.example.com/",
            "'https://bad.example.com/...' refused: 'bad.example.com' res",
        ),
    ],
)
def test_a_refusal_names_the_url_by_its_host_and_says_why(url: str, message: str) -> None:
    dns = resolver({"evil.example.com": ["10.1.2.3"], "bad.example.com": ["not-an-ip"]})
    with pytest.raises(urls.WebhookRefused) as refused:
        urls.resolve_webhook(url, resolver=dns)
    text = str(refused.value)
    assert text.startswith("webhook URL " + message), text
    assert text.endswith(ADVICE), text


def test_every_reason_is_worded_in_full() -> None:
    dns = resolver({"evil.example.com": ["10.1.2.3"], "bad.example.com": ["not-an-ip"]})

    def reason(url: str) -> str:
        with pytest.raises(urls.WebhookRefused) as refused:
            urls.resolve_webhook(url, resolver=dns)
        text = str(refused.value)
        return text[text.index(" refused: ") + len(" refused: ") : -len(ADVICE)]

    assert reason("https://a b.example.com/") == "it contains spaces or control characters"
    assert reason("https://hooks.slack.com/" + "x" * 2048) == "longer than 2048 characters"
    assert reason("https://u@hooks.slack.com/") == "it contains user-info (user@host)"
    assert reason("https:///x") == "it has no host"
    assert reason("https://./x") == "it has no host"
    assert reason("https://[fe80::1%25eth0]/") == "IPv6 zone identifiers are not allowed"
    assert reason("https://a..b.com/") == "the host is not a valid domain name"
    assert reason("https://2852039166/") == (
        "the host is an IP address in a non-standard (decimal, octal or hex) form"
    )
    assert reason("https://example.123/") == "the host looks like a numeric address"
    assert reason("https://nx.example.com/") == "'nx.example.com' does not resolve"
    assert reason("https://evil.example.com/") == (
        "'evil.example.com' resolves to 10.1.2.3 is a private address"
    )
    assert reason("https://bad.example.com/") == (
        "'bad.example.com' resolved to 'not-an-ip', which is not an address"
    )
    assert reason("https://hooks.slack.com:99999/").startswith("it is not a valid URL (")
    assert reason("gopher://x.example.com/") == "the scheme is 'gopher', only https is allowed"
    with pytest.raises(urls.WebhookRefused) as refused:
        urls.resolve_webhook("")
    assert str(refused.value) == "a webhook URL is required"


def test_the_length_and_character_limits_are_exact() -> None:
    base = "https://hooks.slack.com/"
    longest = base + "x" * (urls.MAX_URL_LENGTH - len(base))
    assert urls.resolve_webhook(longest, resolver=DNS).address == PUBLIC
    for refused in (longest + "x", base + "\x7f", base + "\x20", base + "\x00"):
        with pytest.raises(urls.WebhookRefused):
            urls.resolve_webhook(refused, resolver=DNS)
    # "!" (0x21) and "~" (0x7E) are the first and last printable characters: allowed.
    assert urls.resolve_webhook(base + "!~", resolver=DNS).path == "/!~"


@pytest.mark.parametrize(
    ("host", "accepted"),
    [
        ("example.123", False),  # a numeric last label is an address in disguise
        ("a.0xff", False),
        ("A.0XFF", False),
        ("hooks.slack.123x", True),  # only the last label counts
        ("123.example.com", True),
        ("9.example.com", True),
        ("hooks.123.com", True),
        ("0x.example.com", True),
    ],
)
def test_a_name_is_judged_by_its_last_label(host: str, accepted: bool) -> None:
    url = f"https://{host}/"
    if accepted:
        urls.check_webhook_url(url)
        assert urls.resolve_webhook(url, resolver=lambda h, p: [PUBLIC]).address == PUBLIC
    else:
        with pytest.raises(urls.WebhookRefused, match="numeric address"):
            urls.check_webhook_url(url)


def test_check_without_dns_refuses_internal_ip_literals() -> None:
    with pytest.raises(urls.WebhookRefused, match=r"10\.0\.0\.8 is a private address"):
        urls.check_webhook_url("https://10.0.0.8/hook")
    with pytest.raises(urls.WebhookRefused, match=r"169\.254\.169\.254 is link-local"):
        urls.check_webhook_url("https://[::ffff:169.254.169.254]/")
    urls.check_webhook_url(f"https://{PUBLIC}/hook")


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        # NAT64 (RFC 6052) wraps the metadata address: the embedded IPv4 is what is reached.
        ("64:ff9b::a9fe:a9fe", "169.254.169.254 is link-local"),
        ("64:ff9b::7f00:1", "127.0.0.1 is a loopback address"),
        # Teredo carries a server and a client address; the client is named first.
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45 is a private address"),
        # Deprecated IPv4-compatible ::a.b.c.d, from ::0.0.0.2 up to ::255.255.255.255.
        ("::a9fe:a9fe", "169.254.169.254 is link-local"),
        ("::2", "0.0.0.2 is a private address"),
        ("::ffff:ffff", "255.255.255.255 is a private address"),
        ("::1:0:0", "::1:0:0 is a reserved address"),  # above 32 bits: not IPv4-compatible
        ("::1", "::1 is a loopback address"),
        # Ranges Python calls global that no webhook lives in.
        ("192.0.0.8", "192.0.0.8 is not a public address"),
        ("64:ff9b:1::808:808", "64:ff9b:1::808:808 is a reserved address"),
    ],
)
def test_embedded_and_special_addresses_are_named_by_what_they_reach(
    address: str, problem: str
) -> None:
    import ipaddress

    found = urls.address_problem(ipaddress.ip_address(address))
    assert found is not None and found.startswith(problem), found


def test_public_addresses_have_no_problem() -> None:
    import ipaddress

    for address in (PUBLIC, "2606:4700::1111", "8.8.8.8"):
        assert urls.address_problem(ipaddress.ip_address(address)) is None


def test_defaults_of_a_parsed_url() -> None:
    bare = urls.resolve_webhook("https://hooks.slack.com", resolver=DNS)
    assert (bare.port, bare.path) == (443, "/")
    plain = urls.resolve_webhook("http://127.0.0.1", allow_private=True)
    assert (plain.scheme, plain.port, plain.path) == ("http", 80, "/")
    secure = urls.resolve_webhook("https://127.0.0.1/x", allow_private=True)
    assert (secure.scheme, secure.port) == ("https", 443)
    # allow_private reads the C library's IPv4 forms too, as the address they mean.
    decimal = urls.resolve_webhook("http://2130706433:8080/", allow_private=True)
    assert (decimal.address, decimal.port) == ("127.0.0.1", 8080)


def test_the_resolver_is_asked_for_the_host_and_port_and_zones_are_dropped() -> None:
    asked: list[tuple[str, int]] = []

    def zoned(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["2606:4700::1111%eth0"]

    target = urls.resolve_webhook("https://hooks.example.com:8443/x", resolver=zoned)
    assert asked == [("hooks.example.com", 8443)]
    assert target.address == "2606:4700::1111"
    # Everything from the first "%" on is the zone, however many follow.
    twice = urls.resolve_webhook(
        "https://hooks.example.com/x", resolver=lambda host, port: ["2606:4700::1111%eth0%1"]
    )
    assert twice.address == "2606:4700::1111"


def test_system_resolver_keeps_an_absolute_name_and_asks_for_tcp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    asked: list[tuple[str, int, object]] = []

    def fake_getaddrinfo(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        asked.append((host, port, kwargs.get("type")))
        return [(2, 1, 6, "", (PUBLIC, port)), (2, 1, 6, "", (PUBLIC, port))]

    monkeypatch.setattr(urls.socket, "getaddrinfo", fake_getaddrinfo)
    assert urls.system_resolver("hooks.example.com.", 443) == [PUBLIC]  # duplicates dropped
    assert asked == [("hooks.example.com.", 443, socket.SOCK_STREAM)]

    def failing(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(urls.socket, "getaddrinfo", failing)
    with pytest.raises(urls.WebhookRefused) as refused:
        urls.system_resolver("nx.example.com", 443)
    assert str(refused.value) == (
        "webhook host 'nx.example.com' does not resolve: [Errno -2] Name or service not known"
    )


@pytest.mark.parametrize(
    ("url", "display"),
    [
        ("https://hooks.slack.com/services/T0/B0/secret", "https://hooks.slack.com/..."),
        ("https://user:pw@hooks.slack.com:8443/x?t=1", "https://hooks.slack.com:8443/..."),
        ("https://a!b~c.example.com/", "https://a!b~c.example.com/..."),
        ("https://ex\u00e4mple.com/", "https://ex?mple.com/..."),
        ("https://a\x7fb.com/", "https://a?b.com/..."),
        ("https://" + "h" * 300 + ".com/", "https://" + "h" * 253 + "/..."),
        ("mailto:someone", "(a URL without scheme or host)"),
        ("//hooks.slack.com/x", "(a URL without scheme or host)"),
        ("https://[::1/", "(an unparseable URL)"),
    ],
)
def test_shown_keeps_scheme_host_and_port_only(url: str, display: str) -> None:
    assert urls.shown(url) == display


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://hooks.slack.com/services/T0/B0/x?t=1", "/services/T0/B0/x?t=1"),
        ("https://h.example.com/h.example.com/x", "/h.example.com/x"),  # the host in the path
        ("not a url", "not a url"),
        ("https://[::1/x", "https://[::1/x"),  # unparseable: all of it is treated as secret
    ],
)
def test_the_secret_part_of_a_url_is_everything_after_the_host(url: str, secret: str) -> None:
    assert urls.secret_part(url) == secret


def test_a_label_starting_with_0x_before_the_last_is_a_name() -> None:
    urls.check_webhook_url("https://a.0xb.example.com/")


# --- the pinned request, against local receivers (tests/notify/conftest.py) ----------------------


def test_the_request_is_utf8_json_with_its_headers_and_closes(receiver: Receiver) -> None:
    payload = {"text": "café ✓"}
    status = urls.post_json(receiver.url + "/hook", payload, allow_private=True)
    assert status == 200
    [request] = receiver.requests
    assert request.body == payload
    assert request.headers["User-Agent"] == "CloudSweep"
    assert request.headers["Connection"] == "close"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    # UTF-8 as it is, not \\u escapes: the length says which.
    assert int(request.headers["Content-Length"]) == len('{"text": "café ✓"}'.encode())


def test_a_local_receiver_is_refused_unless_the_test_switch_is_on(receiver: Receiver) -> None:
    with pytest.raises(urls.WebhookRefused, match="only https"):
        urls.post_json(receiver.url + "/hook", {})
    assert receiver.count() == 0


@pytest.fixture
def untrusted_tls_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An https server on 127.0.0.1 with a self-signed certificate no CA vouches for."""
    import http.server
    import ssl
    import subprocess
    import threading

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def test_https_is_verified_and_a_bad_certificate_is_not_retried(
    untrusted_tls_server: tuple[str, list[str]],
) -> None:
    url, requests = untrusted_tls_server
    with pytest.raises(urls.DeliveryError) as failed:
        urls.post_json(url + "/services/secret", {}, allow_private=True)
    assert failed.value.retryable is False
    assert str(failed.value) == (f"{url}/...: certificate check failed (self-signed certificate)")
    assert requests == []  # nothing was sent over the unverified connection


@pytest.fixture
def answering() -> Iterator[tuple[str, list[int]]]:
    """A receiver on 127.0.0.1 that answers each POST with the next status of its list."""
    import http.server
    import threading

    statuses: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(statuses.pop(0))
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", statuses
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *((300, False), (301, False), (399, False), (400, False), (404, False), (408, True)),
        (429, True),
        *((499, False), (500, True), (503, True)),
    ],
)
def test_only_2xx_is_delivered_and_only_what_may_pass_is_retried(
    answering: tuple[str, list[int]], status: int, retryable: bool
) -> None:
    url, statuses = answering
    statuses.extend([200, 299, status])
    assert urls.post_json(url + "/hook", {}, allow_private=True) == 200
    assert urls.post_json(url + "/hook", {}, allow_private=True) == 299
    with pytest.raises(urls.DeliveryError) as failed:
        urls.post_json(url + "/hook", {}, allow_private=True)
    assert failed.value.retryable is retryable
    said = "answered with a redirect" if status < 400 else f"answered {status}"
    assert said in str(failed.value)


def test_a_refused_connection_says_why() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: the connection is refused
        with pytest.raises(urls.DeliveryError) as failed:
            urls.post_json(f"http://127.0.0.1:{port}/hook", {}, allow_private=True)
    assert failed.value.retryable is True
    assert str(failed.value) == (
        f"http://127.0.0.1:{port}/... (127.0.0.1): [Errno 111] Connection refused"
    )


# Without the connect time-out the wait lasts the kernel's SYN retries (about two minutes): fail
# the test well before, so a mutation run counts it fast.
@pytest.mark.timeout(15)
def test_a_receiver_that_never_accepts_fails_within_the_connect_time_out() -> None:
    """A receiver whose accept queue is full drops the SYN, so the connection neither opens nor
    is refused: only the connect time-out ends the wait (the total deadline's watchdog guards the
    socket from the moment it is connected, not before)."""
    import socket
    import time

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: a queue of one, filled below
        port = listener.getsockname()[1]
        queued = []
        try:
            for _ in range(3):  # fill the accept queue; the kernel drops later SYNs silently
                waiting = socket.socket()
                waiting.setblocking(False)
                waiting.connect_ex(("127.0.0.1", port))
                queued.append(waiting)
            time.sleep(0.2)  # let the handshakes of the queued ones complete
            started = time.monotonic()
            with pytest.raises(urls.DeliveryError) as failed:
                urls.post_json(
                    f"http://127.0.0.1:{port}/hook",
                    {},
                    allow_private=True,
                    timeouts=urls.Timeouts(connect=1.0, total=30.0),
                )
            waited = time.monotonic() - started
        finally:
            for waiting in queued:
                waiting.close()
    assert failed.value.retryable is True
    assert str(failed.value) == f"http://127.0.0.1:{port}/... (127.0.0.1): timed out"
    assert waited < 10  # the connect time-out (1 s), with room for a loaded machine


@pytest.mark.timeout(15)
def test_a_spent_deadline_leaves_no_second_for_the_connect() -> None:
    """Whatever is left of the total is what a connect may take: none left is 10 ms, never the
    connect time-out (nor a second more)."""
    import socket
    import time

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = []
        try:
            for _ in range(3):  # as above: a full accept queue drops the next SYN
                waiting = socket.socket()
                waiting.setblocking(False)
                waiting.connect_ex(("127.0.0.1", port))
                queued.append(waiting)
            time.sleep(0.2)
            started = time.monotonic()
            with pytest.raises(urls.DeliveryError, match="timed out"):
                urls.post_json(
                    f"http://127.0.0.1:{port}/hook",
                    {},
                    allow_private=True,
                    timeouts=urls.Timeouts(connect=5.0, total=0.0),
                )
            waited = time.monotonic() - started
        finally:
            for waiting in queued:
                waiting.close()
    assert waited < 0.9


@pytest.mark.timeout(15)
def test_a_receiver_streaming_an_endless_body_cannot_hold_the_delivery() -> None:
    """Only the first 64 KiB of an answer are read: a receiver that keeps sending does not keep
    the notifier (and its retries) waiting until the total time-out."""
    import contextlib
    import socket
    import threading
    import time

    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def stream() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                # No length: the body ends when the connection does, which is never.
                connection.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
                chunk = b"x" * 65536
                with contextlib.suppress(OSError):
                    while not stop.is_set():
                        connection.sendall(chunk)
                        time.sleep(0.01)  # a few MB/s: endless, not a memory test

        thread = threading.Thread(target=stream, daemon=True)
        thread.start()
        started = time.monotonic()
        try:
            status = urls.post_json(
                f"http://127.0.0.1:{port}/hook",
                {},
                allow_private=True,
                timeouts=urls.Timeouts(connect=3.0, total=8.0),
            )
        finally:
            stop.set()
        waited = time.monotonic() - started
    assert status == 200
    assert waited < 5  # not the 8 s total


@pytest.mark.parametrize(
    ("scheme", "port", "host_header"),
    [
        ("https", 443, "hooks.example.com"),
        ("http", 80, "hooks.example.com"),
        ("https", 80, "hooks.example.com:80"),
        ("http", 443, "hooks.example.com:443"),
    ],
)
def test_the_host_header_names_the_port_only_when_it_is_not_the_schemes(
    scheme: str, port: int, host_header: str
) -> None:
    """The pinned connection goes to the checked address, while ``Host`` (which virtual hosts
    and signatures read) is the URL's own: with no port when it is the scheme's default."""
    target = urls.Target(scheme, "hooks.example.com", port, "/x", PUBLIC)
    connection = urls._PinnedConnection(target, urls.Timeouts(), urls._Deadline(1.0))
    connection.putrequest("POST", "/x")  # builds the request head; nothing is sent
    head = [line.decode() for line in connection._buffer]  # type: ignore[attr-defined]
    assert f"Host: {host_header}" in head


def test_a_too_long_url_is_refused_by_its_host_never_its_path() -> None:
    secret = "T000/B000/" + "s" * 2048
    with pytest.raises(urls.WebhookRefused) as refused:
        urls.resolve_webhook(f"https://hooks.slack.com/services/{secret}")
    assert str(refused.value).startswith(
        "webhook URL 'https://hooks.slack.com/...' refused: longer than 2048 characters"
    )
    assert "sss" not in str(refused.value)
