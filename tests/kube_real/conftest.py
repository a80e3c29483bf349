"""The real API server tier: one kube-real instance for the whole session, one namespace per test.

``kube_real`` starts kube-real (``tests/kube_real/server.py``) on free loopback ports, or uses
the running one whose STATE folder ``CLOUDSWEEP_KUBE_REAL_STATE`` names; installs ``crds/`` as
docs/install.md does and the operator's identity from ``deploy/base`` (its namespace,
ServiceAccount, ClusterRoles and binding, the tenant roles); stops what it started at the end.
Where kube-real's binaries are missing the whole tier skips, saying why.

``cloudsweep_operator`` runs ``cloudsweep operator --standalone`` as a process, as the
Deployment does: as the ServiceAccount ``cloudsweep/cloudsweep`` (a token from the API server's
TokenRequest API, so RBAC judges every request by deploy/base's ClusterRole), with the
admission webhooks kopf manages, served on loopback with a certificate of kube-real's CA and
registered by URL (a real cluster routes the Service reference through its network instead).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloudsweep.demo import world as demo_world
from tests import waiting
from tests.deploy.conftest import render
from tests.kube_real import approvals, server
from tests.kube_real.server import KubeReal
from tests.net import free_port

SIGNING_KEY = "kube-real-test-signing-key"
CLOUDSWEEP = str(Path(sys.executable).with_name("cloudsweep"))
# What an installation applies from deploy/base besides the Deployment (no pods run here).
_IDENTITY_KINDS = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding")
_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def kube_real() -> Iterator[KubeReal]:
    tool, reason = server.find_tool()
    if tool is None:
        pytest.skip(reason)
    reused = os.environ.get(server.STATE_ENV)
    folder = None
    if reused:
        instance = server.attach(tool, Path(reused))
    else:
        # Short and outside pytest's tree: kube-real's unix paths and 0700 resets (as pgserver's).
        folder = tempfile.mkdtemp(prefix="cs-kube-real-")
        instance = server.start(tool, Path(folder))
    try:
        server.install_crds(instance)
        identity = [o for o in render("deploy/base") if o["kind"] in _IDENTITY_KINDS]
        server.apply_objects(instance, identity)
        yield instance
    finally:
        if instance.owned:
            server.stop(instance)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def namespace(kube_real: KubeReal, request: pytest.FixtureRequest) -> str:
    """A fresh namespace for this test (never deleted: without a controller manager a deleted
    namespace stays Terminating, and the objects in it are wanted for post-mortems)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t{os.getpid() % 10000}-{next(_namespaces)}-{slug}"
    kube_real.kubectl("create", "namespace", name)
    return name


def bind(kube_real: KubeReal, namespace: str, role: str, subject: str) -> None:
    """RoleBinding of tenant ClusterRole ``role`` in ``namespace`` to ``user:NAME`` or
    ``group:NAME``, as docs/install.md tells administrators to grant it."""
    kind, _, name = subject.partition(":")
    kube_real.kubectl(
        "create",
        "rolebinding",
        f"{role}-{kind}-{name}",
        "-n",
        namespace,
        f"--clusterrole={role}",
        f"--{kind}={name}",
    )
    # RBAC takes a moment to see a new binding (its informer): wait until it answers for it.
    who = ["--as", name] if kind == "user" else ["--as", "nobody", "--as-group", name]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (
            kube_real.kubectl(
                "auth",
                "can-i",
                "list",
                "awsaccounts.cloudsweep.io",
                "-n",
                namespace,
                *who,
                check=False,
            )
            .stdout.strip()
            .startswith("yes")
        ):
            return
        time.sleep(0.3)
    raise AssertionError(f"RoleBinding {role} for {subject} in {namespace} not effective")


# --- the operator ---------------------------------------------------------------------------


@dataclass
class OperatorProcess:
    """``cloudsweep operator`` running as a process; its output goes to ``log``."""

    process: subprocess.Popen[bytes]
    log: Path
    health_port: int
    webhook_port: int
    env: dict[str, str]
    restarts: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Log length when the test restarted the API server: a starting kube-apiserver answers 403
    # until its RBAC informers have synced, which kopf retries (checked only before this).
    rbac_checked_until: int | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as the kubelet stops a pod; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


def operator_token(kube_real: KubeReal) -> str:
    """A token of ServiceAccount cloudsweep/cloudsweep (TokenRequest, as the kubelet mounts)."""
    return kube_real.kubectl(
        "create", "token", "cloudsweep", "-n", "cloudsweep", "--duration=2h"
    ).stdout.strip()


def webhook_certificate(kube_real: KubeReal, folder: Path) -> tuple[Path, Path]:
    """kube-real's ready-made serving certificate (SAN 127.0.0.1, signed by KUBE_REAL_CA_KEY)
    followed by the CA: kopf announces the file as the configurations' caBundle."""
    chain = folder / "webhook-chain.crt"
    chain.write_text(
        Path(kube_real.env["KUBE_REAL_WEBHOOK_CERT"]).read_text() + kube_real.ca.read_text()
    )
    key = folder / "webhook.key"
    shutil.copyfile(kube_real.env["KUBE_REAL_WEBHOOK_KEY"], key)
    key.chmod(0o600)
    return chain, key


