"""What a restart and an idle operator cost (issue 16, the operator at 1,000 accounts).

A restart resumes every AwsAccount: one whose status already says it is connected, for its
generation, is not verified again (the recheck timer does that), so a restart does not storm STS;
one that was not connected is verified at once. The AwsAccounts' totals come from one query per
refresh for all of them.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from cloudsweep import domain
from cloudsweep.store import Store

from .conftest import GROUP_VERSION, Cluster, wait_for
from .test_awsaccounts import NS, account_spec

EXTERNAL_ID = "cs-resumed-0123456789abcdef"


def _condition(kind: str, connected: bool) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if connected else "False",
        "reason": "Connected" if connected else "AssumeRoleFailed",
        "message": "as before the restart",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": 1,
    }


def _resumed_account(cluster: Cluster, store: Store, world: Any, *, connected: bool) -> Any:
    """An AwsAccount as a previous operator process left it: registered, its spec handled
    (kopf's last-handled-configuration), its status written; kopf resumes it."""
    org = store.ensure_organization(NS, namespace_uid="uid-team-a")
    account = store.register_account(
        org.id,
        account_id=world.account_id,
        role_arn=world.scanner_role_arn,
        external_id=EXTERNAL_ID,
        regions=["us-east-1"],
        account_name="prod",
    )
    store.set_connection(
        account.id,
        domain.ConnectionStatus.CONNECTED if connected else domain.ConnectionStatus.FAILED,
    )
    spec = account_spec(world)
    return cluster.request(
        "POST",
        f"/apis/{GROUP_VERSION}/namespaces/{NS}/awsaccounts",
        {
            "apiVersion": GROUP_VERSION,
            "kind": "AwsAccount",
            "metadata": {
                "name": "prod",
                "namespace": NS,
                "generation": 1,
                "resourceVersion": "1",
                "uid": f"uid-{NS}-prod",
                "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "finalizers": ["cloudsweep.io/finalizer"],
                "annotations": {
                    "cloudsweep.io/last-handled-configuration": json.dumps({"spec": spec})
                },
            },
            "spec": spec,
            "status": {
                "observedGeneration": 1,
                "externalId": EXTERNAL_ID,
                "conditions": [
                    _condition("Ready", connected),
                    _condition("Connected", connected),
                    _condition("ExternalIdEnforced", True),
                ],
            },
        },
    )


@pytest.mark.parametrize("connected", [True, False], ids=["was-connected", "was-failing"])
def test_a_resumed_account_is_verified_again_only_if_it_was_not_connected(
    cluster: Cluster,
    database_url: str,
    request: pytest.FixtureRequest,
    world: Any,
    recorder: Any,
    caplog: pytest.LogCaptureFixture,
    connected: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="kopf.objects")
    cluster.create_namespace(NS, "uid-team-a")
    _resumed_account(cluster, Store(database_url), world, connected=connected)
    request.getfixturevalue("operator")  # started now: it finds the object in its first listing

    wait_for(
        lambda: "Resuming is processed: 1 succeeded" in caplog.text,
        timeout=30,
        what="the resume handler ran",
    )
    assert "Creation is processed" not in caplog.text  # resumed, not created
    assume_roles = recorder.calls(operation="AssumeRole")
    if connected:
        assert assume_roles == []
        assert "was connected before the restart" in caplog.text
    else:
        assert {c.params["RoleArn"] for c in assume_roles} == {world.scanner_role_arn}
