"""One bad CleanupPolicy never stops the other policies of its namespace (issue 11, point 6).

A NUL byte in an ``excludeTags`` key once passed admission, and the database then refused every
cleanup run of the namespace, so no policy ran. Admission refuses such text now (tests/crds), so
here the database refuses one policy's document by a constraint the test adds, standing for any
failure that only one policy causes; CloudSweep's code is not touched.
"""

from __future__ import annotations

import sqlalchemy as sa

from cloudsweep.store.engine import get_engine

from .conftest import Cluster, condition, wait_for
from .test_awsaccounts import account_spec
from .test_schedules_and_policies import schedule_spec

NS = "team-iso"


def policy_spec(resource_type: str, action: str, **rules: object) -> dict[str, object]:
    return {
        "resourceType": resource_type,
        "action": action,
        "accountSelector": {},
        "rules": {"minAgeDays": 0, "minConfidence": 50, **rules},
        "autoExecute": True,
        "maxMonthlyCost": "1000.00",
        "requireApprovalAbove": "1000.00",
        "dryRun": True,
    }


def refuse_runs_recording(database_url: str, policy: str) -> None:
    """PostgreSQL refuses any cleanup run whose recorded policies include ``policy``."""
    needle = f'"name": "{policy}"'  # as jsonb prints it; names are [a-z0-9.-] only
    with get_engine(database_url).begin() as connection:
        connection.execute(
            sa.text(
                "ALTER TABLE cleanup_runs ADD CONSTRAINT test_refuses_one_policy CHECK "
                f"(position('{needle}' in policies::text) = 0)"
            )
        )


def test_a_policy_the_database_refuses_does_not_stop_the_others(
    cluster: Cluster, operator, world, recorder, database_url: str
) -> None:
    cluster.request(
        "POST",
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NS,
                "uid": "uid-team-iso",
                "annotations": {"cloudsweep.io/auto-cleanup": "enabled"},
            },
        },
    )
    cluster.create(
        "awsaccounts",
        "AwsAccount",
        NS,
        "prod",
        account_spec(world, autoCleanupEnabled=True),
        labels={"env": "prod"},
    )
    # "bad" sorts first: it is planned first, and its document goes into the run first.
    cluster.create(
        "cleanuppolicies", "CleanupPolicy", NS, "bad", policy_spec("elastic-ip", "release")
    )
    cluster.create(
        "cleanuppolicies",
        "CleanupPolicy",
        NS,
        "good",
        policy_spec("ebs-volume", "snapshot-and-delete", maxRiskLevel="medium"),
    )
    # The input of the original report: refused where it enters (the operator's own validation
    # of what KMock, which validates nothing, let through), never reaching the database.
    nul = policy_spec("elastic-ip", "release", excludeTags={"keep\x00me": "*"})
    cluster.create("cleanuppolicies", "CleanupPolicy", NS, "nul-tag", nul)
    refused = wait_for(
        lambda: condition(cluster.get("cleanuppolicies", NS, "nul-tag"), "Ready"),
        what="the NUL policy refused",
    )
    assert refused["reason"] == "InvalidSpec" and "control characters" in refused["message"]
    wait_for(
        lambda: (org := operator.store.organization(NS)) is not None and org.auto_cleanup_enabled,
        what="the namespace's opt-in reaching the organization",
    )
    refuse_runs_recording(database_url, "bad")

    cluster.create(
        "scanschedules",
        "ScanSchedule",
        NS,
        "nightly",
        schedule_spec(),
        annotations={"cloudsweep.io/run-now": "go"},
    )
    status = wait_for(
        lambda: (
            (s := cluster.get("scanschedules", NS, "nightly").get("status") or {}).get("lastRunNow")
            == "go"
            and s.get("lastRunOutcome") not in (None, "running")
            and s
        ),
        timeout=90,
        what="the scan and its cleanup run",
    )
    assert status["lastRunOutcome"] == "completed", status

    # The good policy ran: its dry runs are in the ledger (and AWS saw only DryRun calls).
    actions = operator.store.actions(NS)
    assert actions and {a.policy_name for a in actions} == {"good"}, actions
    assert all(a.dry_run for a in actions)
    assert [c for c in recorder.mutating() if not c.params.get("DryRun")] == []
    # The bad one says so in its own status.
    ready = wait_for(
        lambda: (
            (c := condition(cluster.get("cleanuppolicies", NS, "bad"), "Ready"))
            and c["reason"] == "EvaluationFailed"
            and c
        ),
        what="the bad policy's condition",
    )
    assert ready["status"] == "False" and "test_refuses_one_policy" in ready["message"]
    assert ready["message"].startswith("the last cleanup run of this policy failed (")
    assert ready["message"].endswith("); the namespace's other policies ran without it")
    good = condition(cluster.get("cleanuppolicies", NS, "good"), "Ready")
    assert good is not None and good["status"] == "True", good
