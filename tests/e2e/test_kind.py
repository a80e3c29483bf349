"""End to end on a real cluster: kind, the image, the CRDs, the dev overlay, moto as AWS.

One command on a machine with Docker and kind: ``pytest tests/e2e``. Elsewhere (this project's
CI) every test skips with the reason. ``CLOUDSWEEP_E2E_KEEP=1`` keeps the cluster for a look.

Steps: create a kind cluster, build ``cloudsweep:dev`` and load it, apply ``crds/`` and
``deploy/overlays/dev``, run a moto server in the cluster and point the operator at it, seed an
account with an unattached EBS volume, apply the samples (adapted to the seeded account), and
check the AwsAccount's status, the ScanSchedule's run, the ``/metrics`` endpoint and a dry-run
cleanup that changes nothing in AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import samples

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NS = "cloudsweep"
TEAM = "team-e2e"
IMAGE = "cloudsweep:dev"


def _docker_ok() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    return subprocess.run([docker, "info"], capture_output=True, check=False).returncode == 0


def _skip_reason() -> str | None:
    if not _docker_ok():
        return "no Docker engine on this machine"
    if shutil.which("kind") is None:
        return "kind is not installed"
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or ""),
]


def run(*args: str, input: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        list(args), capture_output=True, text=True, input=input, timeout=900, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def eventually(check: Callable[[], Any], timeout: float = 300, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (AssertionError, KeyError, IndexError, ValueError) as exc:
            last = exc
        time.sleep(3)
    raise AssertionError(f"timed out waiting for {what}: {last}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Callable[..., str]]:
    name = f"cloudsweep-e2e-{uuid.uuid4().hex[:6]}"
    kubeconfig = Path(tempfile.gettempdir()) / f"kubeconfig-{name}"
    run(
        "kind",
        "create",
        "cluster",
        "--name",
        name,
        "--kubeconfig",
        str(kubeconfig),
        "--wait",
        "120s",
    )
    try:

        def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
            return run("kubectl", "--kubeconfig", str(kubeconfig), *args, input=input, check=check)

        run("docker", "build", "-t", IMAGE, str(REPO))
        run("kind", "load", "docker-image", IMAGE, "--name", name)
        kubectl("apply", "-k", str(REPO / "crds"))
        kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        kubectl("apply", "-k", str(REPO / "deploy" / "overlays" / "dev"))
        kubectl("apply", "-f", str(HERE / "moto.yaml"))
        kubectl("-n", NS, "rollout", "status", "deploy/moto", "--timeout=180s")
        # The operator talks to moto instead of AWS, with moto's accepted dummy keys.
        kubectl(
            "-n",
            NS,
            "set",
            "env",
            "deploy/cloudsweep",
            "-c",
            "operator",
            f"CLOUDSWEEP_AWS_ENDPOINT_URL=http://moto.{NS}.svc:5000",
            "AWS_ACCESS_KEY_ID=testing",
            "AWS_SECRET_ACCESS_KEY=testing",
            "AWS_DEFAULT_REGION=us-east-1",
            "CLOUDSWEEP_SCHEDULE_JITTER_SECONDS=0",
        )
        kubectl("-n", NS, "rollout", "status", "deploy/cloudsweep-postgres", "--timeout=180s")
        kubectl("-n", NS, "rollout", "status", "deploy/cloudsweep", "--timeout=300s")
        yield kubectl
    finally:
        if os.environ.get("CLOUDSWEEP_E2E_KEEP") != "1":
            run("kind", "delete", "cluster", "--name", name, check=False)
            kubeconfig.unlink(missing_ok=True)


def _moto(kubectl: Callable[..., str], code: str) -> str:
    """Run Python with boto3 inside the moto pod (moto is at localhost:5000 there)."""
    prelude = (
        "import boto3, json\n"
        "kw = dict(endpoint_url='http://127.0.0.1:5000', region_name='us-east-1',"
        " aws_access_key_id='testing', aws_secret_access_key='testing')\n"
    )
    return kubectl("-n", NS, "exec", "deploy/moto", "--", "python", "-c", prelude + code)


@pytest.fixture(scope="module")
def world(cluster: Callable[..., str]) -> dict[str, str]:
    out = _moto(
        cluster,
        "iam = boto3.client('iam', **kw)\n"
        "trust = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': "
        "{'AWS': '*'}, 'Action': 'sts:AssumeRole'}]}\n"
        "iam.create_role(RoleName='CloudSweep', AssumeRolePolicyDocument=json.dumps(trust))\n"
        "ec2 = boto3.client('ec2', **kw)\n"
        "v = ec2.create_volume(AvailabilityZone='us-east-1a', Size=100, VolumeType='gp3')\n"
        "print(json.dumps({'volume': v['VolumeId']}))\n",
    )
    return dict(json.loads(out.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def applied(cluster: Callable[..., str], world: dict[str, str]) -> dict[str, str]:
    cluster("create", "namespace", TEAM)
    cluster("annotate", "namespace", TEAM, f"{samples.AUTO_CLEANUP_ANNOTATION}=enabled")
    cluster("-n", TEAM, "apply", "-f", "-", input=yaml.safe_dump_all(samples.adapted_samples()))
    cluster(
        "-n",
        TEAM,
        "annotate",
        "scanschedule",
        "nightly-production",
        "--overwrite",
        f"cloudsweep.io/run-now={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
    )
    return world


def _get(kubectl: Callable[..., str], kind: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("-n", TEAM, "get", kind, name, "-o", "json")))


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [c for c in obj["status"]["conditions"] if c["type"] == kind]
    return dict(found)


def test_account_connects(cluster: Callable[..., str], applied: dict[str, str]) -> None:
    def connected() -> bool:
        account = _get(cluster, "awsaccount", "payments-prod")
        return _condition(account, "Connected")["status"] == "True"

    eventually(connected, what="AwsAccount Connected=True")
    account = _get(cluster, "awsaccount", "payments-prod")
    assert account["status"]["externalId"]


def test_scan_finds_the_volume(cluster: Callable[..., str], applied: dict[str, str]) -> None:
    def scanned() -> bool:
        account = _get(cluster, "awsaccount", "payments-prod")
        return float(account["status"]["lastScan"]["monthlyWaste"]) > 0

    eventually(scanned, timeout=600, what="a scan with waste")


# Scrapes /metrics from inside the operator's pod over HTTPS, with the token given (or none);
# prints the HTTP status and the body (docs/install.md, "Metrics").
_SCRAPE = (
    "import ssl,sys,urllib.request,urllib.error\n"
    "r=urllib.request.Request('https://127.0.0.1:9090/metrics')\n"
    "t=sys.argv[1] if len(sys.argv)>1 else ''\n"
    "t and r.add_header('Authorization','Bearer '+t)\n"
    "try:\n"
    " x=urllib.request.urlopen(r,timeout=10,context=ssl._create_unverified_context())\n"
    " print(x.status);print(x.read().decode())\n"
    "except urllib.error.HTTPError as e:\n"
    " print(e.code)\n"
)


def test_metrics_are_served(cluster: Callable[..., str], applied: dict[str, str]) -> None:
    """Only to a token the API server authenticates and RBAC lets get /metrics."""

    def scrape(*token: str) -> str:
        return cluster(
            "-n", NS, "exec", "deploy/cloudsweep", "-c", "operator", "--",
            "python", "-c", _SCRAPE, *token,
        )  # fmt: skip

    assert eventually(lambda: scrape().startswith("401"), what="401 without a token")
    cluster("-n", NS, "create", "serviceaccount", "e2e-scraper")
    assert scrape(cluster("-n", NS, "create", "token", "e2e-scraper").strip()).startswith("403")
    cluster(
        "create", "clusterrolebinding", "e2e-scraper", "--clusterrole=cloudsweep-metrics-reader",
        f"--serviceaccount={NS}:e2e-scraper",
    )  # fmt: skip
    token = cluster("-n", NS, "create", "token", "e2e-scraper").strip()

    def metrics() -> str:
        text = scrape(token)
        return text if text.startswith("200") and "cloudsweep_" in text else ""

    text = eventually(metrics, timeout=120, what="cloudsweep_ metrics")  # RBAC cache: 60 s
    assert "# TYPE" in text
    health = cluster(
        "-n",
        NS,
        "exec",
        "deploy/cloudsweep",
        "-c",
        "operator",
        "--",
        "python",
        "-c",
        "import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:8080/healthz', timeout=10).status)",
    )
    assert health.strip() == "200"


def test_dry_run_cleanup_changes_nothing(
    cluster: Callable[..., str], applied: dict[str, str]
) -> None:
    def evaluated() -> bool:
        policy = _get(cluster, "cleanuppolicy", "unattached-volumes")
        ready = _condition(policy, "Ready")["reason"] in ("Evaluated", "AwaitingApproval")
        return ready and int(policy["status"].get("matched", 0)) >= 1

    eventually(evaluated, timeout=600, what="CleanupPolicy evaluated")
    out = _moto(
        cluster,
        f"ec2 = boto3.client('ec2', **kw)\n"
        f"print(ec2.describe_volumes(VolumeIds=['{applied['volume']}'])['Volumes'][0]['State'])\n",
    )
    assert out.strip() == "available", "a dry run must leave the volume in place"
