"""The parts of boto3 that hold no tenant's data, built once per process.

Called by ``cloudsweep.aws.session`` for every ``AccountSession``. A fresh ``boto3.Session()``
reads and parses botocore's JSON data (service models, endpoints, partitions) again: about
0.07 CPU-seconds for a session and its first client, twice per connection check, which made the
operator spend 0.8 CPU-s per AwsAccount (issue 16). Here:

- ``boto3_session(core)``: a boto3 session on a botocore session of its own (its own event hooks,
  credentials and clients) that reads one data loader shared with every other; the loader only
  caches parsed, read-only data files;
- ``base_session()``: a boto3 session on such a core with the operator's own base credentials
  (the default chain: environment, profile, web identity), resolved once per process and shared:
  they are CloudSweep's identity, the same for every account. A refreshable chain (web identity)
  refreshes itself, under botocore's lock. The credentials' environment is part of the cache key,
  so a changed environment (tests, a rotated profile) resolves again.

Assumed-role credentials are never shared: every ``AccountSession`` assumes its account's role
itself, with that account's ExternalId.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
import botocore.session

# The environment botocore's default credential chain reads.
_CREDENTIAL_ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)

_lock = threading.Lock()
_loader: Any = None
_base_credentials: dict[tuple[str | None, ...], Any] = {}


def loader() -> Any:
    """The process's botocore data loader (with boto3's data folder, as a boto3 session has it)."""
    global _loader
    with _lock:
        if _loader is None:
            _loader = boto3.Session(botocore_session=botocore.session.Session())._loader
        return _loader


def boto3_session(core: Any) -> boto3.Session:
    """A boto3 session on the botocore session ``core``, which then reads the shared loader.

    boto3 appends its data folder to the loader of the session it wraps: wrapped first (into
    ``core``'s own, throw-away loader), so the shared loader's folder list never grows.
    """
    session = boto3.Session(botocore_session=core)
    core.register_component("data_loader", loader())
    return session


def base_session() -> boto3.Session:
    """A boto3 session with the operator's own base credentials, resolved once per process."""
    core: Any = botocore.session.Session()
    session = boto3_session(core)
    key = tuple(os.environ.get(name) for name in _CREDENTIAL_ENVIRONMENT)
    with _lock:
        credentials = _base_credentials.get(key)
    if credentials is None:
        credentials = core.get_credentials()
        if credentials is not None:  # none found: not cached, so set-up later is seen
            with _lock:
                credentials = _base_credentials.setdefault(key, credentials)
    core._credentials = credentials  # botocore's own attribute for them
    return session
