"""Base credentials: what CloudSweep itself runs as, before assuming any account's role.

Called by the command line (``--profile``, the demo's emulator keys) and the pricing refresh. In
the operator, boto3's default chain is used (a service account's web identity).
"""

from __future__ import annotations

from typing import Any

import boto3


def base_session(profile: str | None = None) -> boto3.Session:
    """boto3's default credential chain, or a named profile of the user's AWS config."""
    return boto3.Session(profile_name=profile) if profile else boto3.Session()


def static_session(access_key_id: str, secret_access_key: str) -> boto3.Session:
    """Fixed keys, for the local emulator of the demo (they open nothing real)."""
    return boto3.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)


def pricing_client(session: boto3.Session, endpoint_url: str | None = None) -> Any:
    """The Price List API client; the API is served from us-east-1 only."""
    return session.client("pricing", region_name="us-east-1", endpoint_url=endpoint_url)
