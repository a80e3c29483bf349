"""The operator at N accounts: a real ``cloudsweep operator`` process against a real API server.

``python -m bench operator --accounts N`` starts, each in its own process: kube-real (etcd,
kube-apiserver 1.20 and the aggregated 1.36 CRD server, ``../shared/tools/kube-real``; set
``CLOUDSWEEP_KUBE_REAL`` to its folder), a moto server behind the tests' enforcing STS (every role
requires its ExternalId, as a customer's trust policy does), PostgreSQL (pgserver) and
``cloudsweep operator --standalone`` with production defaults (30 s status refresh, 60 s schedule
jitter, 900 s re-check, 4 scans at once, managed admission webhooks), exactly as the kube-real test
tier starts it (``tests/kube_real/conftest.py``: the ServiceAccount's token, RBAC from deploy/base).

It creates N AwsAccounts, ten to a namespace (one organization per namespace, one distinct
12-digit account ID per AwsAccount: moto accepts any account through AssumeRole), waits until all
are Connected, then creates one one-region ScanSchedule per namespace and asks each to run now
(the ``cloudsweep.io/run-now`` annotation), and prints:

- seconds until all AwsAccounts are Connected, and the operator's CPU seconds per account;
- seconds until all scans completed (from PostgreSQL's scan_results);
- the operator's peak RSS (VmHWM), and its RSS after the scans; with ``--rounds K``, every
  account's scan runs K times (a new run-now value per round) and the RSS after each round is
  printed: memory must not grow with the number of finished scans;
- Kubernetes API requests per minute in steady state, counted by the API servers themselves
  (``apiserver_request_total`` of the 1.20 server and of the CRD server), reads and writes apart,
  and the operator's CPU use at idle;
- after a restart of the operator: AssumeRole calls (moto's STS) and scans started in its first
  minute, and its CPU seconds then.

KMock (``--api kmock``) is not offered: it walks every stored object on each request and stops
answering past about 200 objects (issue 16), so the figures would be KMock's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from bench.common import fresh_database, machine

PER_NAMESPACE = 10
FIRST_ACCOUNT = 200000000000
GROUP = "cloudsweep.io/v1alpha1"
REPO = Path(__file__).resolve().parents[1]

# The moto server process: the tests' gated server (tests/conftest.py), counting STS calls.
_MOTO = """
import logging, os, sys, threading
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
from moto.server import ThreadedMotoServer
from tests import sts_gate
logging.getLogger("werkzeug").setLevel(logging.WARNING)

