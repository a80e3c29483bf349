"""What the operator process asked of AWS, as moto's server received it (moto's own recorder).

The operator runs as a separate process here, so the in-process botocore recorder of the other
tiers cannot see its calls; moto's request recorder (``/moto-api/recorder/``) can: it logs every
request the session's moto server answers, whoever made it.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.moto_api import recorder

# Operations that change nothing in an account (the scan's listings, STS for credentials).
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "AssumeRole")


def _post(endpoint: str, action: str) -> str:
    request = urllib.request.Request(f"{endpoint}/moto-api/recorder/{action}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


@dataclass(frozen=True)
class Call:
    """One request moto answered: the AWS operation and its query parameters (if any)."""

    operation: str
    params: dict[str, list[str]]

    @property
    def mutating(self) -> bool:
        return not self.operation.startswith(READ_ONLY_PREFIXES)

    def names(self, value: str) -> bool:
        return any(value in values for values in self.params.values())


def _call(entry: dict[str, Any]) -> Call:
    """The AWS operation of one recorded request: ``X-Amz-Target`` (JSON protocols) or the
    ``Action`` of a query-protocol body or URL (EC2, STS), with that body's parameters."""
    headers = {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
    body = str(entry.get("body") or "")
    if entry.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    url = urllib.parse.urlparse(str(entry.get("url") or ""))
    target = headers.get("x-amz-target")
    if target:
        return Call(target.rpartition(".")[2], {})
    for text in (body, url.query):
        params = urllib.parse.parse_qs(text)
        if params.get("Action"):
            return Call(params["Action"][0], params)
    return Call(f"{entry.get('method')} {url.path}", {})


@contextmanager
def recorded(endpoint: str) -> Iterator[list[Call]]:
    """Record moto's requests while the block runs; the list is filled when it ends."""
    operations: list[Call] = []
    # The recorder logs to a file named at import (default: the working directory): point it
    # at a temporary file for the block, then put it back.
    folder = tempfile.mkdtemp(prefix="cs-moto-rec-")
    previous = recorder._location
    recorder._location = str(Path(folder) / "recording")
    _post(endpoint, "reset-recording")
    _post(endpoint, "start-recording")
    try:
        yield operations
    finally:
        _post(endpoint, "stop-recording")
        log = Path(recorder._location).read_text() if Path(recorder._location).exists() else ""
        recorder._location = previous
        shutil.rmtree(folder, ignore_errors=True)
        operations.extend(_call(json.loads(line)) for line in log.splitlines() if line)
