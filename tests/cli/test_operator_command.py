"""``cloudsweep operator`` as a process, the way the image runs it, against KMock over HTTP.

The handler tests start kopf in a thread with their own arguments; this runs the real command, so
the command's own choices (peering, logging, the liveness endpoint, SIGTERM) are what is tested.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudsweep.demo import world as demo_world
from tests import kubelet, rbac
from tests.e2e import samples
from tests.handlers.conftest import Cluster, cluster, condition, wait_for
from tests.handlers.test_awsaccounts import account_spec
from tests.net import free_port

__all__ = ["cluster"]  # KMock's emulator, the same fixture the handler tests use
NS = "team-cli"
CLOUDSWEEP = str(Path(sys.executable).with_name("cloudsweep"))


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def world(moto_endpoint: str) -> demo_world.DemoWorld:
    return demo_world.seed_demo_world(moto_endpoint, regions=("us-east-1",))


def _environment(
    cluster: Cluster, database_url: str, moto_endpoint: str, health: int, **overrides: str
) -> dict[str, str]:
    """The command's environment: KMock, moto, the database, free ports, a plain webhook."""
    return {
        **os.environ,
        "CLOUDSWEEP_KUBE_API_URL": cluster.url,
        "CLOUDSWEEP_DATABASE_URL": database_url,
        "CLOUDSWEEP_AWS_ENDPOINT_URL": moto_endpoint,
        "CLOUDSWEEP_HEALTH_PORT": str(health),
        "CLOUDSWEEP_METRICS_PORT": str(free_port()),
        "CLOUDSWEEP_WEBHOOK_PORT": str(free_port()),
        "CLOUDSWEEP_WEBHOOK_ADDR": "127.0.0.1",
        "CLOUDSWEEP_WEBHOOK_INSECURE": "true",
        "CLOUDSWEEP_WEBHOOK_MANAGED": "false",
        **overrides,
    }


