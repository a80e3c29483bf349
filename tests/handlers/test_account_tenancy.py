"""AwsAccount tenancy through the operator (kopf on KMock, moto behind the enforcing STS of
``tests/sts_gate.py``, PostgreSQL): one account, one organization; a role that does not enforce
its ExternalId is not connected; deleting an AwsAccount stops its running scan.

What AWS saw is read from the gate's log of the requests moto received (the access key moto
issued, mapped to its account), not from CloudSweep's recorder.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import sqlalchemy as sa

from cloudsweep import aws
from cloudsweep.store.engine import get_engine
from tests.sts_gate import StsGate

from .conftest import Cluster, condition, wait_for
from .test_awsaccounts import account_spec
from .test_schedules_and_policies import connected_account, schedule_spec

CLAIMED = "AccountClaimedByAnotherOrganization"


def connected(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    return condition(cluster.get("awsaccounts", namespace, name), "Connected")


def test_a_second_namespace_cannot_take_an_account_another_holds(
    cluster: Cluster, operator: Any, world: Any, sts: StsGate
) -> None:
    cluster.create_namespace("team-a", "uid-team-a")
    cluster.create_namespace("team-b", "uid-team-b")
    connected_account(cluster, world, "team-a")
    holder = cluster.get("awsaccounts", "team-a", "prod")
    org_a = operator.store.organization("team-a")
    stored_a = operator.store.account(org_a.id, world.account_id)
    started = time.time()

    # Same accountId and roleArn from another namespace: refused, no AWS call at all.
    cluster.create("awsaccounts", "AwsAccount", "team-b", "stolen", account_spec(world))
    refused = wait_for(
        lambda: (c := connected(cluster, "team-b", "stolen")) and c["reason"] == CLAIMED and c,
        what="claimed condition",
    )
    assert refused["status"] == "False" and "another organization" in refused["message"]
    assert "team-a" not in refused["message"]
    obj = cluster.get("awsaccounts", "team-b", "stolen")
    assert condition(obj, "Ready")["reason"] == CLAIMED
    assert not obj["status"].get("externalId")
    wait_for(lambda: CLAIMED in {e.get("reason") for e in cluster.events("team-b")}, what="event")
    assert sts.calls(since=started, include_sts=True) == []
    # The holder's registration, ExternalId and status are untouched.
    org_b = operator.store.organization("team-b")
    assert operator.store.account(org_b.id, world.account_id) is None
    assert operator.store.account(org_a.id, world.account_id) == stored_a
    assert cluster.get("awsaccounts", "team-a", "prod")["status"] == holder["status"]

    # The holder deletes its AwsAccount: the claim is released, and team-b's object registers
    # at its next reconcile (a spec change here; the recheck timer otherwise).
    cluster.delete("awsaccounts", "team-a", "prod")
    wait_for(lambda: cluster.get("awsaccounts", "team-a", "prod") is None, what="holder gone")
    cluster.patch(
        "awsaccounts",
        "team-b",
        "stolen",
        {"spec": {"displayName": "now ours"}, "metadata": {"generation": 2}},
    )
    wait_for(
        lambda: (connected(cluster, "team-b", "stolen") or {}).get("status") == "True",
        what="team-b connected after the release",
    )
    new_external_id = cluster.get("awsaccounts", "team-b", "stolen")["status"]["externalId"]
    assert new_external_id and new_external_id != stored_a.external_id


def test_a_role_that_ignores_the_external_id_is_not_connected(
    cluster: Cluster, operator: Any, world: Any, sts: StsGate
) -> None:
    sts.lax_roles.add(world.scanner_role_arn)  # its trust policy has no sts:ExternalId condition
    cluster.create_namespace("team-a", "uid-team-a")
    cluster.create("awsaccounts", "AwsAccount", "team-a", "prod", account_spec(world))
    refused = wait_for(
        lambda: (c := connected(cluster, "team-a", "prod")) and c["status"] == "False" and c,
        what="Connected=False",
    )
    assert refused["reason"] == "ExternalIdNotEnforced"
    assert "CLOUDSWEEP_ALLOW_SHARED_ACCOUNTS" in refused["message"]
    obj = cluster.get("awsaccounts", "team-a", "prod")
    assert condition(obj, "ExternalIdEnforced")["status"] == "False"
    assert condition(obj, "Ready")["status"] == "False"
    assert sts.calls() == []  # AssumeRole and its probe only: not one call into the account
    org = operator.store.organization("team-a")
    assert operator.store.account(org.id, world.account_id).connection_status == "failed"


def test_allowing_shared_accounts_connects_both_namespaces_and_warns(
    cluster: Cluster, operator: Any, world: Any, sts: StsGate
) -> None:
    operator.settings = operator.settings.model_copy(update={"allow_shared_accounts": True})
    sts.lax_roles.add(world.scanner_role_arn)
    for namespace in ("team-a", "team-b"):
        cluster.create_namespace(namespace, f"uid-{namespace}")
        cluster.create("awsaccounts", "AwsAccount", namespace, "prod", account_spec(world))
    for namespace in ("team-a", "team-b"):
        wait_for(
            lambda ns=namespace: (connected(cluster, ns, "prod") or {}).get("status") == "True",
            what=f"{namespace} connected",
        )
        warning = condition(cluster.get("awsaccounts", namespace, "prod"), "ExternalIdEnforced")
        assert warning["status"] == "False" and warning["reason"] == "ExternalIdNotEnforced"


def test_deleting_an_account_stops_its_running_scan(
    cluster: Cluster, operator: Any, world: Any, sts: StsGate, database_url: str
) -> None:
    """Each AWS call of the scan is slowed (after its answer, at the botocore layer) so that the
    scan is still running when its AwsAccount is deleted; after the deletion is processed, moto
    receives no request signed with the account's credentials, and no finding is stored."""

    def slow(*args: Any, **kwargs: Any) -> aws.AccountSession:
        session = aws.AccountSession(*args, base_session=boto3.Session(), **kwargs)

        def pause(**_: Any) -> None:
            time.sleep(0.4)

        session.events.register("after-call", pause)
        return session

    cluster.create_namespace("team-a", "uid-team-a")
    connected_account(cluster, world, "team-a")
    operator.session_factory = slow
    cluster.create(
        "scanschedules",
        "ScanSchedule",
        "team-a",
        "nightly",
        schedule_spec(accountSelector=None, accounts=["prod"]),
    )
    cluster.patch(
        "scanschedules",
        "team-a",
        "nightly",
        {"metadata": {"annotations": {"cloudsweep.io/run-now": "now"}}},
    )
    wait_for(lambda: len(sts.calls(account=world.account_id)) >= 4, what="the scan under way")
    requested = time.time()
    cluster.delete("awsaccounts", "team-a", "prod")
    wait_for(
        lambda: cluster.get("awsaccounts", "team-a", "prod") is None, timeout=90, what="deleted"
    )
    processed = time.time()
    time.sleep(4)  # longer than the rest of the scan would take

    # Not vacuous: the scan was still calling AWS when the deletion was requested...
    assert sts.calls(account=world.account_id, since=requested - 2)
    # ...and moto received nothing signed with the account's keys once it was processed.
    assert sts.calls(account=world.account_id, since=processed) == []
    with get_engine(database_url).connect() as conn:
        items = conn.execute(sa.text("SELECT count(*) FROM waste_items")).scalar_one()
        statuses = conn.execute(sa.text("SELECT status FROM scan_results")).scalars().all()
    assert items == 0
    assert statuses == ["cancelled"]
