"""AwsAccount through the operator: ExternalId, connection, conditions, events, tenancy, deletion."""

from __future__ import annotations

from typing import Any

import boto3

from cloudsweep import aws
from cloudsweep.demo import world as demo_world

from .. import faults
from .conftest import Cluster, condition, wait_for

NS = "team-a"


def account_spec(world: demo_world.DemoWorld, **overrides: Any) -> dict[str, Any]:
    spec = {
        "accountId": world.account_id,
        "roleArn": world.scanner_role_arn,
        "regions": ["us-east-1"],
    }
    spec.update(overrides)
    return spec


def test_account_gets_its_external_id_and_connects(
    cluster: Cluster, operator, world, recorder
) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))

    obj = wait_for(
        lambda: (
            (o := cluster.get("awsaccounts", NS, "prod"))
            and (condition(o, "Connected") or {}).get("status") == "True"
            and o
        ),
        what="Connected=True",
    )
    external_id = obj["status"]["externalId"]
    assert external_id.startswith("cs-") and len(external_id) > 20
    assert condition(obj, "Ready")["status"] == "True"
    ready = condition(obj, "Ready")
    assert (
        ready["reason"] == "Connected"
        and ready["lastTransitionTime"]
        and ready["observedGeneration"] == 1
    )
    # The role (behind the tests' enforcing STS) refuses CloudSweep's probe without the ExternalId.
    enforced = condition(obj, "ExternalIdEnforced")
    assert enforced["status"] == "True" and enforced["reason"] == "ExternalIdEnforced"
    assumes = recorder.calls(operation="AssumeRole")
    assert any(c.params.get("ExternalId") == external_id for c in assumes)
    assert any("ExternalId" not in c.params and c.error_code == "AccessDenied" for c in assumes)
    # The organization is the namespace, with its UID; the ExternalId is in the database.
    org = operator.store.organization(NS)
    assert org is not None
    account = operator.store.account(org.id, world.account_id)
    assert account is not None and account.external_id == external_id
    assert account.connection_status == "connected"
    wait_for(
        lambda: "Connected" in {e.get("reason") for e in cluster.events(NS)},
        what="events",
    )

    # The ExternalId is stable: a spec change keeps it.
    cluster.patch(
        "awsaccounts",
        NS,
        "prod",
        {"spec": {"regions": ["us-east-1", "eu-west-1"]}, "metadata": {"generation": 2}},
    )
    wait_for(
        lambda: (
            operator.store.account(org.id, world.account_id).regions == ("us-east-1", "eu-west-1")
        ),
        what="regions updated",
    )
    assert operator.store.account(org.id, world.account_id).external_id == external_id


def test_invalid_accounts_get_a_permanent_condition_and_no_aws_call(
    cluster: Cluster, operator, world, recorder
) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    cases = {
        "other-account": account_spec(
            world, roleArn="arn:aws:iam::222222222222:role/CloudSweepScanner"
        ),
        "short-id": account_spec(
            world, accountId="12345678901", roleArn="arn:aws:iam::12345678901:role/x"
        ),
        "bad-region": account_spec(world, regions=["mars-north-1"]),
    }
    for name, spec in cases.items():
        cluster.create("awsaccounts", "AwsAccount", NS, name, spec)
    for name in cases:
        obj = wait_for(
            lambda n=name: condition(cluster.get("awsaccounts", NS, n), "Ready"),
            what=f"{name} Ready",
        )
        assert obj["status"] == "False" and obj["reason"] == "InvalidSpec", obj
    messages = {
        name: condition(cluster.get("awsaccounts", NS, name), "Ready")["message"] for name in cases
    }
    assert "222222222222" in messages["other-account"] or "roleArn" in messages["other-account"]
    assert "accountId" in messages["short-id"]
    assert "regions" in messages["bad-region"]
    assert recorder.records == []
    wait_for(lambda: "InvalidSpec" in {e.get("reason") for e in cluster.events(NS)}, what="event")


def test_a_refused_assume_role_is_a_condition_not_a_crash(
    cluster: Cluster, operator, world, recorder
) -> None:
    """moto accepts every AssumeRole; the operator's own STS answers AccessDenied here (injected at
    the botocore layer on CloudSweep's base session)."""

    def denied(*args: Any, **kwargs: Any) -> aws.AccountSession:
        base = boto3.Session()
        faults.fail_with(
            base.events,
            "before-send.sts.AssumeRole",
            status=403,
            body=faults.query_error_body(
                "AccessDenied", "not authorized to perform sts:AssumeRole"
            ),
        )
        return aws.AccountSession(*args, base_session=base, **kwargs)

    operator.session_factory = denied
    cluster.create_namespace(NS, "uid-team-a")
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))
    connected = wait_for(
        lambda: condition(cluster.get("awsaccounts", NS, "prod"), "Connected"), what="Connected"
    )
    assert connected["status"] == "False" and connected["reason"] == "AssumeRoleFailed"
    assert world.scanner_role_arn in connected["message"] and "ExternalId" in connected["message"]
    assert condition(cluster.get("awsaccounts", NS, "prod"), "Ready")["status"] == "False"
    assert {c.service for c in recorder.records} <= {"sts"}


def test_deleting_an_account_keeps_its_history(cluster: Cluster, operator, world) -> None:
    cluster.create_namespace(NS, "uid-team-a")
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))
    wait_for(
        lambda: (
            (condition(cluster.get("awsaccounts", NS, "prod"), "Connected") or {}).get("status")
            == "True"
        ),
        what="connected",
    )
    obj = cluster.get("awsaccounts", NS, "prod")
    assert "cloudsweep.io/finalizer" in obj["metadata"].get("finalizers", [])
    cluster.delete("awsaccounts", NS, "prod")
    wait_for(lambda: cluster.get("awsaccounts", NS, "prod") is None, what="object gone")
    org = operator.store.organization(NS)
    assert org is not None
    assert operator.store.accounts(org.id) == []  # deleted accounts are not listed
    assert operator.store.account(org.id, world.account_id) is not None  # but the row stays
