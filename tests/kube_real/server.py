"""kube-real (``../shared/tools/kube-real``): a real Kubernetes API server for the tests, no containers.

etcd 3.5, kube-apiserver 1.20 (core API, RBAC, admission webhooks) and, aggregated behind it, the
1.36 CRD server (structural schemas, defaulting, CEL). ``start`` runs the tool's ``start.sh``;
``KubeReal`` is one running instance: kubectl and raw HTTP requests as its users (``admin``;
``alice`` and ``bob`` in group ``devs``; ``carol`` in group ``qa``), and its kube-apiserver
restarted in place (etcd keeps every object and resourceVersion).

Used by ``tests/kube_real/conftest.py``; its README is the reference for the tool itself.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import shlex
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# Set by .ci/run (from ../shared/tools/kube-real) and by developers: the tool's folder.
TOOL_ENV = "CLOUDSWEEP_KUBE_REAL"
# A STATE folder of an instance someone already started (start.sh STATE): used, never stopped.
STATE_ENV = "CLOUDSWEEP_KUBE_REAL_STATE"
USERS = ("admin", "alice", "bob", "carol")
_NEEDED_TOOLS = ("kubectl", "openssl", "curl", "xz", "sha256sum", "base64", "awk")


def find_tool() -> tuple[Path | None, str]:
    """The kube-real folder, or None and why the tier cannot run here."""
    configured = os.environ.get(TOOL_ENV)
    candidates = [Path(configured)] if configured else []
    # A developer's checkout next to shared/ (as CI has it), also from a git worktree below it.
    candidates += [p / "shared" / "tools" / "kube-real" for p in REPO.parents]
    tool = next((c for c in candidates if (c / "start.sh").is_file()), None)
    if tool is None:
        where = configured or f"{TOOL_ENV} unset and no shared/tools/kube-real above {REPO}"
        return None, f"kube-real not found ({where}): the real API server tier needs its binaries"
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None, f"kube-real's binaries are Linux x86-64; this is {platform.platform()}"
    missing = [t for t in _NEEDED_TOOLS if shutil.which(t) is None]
    if missing:
        return None, f"kube-real needs {', '.join(missing)} on PATH (kubectl: make system-deps)"
    return tool, ""


def read_env(state: Path) -> dict[str, str]:
    """The ``export K=V`` lines of ``STATE/env`` (values are shell-quoted)."""
    values: dict[str, str] = {}
    for line in (state / "env").read_text().splitlines():
        if line.startswith("export "):
            key, _, quoted = line[len("export ") :].partition("=")
            values[key] = shlex.split(quoted)[0] if quoted else ""
    return values


def _decoded(raw: bytes) -> Any:
    """JSON, or the text of an answer that is not (``/readyz`` says "ok")."""
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return {"message": raw.decode(errors="replace")}


@dataclass
class Response:
    status: int
    body: Any

    @property
    def message(self) -> str:
        return str((self.body or {}).get("message") or "") if isinstance(self.body, dict) else ""

    def causes(self) -> list[tuple[str, str]]:
        """(field, message) of each cause of a refusal, without the server's "<nil>" footnote."""
        details = (self.body or {}).get("details") or {} if isinstance(self.body, dict) else {}
        return [
            (str(c.get("field") or ""), str(c.get("message") or ""))
            for c in details.get("causes") or []
            if c.get("field") not in (None, "<nil>")
        ]