class Gated(ThreadedMotoServer):
    def _server_entry(self):
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
        from werkzeug.serving import make_server
        app = sts_gate.GATE.wrap(DomainDispatcherApplication(create_backend_app))
        counted = {"AssumeRole": 0}
        def counting(environ, start_response):
            if environ.get("PATH_INFO") == "/bench/assume-role-count":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [str(counted["AssumeRole"]).encode()]
            return app(environ, start_response)
        original = sts_gate.GATE.refuses
        def refuses(params):
            counted["AssumeRole"] += 1
            return original(params)
        sts_gate.GATE.refuses = refuses
        self._server = make_server(self._ip_address, self._port, counting, True,
                                   request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

server = Gated(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
threading.Event().wait()
"""


def run(
    accounts: Annotated[int, typer.Option(help="AwsAccounts to create.")] = 100,
    api: Annotated[str, typer.Option(help="kube-real (the only one that holds 1,000).")] = (
        "kube-real"
    ),
    idle_seconds: Annotated[int, typer.Option(help="Steady-state window measured.")] = 60,
    timeout: Annotated[int, typer.Option(help="Give up on a phase after this long.")] = 1800,
    rounds: Annotated[
        int, typer.Option(min=1, help="Scan every account this many times; RSS after each.")
    ] = 1,
) -> None:
    """Create N AwsAccounts and scan them with a real operator process; print the figures."""
    if api != "kube-real":
        raise typer.BadParameter(
            "only kube-real: KMock answers too slowly past ~200 objects", param_hint="--api"
        )
    from tests.kube_real import server

    tool, reason = server.find_tool()
    if tool is None:
        raise typer.BadParameter(reason)
    # The operator's own (base) credentials; moto takes any. Never a real account's.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
        }
    )
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"machine: {machine()}; load average at start: {_load()}")
    folder = Path(tempfile.mkdtemp(prefix="cs-bench-op-"))
    try:
        with (
            _kube_real(tool, folder / "kr") as kube,
            _moto(folder) as moto_url,
            fresh_database() as database_url,
        ):
            _measure(kube, moto_url, database_url, folder, accounts, idle_seconds, timeout, rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _measure(
    kube: Any,
    moto_url: str,
    database_url: str,
    folder: Path,
    count: int,
    idle_seconds: int,
    timeout: int,
    rounds: int = 1,
) -> None:
    from tests.kube_real import conftest as tier

    namespaces = [f"bench-{i:04d}" for i in range((count + PER_NAMESPACE - 1) // PER_NAMESPACE)]
    for ns in namespaces:
        _create(
            kube,
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        )
    production = {
        "CLOUDSWEEP_SCHEDULE_JITTER_SECONDS": "60",
        "CLOUDSWEEP_STATUS_REFRESH_SECONDS": "30",
        "CLOUDSWEEP_AWS_MAX_ATTEMPTS": "5",
    }
    operator = tier.start_operator(kube, folder / "op", database_url, moto_url, **production)
    try:
        pid = operator.process.pid
        cpu0 = _cpu_seconds(pid)
        started = time.monotonic()
        for i in range(count):
            account = str(FIRST_ACCOUNT + i)
            ns = namespaces[i // PER_NAMESPACE]
            _create(
                kube,
                f"/apis/{GROUP}/namespaces/{ns}/awsaccounts",
                {
                    "apiVersion": GROUP,
                    "kind": "AwsAccount",
                    "metadata": {"name": f"acct-{i:05d}"},
                    "spec": {
                        "accountId": account,
                        "roleArn": f"arn:aws:iam::{account}:role/cloudsweep",
                        "regions": ["us-east-1"],
                    },
                },
            )
        created = time.monotonic() - started
        connected = _wait(lambda: _connected(kube) >= count, timeout, "all Connected")
        connect_seconds = connected - started
        cpu_connect = _cpu_seconds(pid) - cpu0
        print(f"accounts: {count} in {len(namespaces)} namespaces (created in {created:.1f} s)")
        print(
            f"all Connected after {connect_seconds:.1f} s; operator CPU "
            f"{cpu_connect:.1f} s ({cpu_connect / count:.3f} CPU-s per account); "
            f"load {_load()}"
        )
        rewrites = operator.output().count("did not reach the object")
        print(f"'status did not reach the object' log lines: {rewrites}")

        scans_started = time.monotonic()
        for ns in namespaces:
            _create(
                kube,
                f"/apis/{GROUP}/namespaces/{ns}/scanschedules",
                {
                    "apiVersion": GROUP,
                    "kind": "ScanSchedule",
                    "metadata": {
                        "name": "nightly",
                        "annotations": {"cloudsweep.io/run-now": "bench-1"},
                    },
                    "spec": {
                        "schedule": "0 3 * * *",
                        "regions": ["us-east-1"],
                        "accountSelector": {},
                    },
                },
            )
        finished = _wait(lambda: _scans_finished(database_url) >= count, timeout, "all scans")
        print(
            f"all {count} scans finished {finished - scans_started:.1f} s after the run-now "
            f"({_scan_outcomes(database_url)}); load {_load()}"
        )
        print(f"operator RSS: peak {_rss(pid, 'VmHWM'):.0f} MiB, now {_rss(pid, 'VmRSS'):.0f} MiB")
        for round_number in range(2, rounds + 1):
            _scan_round(kube, namespaces, database_url, count, round_number, timeout, pid)

        # Steady state: the scans' totals reach status within one refresh, then nothing changes.
        time.sleep(45)
        before, cpu_before = _api_requests(kube), _cpu_seconds(pid)
        time.sleep(idle_seconds)
        after, cpu_after = _api_requests(kube), _cpu_seconds(pid)
        per_minute = {
            k: (after.get(k, 0) - before.get(k, 0)) * 60 / idle_seconds
            for k in set(after) | set(before)
        }
        print(f"steady state, the operator's requests: {_rates(per_minute, operators=True)}")
        print(f"steady state, the API servers' own: {_rates(per_minute, operators=False)}")
        idle_cores = (cpu_after - cpu_before) / idle_seconds
        print(
            f"operator CPU at idle: {idle_cores:.3f} cores "
            f"({idle_cores / count:.6f} per account); RSS {_rss(pid, 'VmRSS'):.0f} MiB"
        )

        # A restart: what the new process does to AWS in its first minute.
        operator.stop()
        assumed_before, scans_before = _assume_roles(moto_url), _scans_started(database_url)
        restart = tier.start_operator(kube, folder / "op2", database_url, moto_url, **production)
        operator = restart
        cpu_restart = _cpu_seconds(restart.process.pid)
        time.sleep(60)
        print(
            f"first minute after a restart: {_scans_started(database_url) - scans_before} scans "
            f"started, {_assume_roles(moto_url) - assumed_before} AssumeRole calls, operator "
            f"CPU {_cpu_seconds(restart.process.pid) - cpu_restart:.1f} s; load {_load()}"
        )
    finally:
        operator.stop()
        tier.remove_webhook_configurations(kube)


def _scan_round(
    kube: Any,
    namespaces: list[str],
    database_url: str,
    count: int,
    round_number: int,
    timeout: int,
    pid: int,
) -> None:
    """Every account's scan once more (a new run-now value on each schedule); the operator's RSS
    once they have all finished."""
    started = time.monotonic()
    for ns in namespaces:
        path = f"/apis/{GROUP}/namespaces/{ns}/scanschedules/nightly"
        body = {"metadata": {"annotations": {"cloudsweep.io/run-now": f"bench-{round_number}"}}}
        response = kube.request("PATCH", path, body, content_type="application/merge-patch+json")
        if response.status != 200:
            raise RuntimeError(f"PATCH {path}: {response.status} {response.body}")
    wanted = count * round_number
    finished = _wait(lambda: _scans_finished(database_url) >= wanted, timeout, "the round")
    print(
        f"round {round_number}: {count} more scans in {finished - started:.1f} s "
        f"({wanted} finished in all); operator RSS now {_rss(pid, 'VmRSS'):.0f} MiB, "
        f"peak {_rss(pid, 'VmHWM'):.0f} MiB; load {_load()}"
    )


# --- the parts -------------------------------------------------------------------------------


@contextmanager
def _kube_real(tool: Path, state: Path) -> Iterator[Any]:
    from tests.deploy.conftest import render
    from tests.kube_real import server
    from tests.kube_real.conftest import _IDENTITY_KINDS

    instance = server.start(tool, state)
    try:
        server.install_crds(instance)
        server.apply_objects(
            instance, [o for o in render("deploy/base") if o["kind"] in _IDENTITY_KINDS]
        )
        yield instance
    finally:
        server.stop(instance)


@contextmanager
def _moto(folder: Path) -> Iterator[str]:
    from tests.net import free_port

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'operator'}:{REPO}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    log = (folder / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", _MOTO, str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _answers(url), 60, "moto")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/bench/assume-role-count", timeout=2):
            return True
    except OSError:
        return False


def _assume_roles(moto_url: str) -> int:
    with urllib.request.urlopen(f"{moto_url}/bench/assume-role-count", timeout=10) as answer:
        return int(answer.read())


def _create(kube: Any, path: str, body: dict[str, Any]) -> None:
    response = kube.request("POST", path, body)
    if response.status not in (200, 201):
        raise RuntimeError(f"POST {path}: {response.status} {response.body}")


def _connected(kube: Any) -> int:
    listed = kube.get(f"/apis/{GROUP}/awsaccounts") or {}
    ready = 0
    for item in listed.get("items") or []:
        for condition in (item.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Connected" and condition.get("status") == "True":
                ready += 1
    return ready


def _query(database_url: str, sql: str) -> Any:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(sql)).all()
    finally:
        engine.dispose()


def _scans_finished(database_url: str) -> int:
    return int(
        _query(database_url, "SELECT count(*) FROM scan_results WHERE status <> 'running'")[0][0]
    )


def _scans_started(database_url: str) -> int:
    return int(_query(database_url, "SELECT count(*) FROM scan_results")[0][0])


def _scan_outcomes(database_url: str) -> str:
    rows = _query(database_url, "SELECT status, count(*) FROM scan_results GROUP BY status")
    return ", ".join(f"{count} {status}" for status, count in sorted(rows))


_REQUEST_LINE = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _api_requests(kube: Any) -> dict[tuple[str, str], float]:
    """(verb, resource) -> requests the API servers counted (both: the 1.20 server's for the
    core API, the CRD server's for cloudsweep.io; the aggregator's proxying is not counted)."""
    counts: dict[tuple[str, str], float] = {}
    for server in (kube.server, kube.env["KUBE_REAL_CRD_SERVER"]):
        request = urllib.request.Request(f"{server}/metrics")
        request.add_header("Authorization", f"Bearer {kube.token()}")
        import ssl

        context = ssl.create_default_context(cafile=str(kube.ca))
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            text = answer.read().decode()
        for line in text.splitlines():
            match = _REQUEST_LINE.match(line)
            if not match:
                continue
            labels = dict(_LABEL.findall(match.group(1)))
            resource = labels.get("resource") or ""
            if not resource:
                continue  # /metrics, /readyz, discovery: not the operator's
            key = (
                labels.get("verb", "?"),
                resource + (f"/{labels['subresource']}" if labels.get("subresource") else ""),
            )
            counts[key] = counts.get(key, 0.0) + float(match.group(2))
    return counts


# What the operator reads and writes; the rest are the API servers' own loops (endpoints,
# leases, priority levels, the CRD server's delegated authorization).
_OPERATORS = ("awsaccounts", "scanschedules", "cleanuppolicies", "cleanupapprovals", "events")


def _rates(per_minute: dict[tuple[str, str], float], *, operators: bool) -> str:
    chosen = {
        k: v for k, v in per_minute.items() if (k[1].split("/")[0] in _OPERATORS) == operators
    }
    reads = sum(v for (verb, _), v in chosen.items() if verb in ("GET", "LIST", "WATCH"))
    writes = sum(v for (verb, _), v in chosen.items() if verb not in ("GET", "LIST", "WATCH"))
    top = sorted(((v, k) for k, v in chosen.items() if v), reverse=True)[:6]
    detail = ", ".join(f"{verb} {res} {v:.1f}" for v, (verb, res) in top)
    return f"{reads:.1f} reads/min, {writes:.1f} writes/min ({detail or 'none'})"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(1)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
