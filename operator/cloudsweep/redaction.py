"""Secrets out of every log line: credentials, ExternalIds and webhook URL secrets are redacted.

Installed by both front doors (``cloudsweep`` in ``cli`` and ``cloudsweep operator`` in
``handlers.configure_logging``) through :func:`install`; the engine registers the secret values it
handles with :func:`remember` (an account's ExternalId, a webhook URL's path).

Why a log-record factory and not only a filter: a filter on a logger does not see the records of
its child loggers (``botocore.parsers`` logs response bodies, ``botocore.endpoint`` request
bodies, ``urllib3.connectionpool`` request lines), and a filter on a handler misses the handlers
that others add later (kopf's, pytest's). The factory redacts each record once, when it is made,
for every logger and every handler; the filter installed on the root, ``botocore`` and
``urllib3`` loggers is a second line for records made before :func:`install` ran.

What is redacted, structurally (known values are a last line, not the main one):

- values of secret-named fields in every notation botocore and others log: XML elements
  (``<SecretAccessKey>..</SecretAccessKey>``), Python and JSON mappings (``'SessionToken': '..'``,
  ``"ExternalId": ".."``), form and query parameters (``ExternalId=..&``) and headers
  (``X-Amz-Security-Token``, ``Authorization``);
- AWS access key IDs (``AKIA..``/``ASIA..``) and long mixed-case tokens (secret keys, session
  tokens) wherever they stand;
- in URLs and HTTP request lines: user-info, every query value, and path segments that look like
  tokens (Slack's ``/services/T../B../<secret>`` keeps the IDs, loses the secret);
- every value passed to :func:`remember` (at least 8 characters).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any, Final

MASK: Final = "[REDACTED]"
MIN_REMEMBERED_LENGTH: Final = 8

# Field names whose values are secrets, in the spellings AWS, botocore, HTTP and we use.
_SECRET_FIELD: Final = (
    r"(?:AccessKeyId|SecretAccessKey|SecretKey|SessionToken|SecurityToken|ExternalId|"
    r"external_id|aws_access_key_id|aws_secret_access_key|aws_session_token|"
    r"X-Amz-Security-Token|X-Amz-Credential|X-Amz-Signature|Authorization|Proxy-Authorization|"
    r"Signature|Credential|password|passwd|secret|token|api[_-]?key|signing[_-]?key|"
    r"slack_webhook_url|webhook_url|webhookUrl)"
)
# <SecretAccessKey>value</SecretAccessKey>
_XML = re.compile(rf"(<({_SECRET_FIELD})>)([^<]*)(</\2>)", re.IGNORECASE)
# 'SessionToken': 'value'  "ExternalId": "value"  'Authorization': b'value'
_QUOTED = re.compile(
    rf"""(['"]{_SECRET_FIELD}['"]\s*[:=]\s*b?)(['"])((?:\\.|(?!\2).)*)(\2)""", re.IGNORECASE
)
# ExternalId=value (form bodies, query strings, key=value lines); Credential=..., Signature=...
_ASSIGNED = re.compile(rf"""(\b{_SECRET_FIELD}=)([^&\s,;'"<>]+)""", re.IGNORECASE)
# X-Amz-Security-Token: value (raw header lines)
_HEADER = re.compile(rf"""(\b{_SECRET_FIELD}:[ \t]*)([^\s,;'"<>]+)""", re.IGNORECASE)
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
# 40+ characters of base64 with upper case, lower case and a digit: secret keys, session tokens.
# Hex digests (lower case and digits only) and words are left alone.
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])"
    r"(?=[A-Za-z0-9+/]*[0-9])[A-Za-z0-9+/]{40,}={0,2}"
)
_URL = re.compile(r"""\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s'"<>?#]*)([^\s'"<>]*)""")
_REQUEST_LINE = re.compile(r"""\b(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/[^\s'"]*)""")
_TOKEN_SEGMENT = re.compile(
    r"[A-Za-z0-9_-]{24,}|(?=[A-Za-z_-]*[0-9])(?=[0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}"
)

_SECRET_NAME = re.compile(rf"{_SECRET_FIELD}|sig|code|key|auth", re.IGNORECASE)

# Insertion-ordered, bounded: ExternalIds and webhook paths of a long-running operator.
_remembered: dict[str, None] = {}
_remembered_lock = threading.Lock()
MAX_REMEMBERED: Final = 4096
# The remembered values as one compiled pattern (longest first) plus the values remembered since
# it was compiled, replaced one by one. Compiling all values on every new one cost 15 CPU-s for
# 1,000 AwsAccounts (quadratic: issue 16); the pattern is rebuilt once PENDING_LIMIT values wait.
PENDING_LIMIT: Final = 64
_pattern_of_remembered: re.Pattern[str] | None = None
_pending: tuple[str, ...] = ()  # longest first


