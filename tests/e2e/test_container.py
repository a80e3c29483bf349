"""The operator image end to end, without a cluster: the container tier.

Where a container engine runs (Docker or Podman) but kind does not, this is the closest thing to
the kind tier: the image built from this checkout runs exactly as the Deployment runs it (user
10001, read-only root file system, only /tmp writable, every capability dropped). First as the
migration init container against an empty database, then as the operator against KMock's
Kubernetes emulator over HTTP, a moto server as AWS and a real PostgreSQL, all on the host's
network. The samples from ``deploy/samples`` are applied (adapted to the seeded account) and the
test checks conditions, a scan, ``/healthz``, ``/metrics``, a dry-run cleanup that changes nothing
in AWS, and a clean stop on SIGTERM. ``CLOUDSWEEP_E2E_KEEP=1`` keeps the stopped container.

Elsewhere (this project's CI) it skips with the reason, like the image build tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudsweep.store import Store, migrate
from tests import containers
from tests.e2e import samples
from tests.handlers.conftest import Cluster, cluster, condition, wait_for
from tests.net import free_port

REPO = Path(__file__).resolve().parents[2]
TEAM = "team-e2e"
ACCOUNT = samples.ACCOUNT
__all__ = ["cluster"]  # KMock's emulator, the same fixture the handler tests use

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _seed(moto_endpoint: str) -> str:
    kw: dict[str, Any] = {"endpoint_url": moto_endpoint, "region_name": "us-east-1"}
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    boto3.client("iam", **kw).create_role(
        RoleName=samples.ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust)
    )
    volume = boto3.client("ec2", **kw).create_volume(
        AvailabilityZone="us-east-1a", Size=100, VolumeType="gp3"
    )
    return str(volume["VolumeId"])


def _get(url: str) -> tuple[int, str]:
    """Status and body; (0, "") while nothing listens yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


class Operator:
    def __init__(self, image: containers.Image, name: str, ports: dict[str, int]) -> None:
        self.image, self.name, self.ports = image, name, ports

    def url(self, port: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[port]}{path}"

    def logs(self) -> str:
        result = self.image.engine.run("logs", self.name, check=False, timeout=60)
        return result.stdout + result.stderr


@pytest.fixture
def operator_container(
    container_image: containers.Image,
    cluster: Cluster,
    moto_endpoint: str,
    empty_database_url: str,
) -> Iterator[Operator]:
    with contextlib.ExitStack() as stack:
        yield from _run_operator(stack, container_image, cluster, moto_endpoint, empty_database_url)


def _run_operator(
    stack: contextlib.ExitStack,
    container_image: containers.Image,
    cluster: Cluster,
    moto_endpoint: str,
    empty_database_url: str,
) -> Iterator[Operator]:
    engine, tag = container_image.engine, container_image.tag
    hardened = [*container_image.hardened_run_args(), "--network", "host"]
    database_url = stack.enter_context(containers.tcp_database_url(empty_database_url))
    database = ["-e", f"CLOUDSWEEP_DATABASE_URL={database_url}"]

    # The init container of the Deployment: migrate the empty database, then start.
    engine.run("run", "--rm", *hardened, *database, tag, "db", "upgrade", timeout=300)
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()

    ports = {"health": free_port(), "metrics": free_port(), "webhook": free_port()}
    environment = {
        "CLOUDSWEEP_KUBE_API_URL": cluster.url,
        "CLOUDSWEEP_AWS_ENDPOINT_URL": moto_endpoint,
        "CLOUDSWEEP_HEALTH_PORT": ports["health"],
        "CLOUDSWEEP_METRICS_PORT": ports["metrics"],
        "CLOUDSWEEP_WEBHOOK_PORT": ports["webhook"],
        "CLOUDSWEEP_WEBHOOK_ADDR": "127.0.0.1",
        "CLOUDSWEEP_WEBHOOK_HOST": "127.0.0.1",
        "CLOUDSWEEP_SCHEDULE_JITTER_SECONDS": 0,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env = [arg for k, v in environment.items() for arg in ("-e", f"{k}={v}")]
    name = f"cloudsweep-operator-{uuid.uuid4().hex[:8]}"
    # The Deployment's arguments; the image's default CMD is plain `operator`, also standalone.
    engine.run(
        "run", "-d", "--name", name, *hardened, *database, *env, tag, "operator", "--standalone"
    )
    operator = Operator(container_image, name, ports)
    try:
        yield operator
    finally:
        print(operator.logs()[-20000:])  # shown by pytest when the test failed
        if os.environ.get("CLOUDSWEEP_E2E_KEEP") != "1":
            engine.run("rm", "-f", name, check=False, timeout=120)


def test_the_image_runs_the_operator_like_the_deployment(
    operator_container: Operator, cluster: Cluster, moto_endpoint: str, empty_database_url: str
) -> None:
    volume = _seed(moto_endpoint)
    operator = operator_container
    status = wait_for(
        lambda: _get(operator.url("health", "/healthz"))[0] == 200,
        timeout=120,
        what="/healthz from the operator container",
    )
    assert status

    samples.apply_to(cluster, TEAM)

    account = wait_for(
        lambda: (
            (a := cluster.get("awsaccounts", TEAM, "payments-prod"))
            and (condition(a, "Connected") or {}).get("status") == "True"
            and a
        ),
        timeout=120,
        what="AwsAccount Connected=True",
    )
    assert account["status"]["externalId"]

    cluster.patch(
        "scanschedules",
        TEAM,
        "nightly-production",
        {"metadata": {"annotations": {"cloudsweep.io/run-now": time.strftime("%H%M%S")}}},
    )
    last_scan = wait_for(
        lambda: cluster.get("awsaccounts", TEAM, "payments-prod")["status"].get("lastScan"),
        timeout=180,
        what="a scan reported on the AwsAccount",
    )
    assert last_scan["outcome"] == "completed", last_scan
    assert float(last_scan["monthlyWaste"]) > 0

    wait_for(
        lambda: (
            (p := cluster.get("cleanuppolicies", TEAM, "unattached-volumes"))
            and (condition(p, "Ready") or {}).get("reason") in ("Evaluated", "AwaitingApproval")
            and p["status"].get("matched", 0) >= 1
            and p
        ),
        timeout=180,
        what="CleanupPolicy evaluated",
    )

    # The dry run is in the ledger, and AWS is unchanged.
    store = Store(empty_database_url)
    actions = wait_for(lambda: store.actions(TEAM), timeout=60, what="dry-run actions")
    assert {a.resource_id for a in actions} == {volume}
    assert all(a.dry_run and a.success for a in actions), actions
    ec2 = boto3.client("ec2", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0]["State"] == "available"
    assert ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []

    metrics = wait_for(
        lambda: (
            (text := _get(operator.url("metrics", "/metrics"))[1])
            and "cloudsweep_waste_monthly_cost" in text
            and text
        ),
        timeout=60,
        what="cloudsweep metrics",
    )
    waste = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("cloudsweep_waste_monthly_cost_dollars{")
        and f'namespace="{TEAM}"' in line
    ]
    assert waste and sum(waste) > 0, metrics

    # SIGTERM: kopf stops its handlers and the process exits 0 well inside the grace period.
    engine = operator.image.engine
    started = time.monotonic()
    engine.run("stop", "-t", "60", operator.name, timeout=120)
    assert time.monotonic() - started < 55, "the operator ignored SIGTERM until killed"
    code = engine.run("inspect", "-f", "{{.State.ExitCode}}", operator.name).stdout.strip()
    assert code == "0", operator.logs()[-4000:]
