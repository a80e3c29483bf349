"""What AccountSessions share within a process (botocore's data, the base credentials) and what
they never share (assumed-role credentials, event hooks): issue 16, the operator at 1,000 accounts.

Against moto behind the tests' enforcing STS: every role here requires its ExternalId.
"""

from __future__ import annotations

import time

import pytest

from cloudsweep import aws
from cloudsweep.aws import shared
from cloudsweep.settings import Settings

ACCOUNTS = ("210000000001", "210000000002")


def _session(endpoint: str, account: str, external_id: str) -> aws.AccountSession:
    return aws.AccountSession(
        account,
        f"arn:aws:iam::{account}:role/cloudsweep",
        external_id=external_id,
        settings=Settings(aws_endpoint_url=endpoint),
        recorder=aws.CallRecorder(),
        require_external_id=True,
    )


def test_each_account_gets_its_own_credentials_over_the_shared_parts(moto_endpoint, sts) -> None:
    first, second = (_session(moto_endpoint, a, f"ext-{a}") for a in ACCOUNTS)

    identities = [first.verify(), second.verify()]

    assert [i.account for i in identities] == list(ACCOUNTS)
    keys = [
        s._session.get_credentials().get_frozen_credentials().access_key for s in (first, second)
    ]
    assert keys[0] != keys[1]
    # moto's STS saw each GetCallerIdentity signed by the key issued for that account's role.
    whoami = [c for c in sts.calls(include_sts=True) if c.action == "GetCallerIdentity"]
    assert sorted(sts.key_accounts.get(c.access_key or "") for c in whoami) == sorted(ACCOUNTS)
    # The parts shared are read-only data and CloudSweep's own identity, nothing else.
    assert first._session._session is not second._session._session
    assert first.events is not second.events
    loaders = {s._session._session.get_component("data_loader") for s in (first, second)}
    assert loaders == {shared.loader()}


def test_the_shared_loader_does_not_grow_with_sessions(moto_endpoint) -> None:
    _session(moto_endpoint, ACCOUNTS[0], "ext")
    folders = list(shared.loader().search_paths)

    for _ in range(5):
        _session(moto_endpoint, ACCOUNTS[0], "ext").client("sts", "us-east-1")

    assert shared.loader().search_paths == folders


def test_base_credentials_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFIRST")
    first = shared.base_session().get_credentials()
    again = shared.base_session().get_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSECOND")
    changed = shared.base_session().get_credentials()

    assert first is again  # resolved once
    assert changed.access_key == "AKIDSECOND"


def test_a_connection_check_builds_no_fresh_botocore_data(moto_endpoint) -> None:
    """The cost issue 16 measured: 0.235 CPU-s for a check's two fresh sessions. Warm, a check's
    sessions and clients must cost a fraction of that (measured ~0.03 s; bound kept loose for a
    loaded machine: CPU time, not wall time)."""
    _session(moto_endpoint, ACCOUNTS[0], "warm").verify()
    started = time.process_time()
    for _ in range(5):
        session = _session(moto_endpoint, ACCOUNTS[1], "ext")
        session._session.client("sts", region_name="us-east-1")
        session._sts()
    per_check = (time.process_time() - started) / 5

    assert per_check < 0.1


def test_accounts_share_client_classes_never_clients_or_hooks(moto_endpoint, sts) -> None:
    """botocore built a class per client (600 methods for EC2: 29% of the operator's CPU while
    scanning); the class is now built once per service, the clients stay each account's own."""
    first, second = (_session(moto_endpoint, a, f"ext-{a}") for a in ACCOUNTS)

    clients = [s.client("ec2", "us-east-1") for s in (first, second)]

    assert type(clients[0]) is type(clients[1])
    assert clients[0].meta.service_model is clients[1].meta.service_model  # read-only API data
    assert clients[0] is not clients[1]
    assert clients[0].meta.events is not clients[1].meta.events
    # Each client still calls AWS with its own account's credentials.
    for client in clients:
        client.describe_volumes()
    described = [c for c in sts.calls(include_sts=False) if c.action == "DescribeVolumes"]
    assert sorted(sts.key_accounts.get(c.access_key or "") for c in described[-2:]) == sorted(
        ACCOUNTS
    )


def test_a_session_with_its_own_class_hooks_gets_its_own_class(moto_endpoint) -> None:
    plain = _session(moto_endpoint, ACCOUNTS[0], "ext-plain")
    hooked = _session(moto_endpoint, ACCOUNTS[1], "ext-hooked")

    def add_marker(class_attributes: dict[str, object], **_: object) -> None:
        class_attributes["cloudsweep_marker"] = True

    hooked.events.register("creating-client-class.ec2", add_marker)

    assert hooked.client("ec2", "us-east-1").cloudsweep_marker is True
    assert not hasattr(plain.client("ec2", "us-east-1"), "cloudsweep_marker")


def test_the_shared_base_session_gets_no_hooks_per_account(moto_endpoint) -> None:
    """The base session is the process's: a recorder goes on each account's own STS client, so
    the base session's hooks do not grow with accounts, and each recorder sees its AssumeRole."""
    _session(moto_endpoint, ACCOUNTS[0], "ext-warm").verify()
    hooks = shared.base_session().events._emitter._handlers
    before = repr(hooks._root)

    sessions = [_session(moto_endpoint, ACCOUNTS[i % 2], f"ext-{i}") for i in range(4)]
    for session in sessions:
        session.verify()

    assert repr(hooks._root) == before
    for session in sessions:
        assumed = [
            r
            for r in session._recorder.records
            if r.operation == "AssumeRole"  # type: ignore[union-attr]
        ]
        assert assumed and all(r.caller_account is None for r in assumed)