def _start(
    stopped: list[subprocess.Popen[str]],
    args: list[str],
    cluster: Cluster,
    database_url: str,
    moto_endpoint: str,
    **overrides: str,
) -> subprocess.Popen[str]:
    """The command started, once its /healthz answers."""
    health = free_port()
    env = _environment(cluster, database_url, moto_endpoint, health, **overrides)
    process = subprocess.Popen(
        [CLOUDSWEEP, "operator", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stopped.append(process)  # killed after the test whatever happens
    wait_for(lambda: _healthy(health) or process.poll() is not None, timeout=60, what="healthz")
    if process.poll() is not None:
        raise AssertionError(f"the operator exited: {process.communicate()[0][-4000:]}")
    return process


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize(
    "args",
    [[], ["--standalone"], ["--log-format", "json"]],
    ids=["default", "deployment-args", "json-logs"],
)
def test_the_command_reconciles_logs_and_stops_on_sigterm(
    args: list[str],
    cluster: Cluster,
    database_url: str,
    moto_endpoint: str,
    world: demo_world.DemoWorld,
    stopped: list[subprocess.Popen[str]],
) -> None:
    process = _start(stopped, args, cluster, database_url, moto_endpoint)

    cluster.create_namespace(NS, "uid-team-cli")
    cluster.create("awsaccounts", "AwsAccount", NS, "prod", account_spec(world))
    # Before the peering fix, kopf paused every watch here (no peering CRDs), silently.
    wait_for(
        lambda: (
            (condition(cluster.get("awsaccounts", NS, "prod"), "Connected") or {}).get("status")
            == "True"
        ),
        timeout=60,
        what="the account reconciled by the command",
    )

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[-4000:]
    assert time.monotonic() - started < 30
    lines = output.splitlines()
    handled = [line for line in lines if "Handler 'reconcile' succeeded" in line]
    assert handled, output[-4000:]
    assert not [line for line in lines if "Timer '" in line and "succeeded" in line]
    if "json" in args:
        record = json.loads(handled[0])
        assert record["k8s"]["namespace"] == NS and record["k8s"]["name"] == "prod"
    else:
        assert f"[{NS}/prod]" in handled[0]


def test_peering_and_standalone_exclude_each_other() -> None:
    result = subprocess.run(
        [CLOUDSWEEP, "operator", "--standalone", "--peering", "cloudsweep"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "exclude each other" in result.stderr


def test_the_cluster_role_allows_every_request_the_operator_makes(
    cluster: Cluster,
    database_url: str,
    moto_endpoint: str,
    world: demo_world.DemoWorld,
    stopped: list[subprocess.Popen[str]],
) -> None:
    """Every request of a whole life (start, the samples reconciled, a scan, a dry-run cleanup,
    events, a deletion, the stop) checked against deploy/base's ClusterRole, as RBAC would."""
    # As the Deployment runs it: managed webhook configurations, its own TLS certificate.
    metrics_port = free_port()
    process = _start(
        stopped,
        ["--standalone"],
        cluster,
        database_url,
        moto_endpoint,
        CLOUDSWEEP_WEBHOOK_MANAGED="true",
        CLOUDSWEEP_WEBHOOK_INSECURE="false",
        CLOUDSWEEP_WEBHOOK_HOST="127.0.0.1",
        CLOUDSWEEP_WEBHOOK_SERVICE="cloudsweep/cloudsweep-webhook",
        CLOUDSWEEP_METRICS_PORT=str(metrics_port),
        CLOUDSWEEP_OPERATOR_NAMESPACE=kubelet.OPERATOR_NS,
        CLOUDSWEEP_SCAN_JOB_POLL_SECONDS="0.5",
    )
    # Its Deployment and Secrets, which scan Jobs copy (tests/kubelet.py plays the node).
    kubelet.install_operator(cluster, database_url, moto_endpoint)
    samples.apply_to(cluster, NS, account=account_spec(world))
    # A CleanupApproval the webhook never saw (KMock calls none): watched, reported, deleted.
    cluster.create(
        "cleanupapprovals",
        "CleanupApproval",
        NS,
        "unadmitted",
        {
            "policy": "unattached-volumes",
            "accountId": "123456789012",
            "region": "us-east-1",
            "resourceId": "vol-1",
            "maxMonthlyCost": "1.00",
        },
    )
    wait_for(
        lambda: (
            (condition(cluster.get("cleanupapprovals", NS, "unadmitted"), "Ready") or {}).get(
                "reason"
            )
            == "ApprovalIgnored"
        ),
        timeout=60,
        what="the approval reported as ignored",
    )
    cluster.delete("cleanupapprovals", NS, "unadmitted")
    wait_for(
        lambda: cluster.get("cleanupapprovals", NS, "unadmitted") is None,
        timeout=60,
        what="the approval deleted (finalizer released)",
    )
    # A scrape with a token KMock cannot vouch for: the operator asks (TokenReview), and refuses.
    scrape = urllib.request.Request(f"https://127.0.0.1:{metrics_port}/metrics")
    scrape.add_header("Authorization", "Bearer not-a-real-token")
    with pytest.raises(urllib.error.HTTPError) as refused_scrape:
        urllib.request.urlopen(scrape, timeout=15, context=ssl._create_unverified_context())
    assert refused_scrape.value.code in (401, 503)
    cluster.patch(
        "scanschedules",
        NS,
        "nightly-production",
        {"metadata": {"annotations": {"cloudsweep.io/run-now": "rbac"}}},
    )
    wait_for(
        lambda: (
            cluster.get("scanschedules", NS, "nightly-production")["status"].get("lastRunOutcome")
            == "completed"
        ),
        timeout=90,
        what="the scan",
    )
    wait_for(
        lambda: cluster.get("cleanuppolicies", NS, "unattached-volumes")["status"].get("matched"),
        timeout=60,
        what="the policy evaluated",
    )
    # The same schedule's scans as Kubernetes Jobs: one that succeeds (read, then deleted), one
    # whose pod is killed (its pods listed for the reason).
    node = kubelet.Kubelet(cluster, kubelet.OPERATOR_NS)
    cluster.patch("scanschedules", NS, "nightly-production", {"spec": {"executor": "job"}})
    for run, outcome in (("rbac-job", "completed"), ("rbac-job-killed", "failed")):
        cluster.patch(
            "scanschedules",
            NS,
            "nightly-production",
            {"metadata": {"annotations": {"cloudsweep.io/run-now": run}}},
        )
        [job] = wait_for(
            lambda: [j for j in node.jobs() if not (j.get("status") or {}).get("conditions")],
            what=f"the scan Job of {run}",
        )
        if outcome == "completed":
            ran = node.run(job)
            assert ran.exit_code == 0, ran.output[-3000:]
        else:
            node.kill(job)
        wait_for(
            lambda run=run, outcome=outcome: (
                (s := cluster.get("scanschedules", NS, "nightly-production")["status"]).get(
                    "lastRunNow"
                )
                == run
                and s.get("lastRunOutcome") == outcome
            ),
            timeout=90,
            what=f"the {run} scan {outcome}",
        )
    cluster.delete("awsaccounts", NS, "payments-prod")
    wait_for(
        lambda: cluster.get("awsaccounts", NS, "payments-prod") is None,
        timeout=60,
        what="the account deleted (finalizer released)",
    )
    # The managed webhook configurations: the permission check fails closed, the approval
    # stamping open (its unsigned approvals are never honoured).
    # The approval record fails closed too: an approval the webhook did not see never counts.
    persistent = {
        "authorize-changes.cloudsweep.io": "Fail",
        "record-approval.cloudsweep.io": "Fail",
    }
    assert _webhooks(cluster, "validating") == persistent
    assert _webhooks(cluster, "mutating") == {"stamp-approvals.cloudsweep.io": "Ignore"}
    # Named by Service, which every API server routes itself (a URL's host it must resolve).
    for kind, handlers in (
        ("validating", {"authorize-changes", "record-approval"}),
        ("mutating", {"stamp-approvals"}),
    ):
        path = f"/apis/admissionregistration.k8s.io/v1/{kind}webhookconfigurations/cloudsweep.io"
        clients = [w["clientConfig"] for w in cluster.request("GET", path)["webhooks"]]
        assert {c["service"]["path"] for c in clients} == {f"/{h}" for h in handlers}
        for client in clients:
            assert {k: v for k, v in client["service"].items() if k != "path"} == {
                "namespace": "cloudsweep",
                "name": "cloudsweep-webhook",
                "port": 443,
            }
            assert "url" not in client
            assert base64.b64decode(client["caBundle"]).startswith(b"-----")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[-4000:]
    # kopf removes its webhooks when it stops, but the permission check is persistent: while the
    # operator is away, CleanupPolicy changes are refused rather than let through unchecked.
    assert _webhooks(cluster, "validating") == persistent
    assert _webhooks(cluster, "mutating") == {}

    from tests.deploy.conftest import one, render

    rendered = render("deploy/base")
    role = one(rendered, "ClusterRole", "cloudsweep-operator")
    # In its own namespace it may do more (scan Jobs): a Role there, bound to it.
    local = one(rendered, "Role", "cloudsweep-scan-jobs")
    assert local["metadata"]["namespace"] == kubelet.OPERATOR_NS
    # The operator's own requests: kopf names itself in User-Agent, and so do CloudSweep's
    # SubjectAccessReviews (cloudsweep.handlers.access); the test's are urllib's.
    requests = [
        (request, wanted)
        for request in cluster.requests()
        if request.headers.get("User-Agent", "").startswith(("kopf/", "cloudsweep/"))
        and (
            wanted := rbac.need(
                str(getattr(request.method, "value", request.method)),
                request.url.path,
                dict(request.params),
            )
        )
    ]
    home = f"/namespaces/{kubelet.OPERATOR_NS}/"
    at_home = {wanted for request, wanted in requests if home in request.url.path}
    ours = {wanted for _, wanted in requests}
    assert {n.verb for n in ours} >= {"list", "watch", "patch", "create"}, sorted(map(str, ours))
    refused = sorted(
        str(n)
        for request, n in requests
        if not rbac.permits(role["rules"], n)
        and not (home in request.url.path and rbac.permits(local["rules"], n))
    )
    assert not refused, f"the ClusterRole and Role refuse what the operator does: {refused}"
    spare_locally = sorted(str(g) for g in rbac.unused(local["rules"], at_home))
    assert spare_locally == [], spare_locally
    assert {(n.group, n.resource, n.verb) for n in at_home} >= {
        ("apps", "deployments", "get"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "list"),
        ("batch", "jobs", "delete"),
        ("", "pods", "list"),
    }, sorted(map(str, at_home))
    # And the other way: nothing granted that the operator does not do. SubjectAccessReviews are
    # made when the API server calls the webhook, which KMock does not (tests/handlers do that),
    # or for a scraper whose token a TokenReview accepted (KMock accepts none).
    spare = sorted(str(g) for g in rbac.unused(role["rules"], ours))
    assert spare == ["create authorization.k8s.io/subjectaccessreviews"], spare


def _webhooks(cluster: Cluster, kind: str) -> dict[str, str]:
    """The webhooks of the {kind}WebhookConfiguration "cloudsweep.io": name -> failurePolicy."""
    path = f"/apis/admissionregistration.k8s.io/v1/{kind}webhookconfigurations/cloudsweep.io"
    configuration = cluster.request("GET", path) or {}
    return {w["name"]: w["failurePolicy"] for w in configuration.get("webhooks") or []}


def _run_until_exit(
    cluster: Cluster, database_url: str, moto_endpoint: str, seconds: float
) -> tuple[int | None, str]:
    """The command for at most ``seconds`` (then SIGTERM): its exit code and output."""
    env = _environment(cluster, database_url, moto_endpoint, free_port())
    process = subprocess.Popen(
        [CLOUDSWEEP, "operator"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=seconds)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        return None, output


def test_an_unreachable_database_is_one_line_per_attempt(
    cluster: Cluster, moto_endpoint: str
) -> None:
    expected = "cannot use the database postgresql://cloudsweep:***@127.0.0.1:9/cloudsweep"
    env = _environment(
        cluster, "postgresql://cloudsweep:secret@127.0.0.1:9/cloudsweep", moto_endpoint, free_port()
    )
    process = subprocess.Popen(
        [CLOUDSWEEP, "operator"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if expected in line and sum(expected in seen_line for seen_line in lines) >= 2:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # Two attempts logged (however slowly a loaded machine starts the process), still running.
    seen.wait(timeout=120)
    code = process.poll()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    reader.join(timeout=10)
    output = "".join(lines)
    assert seen.is_set(), output[-3000:]
    assert code is None, "the operator must keep trying until the database answers"
    assert "cannot use the database postgresql://cloudsweep:***@127.0.0.1:9/cloudsweep" in output
    assert "secret" not in output and "Traceback" not in output, output[-3000:]


def test_a_database_without_the_schema_stops_the_operator(
    cluster: Cluster, empty_database_url: str, moto_endpoint: str
) -> None:
    code, output = _run_until_exit(cluster, empty_database_url, moto_endpoint, 60)
    assert code not in (None, 0), output[-3000:]
    assert "run `cloudsweep db upgrade` first" in output
