"""An enforcing STS in front of the tests' moto server, and the server-side log of every request.

moto (5.2, default mode) accepts any AssumeRole: it checks no trust policy and no ExternalId, and
assumes roles that do not exist. The tests' moto server (``tests/conftest.py``) is therefore
wrapped in this WSGI middleware, which plays the part of the roles' trust policies:

- a role whose name contains ``seeder`` (the test worlds' own set-up roles, which no AwsAccount
  names) trusts anyone, as moto does;
- a role in ``lax_roles`` has a trust policy WITHOUT an ``sts:ExternalId`` condition: any
  AssumeRole passes (the confused-deputy hole CloudSweep must refuse to use);
- a role in ``pinned`` accepts exactly that ExternalId (``StringEquals sts:ExternalId``);
- every other role requires an ExternalId (its value is not pinned: CloudSweep generates it and
  the test cannot know it before the first AssumeRole).

A refused AssumeRole gets AWS's answer: HTTP 403, ``AccessDenied``. Nothing of CloudSweep is
patched: the check sits on the server side of the HTTP connection.

``requests`` logs every request the server received, with the access key that signed it, and
``key_accounts`` maps each access key moto issued through AssumeRole to the account of the
assumed role: tests read "who called what in which account" from here, not from CloudSweep's
own recorder labels.
"""

from __future__ import annotations

import io
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/")
_KEY_IN_RESPONSE = re.compile(rb"<AccessKeyId>([^<]+)</AccessKeyId>")
_ROLE_NAME = re.compile(r"^arn:[^:]+:iam::(\d{12}):role/(?:.*/)?([^/]+)$")


@dataclass(frozen=True)
class Request:
    """One HTTP request moto received."""

    at: float
    access_key: str | None
    service: str | None
    action: str | None
    params: dict[str, str]
    refused: bool = False


@dataclass
class StsGate:
    lax_roles: set[str] = field(default_factory=set)
    pinned: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    key_accounts: dict[str, str] = field(default_factory=dict)
    # Keys of the test worlds' own seeder roles: the tests' observations, not CloudSweep's calls.
    seeder_keys: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.lax_roles.clear()
            self.pinned.clear()
            self.requests.clear()
            self.key_accounts.clear()
            self.seeder_keys.clear()

    # --- what tests read ---------------------------------------------------------------------

    def calls(
        self, *, account: str | None = None, since: float = 0.0, include_sts: bool = False
    ) -> list[Request]:
        """Requests signed with keys moto issued for ``account`` (any account: None); the test
        worlds' seeder sessions (the tests' own reads of moto's state) are left out."""
        with self.lock:
            found = list(self.requests)
            keys = dict(self.key_accounts)
            seeders = set(self.seeder_keys)
        return [
            r
            for r in found
            if r.at >= since
            and r.access_key not in seeders
            and (include_sts or r.service != "sts")
            and (account is None or keys.get(r.access_key or "") == account)
        ]

    def accounts_called(self, *, since: float = 0.0) -> set[str | None]:
        """The accounts whose (moto-issued) credentials signed a non-STS request."""
        with self.lock:
            keys = dict(self.key_accounts)
        return {keys.get(r.access_key or "") for r in self.calls(since=since)}

    # --- the trust policies ------------------------------------------------------------------

    def refuses(self, params: dict[str, str]) -> bool:
        role = params.get("RoleArn", "")
        match = _ROLE_NAME.match(role)
        name = match.group(2) if match else ""
        with self.lock:
            if "seeder" in name or role in self.lax_roles:
                return False
            if role in self.pinned:
                return params.get("ExternalId") != self.pinned[role]
        return not params.get("ExternalId")

    # --- WSGI ----------------------------------------------------------------------------------

    def wrap(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def middleware(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            params = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
            params.update(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
            credential = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
            action = params.get("Action") or environ.get("HTTP_X_AMZ_TARGET")
            service = credential.group(3) if credential else None
            refused = service == "sts" and action == "AssumeRole" and self.refuses(params)
            request = Request(
                at=time.time(),
                access_key=credential.group(1) if credential else None,
                service=service,
                action=action,
                params={k: v for k, v in params.items() if k != "Policy"},
                refused=refused,
            )
            with self.lock:
                self.requests.append(request)
            if refused:
                return _access_denied(params.get("RoleArn", ""), start_response)
            result = app(environ, start_response)
            if action != "AssumeRole":
                return result
            chunks = list(result)
            issued = _KEY_IN_RESPONSE.search(b"".join(chunks))
            match = _ROLE_NAME.match(params.get("RoleArn", ""))
            if issued and match:
                key = issued.group(1).decode()
                with self.lock:
                    self.key_accounts[key] = match.group(1)
                    if "seeder" in match.group(2):
                        self.seeder_keys.add(key)
            return chunks

        return middleware


def _access_denied(role: str, start_response: Any) -> list[bytes]:
    message = (
        "User: arn:aws:iam::123456789012:user/cloudsweep is not authorized to perform: "
        f"sts:AssumeRole on resource: {role}"
    )
    xml = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        f"<Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error>"
        "<RequestId>sts-gate</RequestId></ErrorResponse>"
    ).encode()
    start_response(
        "403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(xml)))]
    )
    return [xml]


GATE = StsGate()