@dataclass
class KubeReal:
    """One running kube-real instance (``STATE/env`` read into ``env``)."""

    tool: Path
    state: Path
    env: dict[str, str]
    owned: bool  # started by these tests (and stopped by them)
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)

    @property
    def server(self) -> str:
        return self.env["KUBE_REAL_SERVER"]

    @property
    def ca(self) -> Path:
        return Path(self.env["KUBE_REAL_CA"])

    def token(self, user: str = "admin") -> str:
        return self.env["KUBE_REAL_TOKEN" if user == "admin" else f"KUBE_REAL_TOKEN_{user.upper()}"]

    # --- kubectl -------------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        user: str = "admin",
        token: str | None = None,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as ``user`` (or with ``token``), against this server only (no kubeconfig)."""
        command = [
            "kubectl",
            f"--server={self.server}",
            f"--certificate-authority={self.ca}",
            f"--token={token or self.token(user)}",
            f"--cache-dir={self.state / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "KUBECONFIG": os.devnull},
        )
        if check and result.returncode != 0:
            shown = " ".join(args)
            raise AssertionError(f"kubectl {shown} failed ({result.returncode}):\n{result.stderr}")
        return result

    def kubeconfig(self, path: Path, token: str, namespace: str = "default") -> Path:
        """A kubeconfig file for ``token`` (what a pod's client or a user would have)."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "kube-real",
                            "cluster": {
                                "server": self.server,
                                "certificate-authority": str(self.ca),
                            },
                        }
                    ],
                    "users": [{"name": "user", "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "kube-real",
                            "context": {
                                "cluster": "kube-real",
                                "user": "user",
                                "namespace": namespace,
                            },
                        }
                    ],
                    "current-context": "kube-real",
                }
            )
        )
        path.chmod(0o600)
        return path

    # --- HTTP ----------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: str = "admin",
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Response:
        """One API request as ``user``; 4xx and 5xx answers are returned, not raised."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.ca))
        query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path + query, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token(user)}")
        request.add_header("Content-Type", content_type)
        request.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._ssl) as response:
                return Response(response.status, _decoded(response.read()))
        except urllib.error.HTTPError as error:
            return Response(error.code, _decoded(error.read()))

    def get(self, path: str, user: str = "admin") -> Any:
        response = self.request("GET", path, user=user)
        if response.status == 404:
            return None
        assert response.status == 200, (response.status, response.body)
        return response.body

    # --- the kube-apiserver process ------------------------------------------------------------

    def _stop_process(self, name: str, grace: float) -> list[str]:
        """SIGTERM, SIGKILL after ``grace`` seconds; the command line to start it again."""
        pid = int((self.state / f"{name}.pid").read_text())
        command = [c.decode() for c in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        return command

    def _start_process(self, name: str, command: list[str]) -> None:
        with (self.state / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                cwd=self.state,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        (self.state / f"{name}.pid").write_text(f"{process.pid}\n")

    def restart_control_plane(self, down_seconds: float = 0.0) -> None:
        """Stop the CRD server and kube-apiserver (as a control plane upgrade or crash does) and
        start them again with the same command lines. etcd keeps running, so every object and
        resourceVersion survives; clients see their watches end and connections refused, and
        the CRD server's new watch cache starts at etcd's current revision (older: 410 Gone)."""
        # Open watches hold the CRD server's graceful shutdown for a minute: cut it short.
        crd_server = self._stop_process("crd-apiserver", grace=3)
        # Its graceful shutdown waits for open watches too: a few seconds, then as a crash.
        apiserver = self._stop_process("kube-apiserver", grace=5)
        time.sleep(down_seconds)
        self._start_process("kube-apiserver", apiserver)
        deadline = time.monotonic() + 60
        while self._readyz() != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        # A starting kube-apiserver resets its built-in APIService for the CRD API to itself
        # (a separate 1.20 CRD store, without CEL): route it to the 1.36 server again, as
        # start.sh does, before anything reads or writes a CRD.
        port = self.env["KUBE_REAL_CRD_SERVER"].rsplit(":", 1)[1]
        bundle = base64.b64encode(self.ca.read_bytes()).decode()
        route = {
            "spec": {
                "service": {"namespace": "kube-system", "name": "crd-apiserver", "port": int(port)},
                "caBundle": bundle,
            }
        }
        self.kubectl(
            "patch",
            "apiservice",
            "v1.apiextensions.k8s.io",
            "--type=merge",
            "-p",
            json.dumps(route),
        )
        # The CRD server reads its request-header CA from the API server when it starts.
        self._start_process("crd-apiserver", crd_server)
        self.wait_ready()

    def _readyz(self) -> int:
        try:
            return self.request("GET", "/readyz", timeout=3).status
        except OSError:
            return 0

    def wait_ready(self, timeout: float = 90) -> None:
        """Until /readyz answers ok and the custom resources are served through the aggregator."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                ready = self.request("GET", "/readyz", timeout=3)
                served = self.request(
                    "GET", "/apis/cloudsweep.io/v1alpha1/awsaccounts", params={"limit": "1"}
                )
                crd = self.request(
                    "GET",
                    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                    "awsaccounts.cloudsweep.io",
                )
                # Served by the 1.36 CRD server: the CEL rules are there.
                routed = "x-kubernetes-validations" in json.dumps(crd.body)
                if ready.status == 200 and served.status == 200 and routed:
                    return
                last = (ready.status, served.status, served.message, routed)
            except OSError as error:
                last = error
            time.sleep(0.3)
        raise AssertionError(f"kube-apiserver not ready after {timeout} s: {last}")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat.rsplit(") ", 1)[1].startswith("Z")


def start(tool: Path, state: Path) -> KubeReal:
    """``start.sh STATE`` (no CRDs: the tests install them as an installation does)."""
    cache = Path(
        os.environ.get("KUBE_REAL_CACHE")
        # Outside shared/ (read-only in CI): unpacked once per machine and user, then checked.
        or Path(tempfile.gettempdir()) / f"cloudsweep-kube-real-cache-{os.getuid()}"
    )
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(tool / "start.sh"), str(state)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "KUBE_REAL_CACHE": str(cache)},
    )
    if result.returncode != 0:
        raise RuntimeError(f"kube-real did not start:\n{result.stdout}\n{result.stderr[-4000:]}")
    return KubeReal(tool=tool, state=state, env=read_env(state), owned=True)


def attach(tool: Path, state: Path) -> KubeReal:
    return KubeReal(tool=tool, state=state, env=read_env(state), owned=False)


def stop(instance: KubeReal) -> None:
    subprocess.run(
        [str(instance.tool / "stop.sh"), str(instance.state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def install_crds(instance: KubeReal, folder: Path = REPO / "crds") -> str:
    """``kubectl apply -k crds/`` as docs/install.md says, then kube-real's routing of the new
    group to its CRD server (``add-crds.sh STATE``: an APIService per group/version, which a
    real cluster's single API server does not need). Returns kubectl's output."""
    applied = instance.kubectl("apply", "--validate=false", "-k", str(folder))
    instance.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    routed = subprocess.run(
        [str(instance.tool / "add-crds.sh"), str(instance.state)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if routed.returncode != 0:
        raise RuntimeError(f"add-crds.sh failed:\n{routed.stdout}\n{routed.stderr[-3000:]}")
    # kubectl's discovery cache predates the new group: without this, `kubectl get cloudsweep`
    # (the category) says the server has no such resource type for minutes.
    shutil.rmtree(instance.state / "kubectl-cache", ignore_errors=True)
    return applied.stdout


def apply_objects(instance: KubeReal, objects: Sequence[Mapping[str, Any]], *args: str) -> str:
    """``kubectl apply -f -`` of ``objects`` as admin; returns kubectl's output."""
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    return instance.kubectl("apply", *args, "-f", "-", stdin=text).stdout