def start_operator(
    kube_real: KubeReal,
    folder: Path,
    database_url: str,
    moto_endpoint: str,
    **overrides: str,
) -> OperatorProcess:
    """The command started as the Deployment runs it, once its /healthz answers."""
    folder.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = webhook_certificate(kube_real, folder)
    health, webhook = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOUDSWEEP_KUBE_", "KUBE_REAL_")) and k != "KUBECONFIG"
    }
    env.update(
        {
            "KUBECONFIG": str(
                kube_real.kubeconfig(folder / "operator.kubeconfig", operator_token(kube_real))
            ),
            "CLOUDSWEEP_DATABASE_URL": database_url,
            "CLOUDSWEEP_AWS_ENDPOINT_URL": moto_endpoint,
            "CLOUDSWEEP_AWS_MAX_ATTEMPTS": "2",
            "CLOUDSWEEP_APPROVAL_SIGNING_KEY": SIGNING_KEY,
            "CLOUDSWEEP_SCHEDULE_JITTER_SECONDS": "0",
            "CLOUDSWEEP_STATUS_REFRESH_SECONDS": "2",
            "CLOUDSWEEP_HEALTH_PORT": str(health),
            "CLOUDSWEEP_METRICS_PORT": str(free_port()),
            # The managed webhooks, by URL to loopback (kopf's WebhookServer), over TLS.
            "CLOUDSWEEP_WEBHOOK_MANAGED": "true",
            "CLOUDSWEEP_WEBHOOK_INSECURE": "false",
            "CLOUDSWEEP_WEBHOOK_ADDR": "127.0.0.1",
            "CLOUDSWEEP_WEBHOOK_HOST": "127.0.0.1",
            "CLOUDSWEEP_WEBHOOK_PORT": str(webhook),
            "CLOUDSWEEP_WEBHOOK_CERTFILE": str(certfile),
            "CLOUDSWEEP_WEBHOOK_KEYFILE": str(keyfile),
            **overrides,
        }
    )
    log = folder / f"operator-{time.time_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [CLOUDSWEEP, "operator", "--standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = OperatorProcess(process, log, health, webhook, env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not running.healthy():
        if process.poll() is not None:
            raise AssertionError(f"the operator exited:\n{running.output()[-4000:]}")
        time.sleep(0.3)
    if not running.healthy():
        running.stop()
        raise AssertionError(f"the operator never became healthy:\n{running.output()[-4000:]}")
    try:
        wait_for(
            lambda: approvals.webhooks_called(kube_real),
            timeout=60,
            what="the API server calling the operator's webhooks",
            every=0.3,
        )
    except BaseException:
        running.stop()
        raise
    return running


def remove_webhook_configurations(kube_real: KubeReal) -> None:
    """kopf leaves the fail-closed validating webhook when the operator stops (by design: no
    unchecked edits while it is away); the next test's operator registers its own."""
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        kube_real.kubectl("delete", kind, "cloudsweep.io", "--ignore-not-found", check=False)


@pytest.fixture
def world(moto_endpoint: str) -> demo_world.DemoWorld:
    return demo_world.seed_demo_world(moto_endpoint, regions=("us-east-1",))


@pytest.fixture
def operator_env() -> dict[str, str]:
    """More environment for the operator (``CLOUDSWEEP_*`` settings); parametrize to change.

    The tier shares one API server, where earlier tests' namespaces (never garbage-collected
    there) still hold AwsAccounts of the same demo account: each test's operator, on a fresh
    database, would see those first and refuse its own as claimed by another organization. The
    one-account-one-organization boundary is proven in tests/safety/test_tenants.py and
    tests/handlers/test_account_tenancy.py.
    """
    return {"CLOUDSWEEP_ALLOW_SHARED_ACCOUNTS": "true"}


@pytest.fixture
def cloudsweep_operator(
    kube_real: KubeReal, database_url: str, moto_endpoint: str, operator_env: dict[str, str]
) -> Iterator[OperatorProcess]:
    folder = Path(tempfile.mkdtemp(prefix="cs-kr-op-"))
    try:
        running = start_operator(kube_real, folder, database_url, moto_endpoint, **operator_env)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        remove_webhook_configurations(kube_real)
        raise
    try:
        yield running
    finally:
        code = running.stop()
        for extra in running.restarts:
            if extra.poll() is None:
                extra.kill()
                extra.wait(10)
        remove_webhook_configurations(kube_real)
        output = running.output()
        shutil.rmtree(folder, ignore_errors=True)
        assert code == 0, f"the operator did not stop cleanly ({code}):\n{output[-3000:]}"
        # Real RBAC judged every request by deploy/base's ClusterRole: kopf retries a 403
        # forever, so a missing rule shows only here.
        checked = output[: running.rbac_checked_until]
        refused = [line for line in checked.splitlines() if "Forbidden" in line]
        assert not refused, "\n".join(refused[:10])


def wait_for(check: Any, timeout: float = 60, what: str = "condition", every: float = 0.5) -> Any:
    return waiting.wait_for(check, timeout, what, every, not_yet=(*waiting.NOT_YET, AttributeError))


def condition(obj: Any, kind: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return None