def remember(secret: str | None) -> None:
    """Redact this exact value wherever it appears from now on (shorter values are ignored).

    For secrets whose shape says nothing (an ExternalId, a webhook path); rotating credentials
    are left to the structural rules, so this set stays bounded by tenants, not by time.
    """
    global _pattern_of_remembered, _pending
    if not secret or len(secret) < MIN_REMEMBERED_LENGTH:
        return
    with _remembered_lock:
        if secret in _remembered:
            return
        _remembered[secret] = None
        evicted = False
        while len(_remembered) > MAX_REMEMBERED:
            del _remembered[next(iter(_remembered))]
            evicted = True
        # A value containing (or contained in) one already compiled must be matched in the same
        # pattern, longest first, so it is masked whole: rebuild now (rare: ExternalIds are random).
        nested = any(secret in known or known in secret for known in _remembered if known != secret)
        if evicted or nested or len(_pending) >= PENDING_LIMIT:
            ordered = sorted(_remembered, key=len, reverse=True)
            _pattern_of_remembered = re.compile("|".join(re.escape(s) for s in ordered))
            _pending = ()
        else:
            _pending = tuple(sorted((*_pending, secret), key=len, reverse=True))


def _mask_remembered(text: str) -> str:
    pattern, pending = _pattern_of_remembered, _pending
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for secret in pending:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _path(path: str) -> str:
    """A URL path with token-like segments and every query value masked."""
    path, _, query = path.partition("?")
    path, _, fragment = path.partition("#")
    segments = [MASK if _TOKEN_SEGMENT.fullmatch(s) else s for s in path.split("/")]
    shown = "/".join(segments)
    if query:
        shown += "?" + "&".join(_parameter(p) for p in query.split("&"))
    if fragment:
        shown += "#" + MASK
    return shown


def _parameter(pair: str) -> str:
    """A query parameter with its value masked when its name or its look says it is a secret."""
    name, equals, value = pair.partition("=")
    secret = _SECRET_NAME.fullmatch(name) or _TOKEN_SEGMENT.fullmatch(value)
    return name + equals + (MASK if equals and secret else value)


def _url(match: re.Match[str]) -> str:
    scheme, authority, rest = match.groups()
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        if colon and password.strip("*"):  # a password not masked already (``***``)
            password = MASK
        elif not colon and _TOKEN_SEGMENT.fullmatch(user):  # a token as the user name
            user = MASK
        authority = f"{user}{colon}{password}@{host}"
    return scheme + authority + _path(rest)


def redact(text: str, *, remembered: bool = True) -> str:
    """``text`` with every secret this module recognises replaced by ``[REDACTED]``.

    ``remembered=False`` applies the structural rules only: for text shown to the tenant that
    owns the remembered values (a status condition may name the namespace's own ExternalId,
    which the tenant needs for its trust policy).
    """
    if not text:
        return text
    if remembered:
        text = _mask_remembered(text)
    text = _XML.sub(lambda m: m.group(1) + MASK + m.group(4), text)
    text = _QUOTED.sub(lambda m: m.group(1) + m.group(2) + MASK + m.group(4), text)
    text = _ASSIGNED.sub(lambda m: m.group(1) + MASK, text)
    text = _HEADER.sub(lambda m: m.group(1) + MASK, text)
    text = _URL.sub(_url, text)
    text = _REQUEST_LINE.sub(lambda m: f"{m.group(1)} {_path(m.group(2))}", text)
    text = _ACCESS_KEY_ID.sub(MASK, text)
    return _TOKEN.sub(MASK, text)


def redact_record(record: logging.LogRecord) -> None:
    """Redact a record in place: its message (arguments merged in), traceback and stack."""
    if getattr(record, "_cloudsweep_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: show both parts, still redacted
        message = f"{record.msg!r} % {record.args!r}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        # Formatters print exc_text when it is set (logging's and python-json-logger's alike).
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._cloudsweep_redacted = True  # type: ignore[attr-defined]  # once per record


class Redactor(logging.Filter):
    """A filter that redacts each record it sees (and never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_FILTERED_LOGGERS: Final = ("", "botocore", "boto3", "urllib3", "kopf", "aiohttp", "cloudsweep")
_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Redact every log record of this process from now on (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        redactor = Redactor()
        for name in _FILTERED_LOGGERS:
            logging.getLogger(name).addFilter(redactor)
        _installed = True
