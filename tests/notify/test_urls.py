"""Webhook URLs pointing inside are refused (SAFETY-TESTS.md, bad inputs), without real DNS."""

from __future__ import annotations

import pytest

from cloudsweep.notify import urls

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
