"""Watches as a real API server keeps them: the operator through a restart of the whole control
plane (kube-apiserver and the CRD server it proxies custom resources to; etcd keeps every object),
which ends its watches mid-stream, refuses connections for a while, and, the CRD server's watch
cache being new, answers the operator's resumed watches with 410 Gone (resourceVersion too old).

Afterwards nothing may be missed (objects created and changed meanwhile are reconciled) and
nothing repeated (one run-now annotation value, one scan).
"""

from __future__ import annotations

import json
import time

import pytest

from cloudsweep.demo import world as demo_world
from tests.kube_real.conftest import OperatorProcess, condition, wait_for
from tests.kube_real.server import KubeReal, apply_objects
from tests.kube_real.test_operator import account, events, path, run_now, schedule


def watch_from(kube_real: KubeReal, resource_version: str) -> dict[str, object]:
    """The first event of a watch of AwsAccounts resumed at ``resource_version``."""
    answer = kube_real.request(
        "GET",
        "/apis/cloudsweep.io/v1alpha1/awsaccounts",
        params={"watch": "true", "resourceVersion": resource_version, "timeoutSeconds": "1"},
    )
    assert answer.status == 200, answer.body
    return dict(answer.body)


# kopf's retries of a refused connection: 1, 2 and 5 s, then every 5 s (60 s in production).
# A watch resumed while the aggregated CRD server was still starting was seen to stay silent
# until the inactivity timeout replaced it (70 s in production; 20 s here).
@pytest.mark.parametrize(
    "operator_env",
    [
        {
            "CLOUDSWEEP_KUBE_RETRY_MAX_BACKOFF_SECONDS": "5",
            "CLOUDSWEEP_KUBE_WATCH_INACTIVITY_SECONDS": "20",
            "CLOUDSWEEP_ALLOW_SHARED_ACCOUNTS": "true",  # see conftest.operator_env
        }
    ],
    ids=["fast-retries"],
)
def test_the_operator_survives_a_control_plane_restart_and_410_gone(
    kube_real: KubeReal,
    namespace: str,
    cloudsweep_operator: OperatorProcess,
    world: demo_world.DemoWorld,
) -> None:
    ns = namespace
    apply_objects(kube_real, [account(world), schedule()], "-n", ns)
    first = wait_for(
        lambda: (
            (o := kube_real.get(path(ns, "awsaccounts", "prod")))
            and (condition(o, "Connected") or {}).get("status") == "True"
            and o
        ),
        what="the account connected",
    )
    run_now(kube_real, ns, "before")
    seen_version = first["metadata"]["resourceVersion"]
    # Etcd moves on (Events, leases): the resourceVersion the operator's watch holds gets old.
    kube_real.kubectl("create", "configmap", "tick", "-n", ns)

    cloudsweep_operator.rbac_checked_until = len(cloudsweep_operator.output())
    kube_real.restart_control_plane(down_seconds=3)

    # The server really answers that resourceVersion with 410 Gone now.
    gone = watch_from(kube_real, seen_version)
    assert gone.get("type") == "ERROR" and gone["object"]["code"] == 410, gone  # type: ignore[index]

    # Nothing missed: an object created and one changed after the restart are reconciled.
    second = account(world, "second")
    apply_objects(kube_real, [second], "-n", ns)
    wait_for(
        lambda: (
            (condition(kube_real.get(path(ns, "awsaccounts", "second")), "Connected") or {}).get(
                "status"
            )
            == "True"
        ),
        timeout=120,
        what="an account created after the restart",
    )
    # Nothing repeated: one new run-now value is one scan (the old one is not run again).
    run_now(kube_real, ns, "after")
    time.sleep(5)
    started = [r for r in events(kube_real, ns, "ScanSchedule", "nightly") if r == "ScanStarted"]
    listed = json.loads(kube_real.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    counts = sum(
        e.get("count", 1)
        for e in listed
        if e["reason"] == "ScanStarted" and e["involvedObject"]["name"] == "nightly"
    )
    assert started and counts == 2, (started, counts)
    assert cloudsweep_operator.healthy() and cloudsweep_operator.process.poll() is None
    assert "Traceback" not in cloudsweep_operator.output(), cloudsweep_operator.output()[-3000:]
