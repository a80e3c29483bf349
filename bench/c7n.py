"""``python -m bench c7n``: CloudSweep against Cloud Custodian on the same moto world.

Issue 16's comparison. One moto server in this process holds the world (``bench/scan.py``'s
``lb-heavy`` world by default); both tools run as their own processes against it, as users run
them: ``cloudsweep scan`` (the console script, its start-up included, writing into a fresh
migrated PostgreSQL database) and ``custodian run`` with policies that look for the same waste.
Runs alternate (CloudSweep, Custodian, CloudSweep, ...) so that drift in the machine's load hits
both; the figures are medians.

Calls are counted at the server for both tools, the same way: a WSGI layer in front of moto counts
every signed AWS request by service (from the SigV4 credential scope) and operation (from the
query protocol's ``Action``, the JSON protocol's ``X-Amz-Target`` or the CBOR protocol's path).

Cloud Custodian (c7n 0.9.x) is installed into its own virtualenv under ``build/`` by this command
(``--c7n-venv``); it is never a dependency of CloudSweep.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer
import yaml
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from bench import minimum as bench_minimum
from bench import scan as bench_scan
from bench.common import machine
from cloudsweep.aws import emulator
from cloudsweep.demo import world as demo_world
from cloudsweep.store import admin, embedded, migrate

C7N_REQUIREMENT = "c7n>=0.9,<0.10"
DEFAULT_VENV = Path("build/c7n-venv")

# CloudSweep's detectors that Cloud Custodian has a policy for, each with that policy. Left out:
# s3-incomplete-multipart (c7n has no filter for incomplete multipart uploads).
LOOKBACK_DAYS = 14


def _metrics(name: str, statistic: str, op: str, value: float) -> dict[str, Any]:
    return {
        "type": "metrics",
        "name": name,
        "statistics": statistic,
        "days": LOOKBACK_DAYS,
        "value": value,
        "op": op,
        "missing-value": 0,
    }


POLICIES: dict[str, list[dict[str, Any]]] = {
    "ebs-volume": [
        {"name": "unattached-volumes", "resource": "ebs", "filters": [{"State": "available"}]}
    ],
    "ebs-gp3-candidate": [
        {"name": "gp2-volumes", "resource": "ebs", "filters": [{"VolumeType": "gp2"}]}
    ],
    "ebs-snapshot": [
        {
            "name": "old-snapshots",
            "resource": "ebs-snapshot",
            "filters": [
                {"type": "age", "days": 30, "op": "ge"},
                {"type": "skip-ami-snapshots", "value": True},
            ],
        }
    ],
    "ami": [
        {"name": "unused-amis", "resource": "ami", "filters": [{"type": "unused", "value": True}]}
    ],
    "elastic-ip": [
        {
            "name": "unassociated-eips",
            "resource": "network-addr",
            "filters": [{"AssociationId": "absent"}],
        }
    ],
    "load-balancer": [
        {
            "name": "idle-application-lbs",
            "resource": "app-elb",
            "filters": [
                _metrics("RequestCount", "Sum", "le", 100),
                # As CloudSweep reads it for the idle ones: deletion protection.
                # (c7n turns the attribute's "false" into a boolean)
                {"type": "attributes", "key": "deletion_protection.enabled", "value": False},
            ],
        },
        {
            "name": "idle-classic-lbs",
            "resource": "elb",
            "filters": [_metrics("RequestCount", "Sum", "le", 100)],
        },
    ],
    "ec2-instance": [
        {
            "name": "idle-instances",
            "resource": "ec2",
            "filters": [{"State.Name": "running"}, _metrics("CPUUtilization", "Average", "lt", 5)],
        }
    ],
    "ec2-stopped-instance": [
        {
            "name": "stopped-instances",
            "resource": "ec2",
            "filters": [{"State.Name": "stopped"}, {"type": "state-age", "days": 30, "op": "ge"}],
        }
    ],
    "rds-instance": [
        {
            "name": "idle-databases",
            "resource": "rds",
            "filters": [_metrics("DatabaseConnections", "Maximum", "eq", 0)],
        }
    ],
    "nat-gateway": [
        {
            "name": "idle-nat-gateways",
            "resource": "nat-gateway",
            "filters": [_metrics("BytesOutToDestination", "Sum", "eq", 0)],
        }
    ],
    "cloudwatch-log-group": [
        {
            "name": "log-groups-kept-forever",
            "resource": "log-group",
            "filters": [{"retentionInDays": "absent"}],
        }
    ],
}


class CallCounter:
    """WSGI middleware in front of moto: counts every signed AWS request by service and operation."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._seconds: Counter[tuple[str, str]] = Counter()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        key = _operation(environ)
        started = time.perf_counter()
        try:
            return self._app(environ, start_response)
        finally:
            if key is not None:
                with self._lock:
                    self._counts[key] += 1
                    self._seconds[key] += time.perf_counter() - started

    def take(self) -> Counter[tuple[str, str]]:
        """The counts since the last ``take``, and start again from zero."""
        with self._lock:
            counts, self._counts, self._seconds = self._counts, Counter(), Counter()
        return counts

    def take_with_seconds(self) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
        """Counts and the server's seconds per operation since the last take."""
        with self._lock:
            taken = self._counts, self._seconds
            self._counts, self._seconds = Counter(), Counter()
        return taken


def _operation(environ: dict[str, Any]) -> tuple[str, str] | None:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" not in authorization:
        return None  # moto's own API (reset, ...), not an AWS call
    scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    service = scope[3] if len(scope) > 3 else "?"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, target.rsplit(".", 1)[-1]
    path = environ.get("PATH_INFO", "")
    if "/operation/" in path:  # Smithy RPC v2 CBOR (CloudWatch in recent botocore)
        return service, path.rsplit("/", 1)[-1]
    action = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
    if action:
        return service, action[0]
    method = environ.get("REQUEST_METHOD", "?")
    # REST calls name their operation by method and path: those of the benchmark's scans, so
    # that the table against the minimum matches them.
    rest = _REST_OPERATIONS.get((service, method, _path_shape(path)))
    if rest:
        return service, rest
    return service, f"{method} {'/' if path == '/' else '/...'}"


_REST_OPERATIONS = {
    ("s3", "GET", "/"): "ListBuckets",
    ("backup", "GET", "/backup-vaults/"): "ListBackupVaults",
    ("backup", "GET", "/backup-vaults/*/recovery-points/"): "ListRecoveryPointsByBackupVault",
}


def _path_shape(path: str) -> str:
    """``/backup-vaults/main/recovery-points/`` -> ``/backup-vaults/*/recovery-points/``."""
    parts = path.split("/")
    return "/".join(
        "*" if i == 2 and len(parts) > 3 and part else part for i, part in enumerate(parts)
    )


@contextmanager
def counted_moto() -> Iterator[tuple[str, CallCounter]]:
    """A moto server in this process (so the world can be backdated) behind a CallCounter.

    As ``emulator.LocalAws`` starts it (importing ``emulator`` keeps moto's default AMIs out),
    with the counter in front of moto's application.
    """
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
    counter = CallCounter(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        emulator.LOOPBACK, 0, counter, threaded=True, request_handler=MotoRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}", counter
    finally:
        server.shutdown()
        thread.join()


@contextmanager
def database_server() -> Iterator[str]:
    """The embedded PostgreSQL server (or CLOUDSWEEP_BENCH_SERVER_URL's): its URL.

    Started before the runs, as a production install's server is there before a scan; each run
    of ``cloudsweep scan`` gets a fresh migrated database on it.
    """
    configured = os.environ.get("CLOUDSWEEP_BENCH_SERVER_URL")
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="cloudsweep-bench-") as data_dir:
        server = embedded.start(Path(data_dir))
        try:
            yield server.url
        finally:
            admin.dispose_all()
            server.stop()


def ensure_custodian(venv: Path) -> Path:
    """``custodian`` of a virtualenv of its own, made and filled from PyPI when missing."""
    custodian = venv / "bin" / "custodian"
    if custodian.exists():
        return custodian
    print(f"installing {C7N_REQUIREMENT} into {venv} (once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", C7N_REQUIREMENT],
        check=True,
    )
    return custodian


@dataclass
class Run:
    tool: str
    seconds: float
    calls: Counter[tuple[str, str]]
    findings: int
    by_policy: dict[str, int] = field(default_factory=dict)
    minimum: int | None = None  # the minimum calls of the same findings (bench/minimum.py)
    own_count: int | None = None  # the calls the tool says it made (CloudSweep's recorder)
    server_seconds: Counter[tuple[str, str]] = field(default_factory=Counter)
    minimum_rows: list[bench_minimum.Row] = field(default_factory=list)  # by operation

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def _aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CLOUDSWEEP_"))}
    env.update(
        AWS_ACCESS_KEY_ID=emulator.ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=emulator.SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        # No instance-metadata probe for credentials or region: there is none on this machine.
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def _cloudsweep_run(
    endpoint: str,
    counter: CallCounter,
    world: demo_world.WorldSummary,
    detectors: list[str],
    server_url: str,
    workdir: Path,
    source: str | None,
) -> Run:
    url = admin.database_url(server_url, "cloudsweep_c7n_bench")
    admin.recreate_database(server_url, "cloudsweep_c7n_bench")
    migrate.upgrade(url)
    admin.dispose_all()
    env = _aws_env(endpoint)
    env.update(
        CLOUDSWEEP_DATABASE_URL=url,
        CLOUDSWEEP_AWS_ENDPOINT_URL=endpoint,
        # moto does not enforce ExternalIds: like the demo, a single-team install by nature.
        CLOUDSWEEP_ALLOW_SHARED_ACCOUNTS="true",
    )
    if source:
        env["PYTHONPATH"] = source
    command = [
        str(Path(sys.executable).with_name("cloudsweep")),
        "scan",
        "--role-arn",
        demo_world.role_arn(world.account_id, demo_world.SCANNER_ROLE_NAME),
        "--external-id",
        demo_world.DEMO_EXTERNAL_ID,
        "--regions",
        ",".join(world.regions),
        "--detectors",
        ",".join(detectors),
        "--output",
        "json",
    ]
    counter.take()
    with (workdir / "cloudsweep.json").open("w") as out:
        started = time.perf_counter()
        result = subprocess.run(
            command, env=env, stdout=out, stderr=subprocess.PIPE, text=True, check=False
        )
        seconds = time.perf_counter() - started
    calls, server_seconds = counter.take_with_seconds()
    if result.returncode not in (0, 3):
        raise SystemExit(f"cloudsweep scan failed ({result.returncode}): {result.stderr}")
    items = json.loads((workdir / "cloudsweep.json").read_text() or "[]")
    by_type = Counter(str(item["resource_type"]) for item in items)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            metadata = connection.execute(
                sa.text("SELECT metadata FROM scan_results ORDER BY started_at DESC LIMIT 1")
            ).scalar_one()
            found = [
                bench_minimum.Finding(region, resource_type, details)
                for region, resource_type, details in connection.execute(
                    sa.text("SELECT region, resource_type, resource_details FROM waste_items")
                )
            ]
    finally:
        engine.dispose()
    rows = bench_minimum.fold(bench_scan.minimum_rows_of(metadata, found))
    said = re.search(r"(\d+) AWS calls", result.stderr)
    return Run(
        "cloudsweep",
        seconds,
        calls,
        len(items),
        dict(sorted(by_type.items())),
        sum(row.minimum for row in rows),
        int(said.group(1)) if said else None,
        server_seconds,
        rows,
    )


def _custodian_run(
    endpoint: str,
    counter: CallCounter,
    world: demo_world.WorldSummary,
    custodian: Path,
    policy_file: Path,
    workdir: Path,
) -> Run:
    output = workdir / "custodian"
    shutil.rmtree(output, ignore_errors=True)
    command = [str(custodian), "run", "--output-dir", str(output)]
    # A cache of its own per run: shared by the policies of the run, as a user's run shares it,
    # but not carried over from the previous run.
    command += ["--cache", str(workdir / "custodian.cache")]
    for region in world.regions:
        command += ["--region", region]
    command += [
        "--assume",
        demo_world.role_arn(world.account_id, demo_world.SCANNER_ROLE_NAME),
        "--external-id",
        demo_world.DEMO_EXTERNAL_ID,
        str(policy_file),
    ]
    (workdir / "custodian.cache").unlink(missing_ok=True)
    counter.take()
    started = time.perf_counter()
    result = subprocess.run(
        command, env=_aws_env(endpoint), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    calls, server_seconds = counter.take_with_seconds()
    if result.returncode != 0:
        raise SystemExit(f"custodian run failed ({result.returncode}): {result.stderr[-3000:]}")
    by_policy: Counter[str] = Counter()
    for found in output.rglob("resources.json"):
        policy = found.parent.name
        by_policy[policy] += len(json.loads(found.read_text()))
    return Run(
        "custodian",
        seconds,
        calls,
        sum(by_policy.values()),
        dict(sorted(by_policy.items())),
        server_seconds=server_seconds,
    )


def _median(runs: list[Run], figure: Callable[[Run], float]) -> float:
    return statistics.median(figure(run) for run in runs)


def _print_runs(name: str, runs: list[Run]) -> None:
    minimum = runs[-1].minimum
    print(
        f"{name}: wall {', '.join(f'{r.seconds:.2f}' for r in runs)} s (median "
        f"{_median(runs, lambda r: r.seconds):.2f} s); calls {', '.join(str(r.total) for r in runs)}"
        + (f" (minimum of the same findings {minimum})" if minimum else "")
        + f"; findings {runs[-1].findings:,}"
    )
    if runs[-1].own_count is not None:
        print(f"  its own count of its calls (botocore events), last run: {runs[-1].own_count}")
    for what, count in runs[-1].by_policy.items():
        print(f"    {what:32s} {count:,}")
    print("  calls by operation (last run), and the moto server's seconds on them:")
    for (service, operation), count in sorted(runs[-1].calls.items()):
        spent = runs[-1].server_seconds[(service, operation)]
        print(f"    {service}:{operation:40s} {count:5d} {spent:7.2f} s")
    if runs[-1].minimum_rows:
        print("  calls by operation (last run, counted at the server) against the minimum:")
        made = {f"{service}:{operation}": n for (service, operation), n in runs[-1].calls.items()}
        bench_minimum.print_table(runs[-1].minimum_rows, made)


def run(
    resources: int = typer.Option(3_000, "--resources", "-n", help="How many resources to seed."),
    world_name: str = typer.Option("lb-heavy", "--world", help="bulk or lb-heavy."),
    runs: int = typer.Option(3, "--runs", min=1, help="Runs of each tool (medians are printed)."),
    venv: str = typer.Option(str(DEFAULT_VENV), "--c7n-venv", help="Cloud Custodian's virtualenv."),
    source: str = typer.Option(
        "",
        "--cloudsweep-source",
        help="Run `cloudsweep scan` from this source root (PYTHONPATH), e.g. another worktree's "
        "operator/; default: as the environment imports cloudsweep.",
    ),
    before: str = typer.Option(
        "",
        "--before-source",
        help="Also run `cloudsweep scan` from this source root (e.g. main's operator/), "
        "alternating with the others on the same world: a before and after.",
    ),
) -> None:
    """Seed a world, then time CloudSweep's and Cloud Custodian's whole processes on it."""
    custodian = ensure_custodian(Path(venv))
    version = subprocess.run(
        [str(custodian), "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    detectors = list(POLICIES)
    policies = [policy for name in detectors for policy in POLICIES[name]]
    with (
        counted_moto() as (endpoint, counter),
        database_server() as server_url,
        tempfile.TemporaryDirectory(prefix="cloudsweep-c7n-") as tmp,
    ):
        workdir = Path(tmp)
        policy_file = workdir / "policies.yml"
        policy_file.write_text(yaml.safe_dump({"policies": policies}, sort_keys=False))
        seeded = bench_scan.seed_world(endpoint, resources, world_name)
        world = seeded.bulk
        counter.take()
        results: dict[str, list[Run]] = {"cloudsweep": [], "custodian": [], "before": []}
        for _ in range(runs):
            if before:
                results["before"].append(
                    _cloudsweep_run(
                        endpoint, counter, world, detectors, server_url, workdir, before
                    )
                )
            results["cloudsweep"].append(
                _cloudsweep_run(
                    endpoint, counter, world, detectors, server_url, workdir, source or None
                )
            )
            results["custodian"].append(
                _custodian_run(endpoint, counter, world, custodian, policy_file, workdir)
            )
    load = os.getloadavg()
    print(
        f"machine: {machine()}; load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    bench_scan.print_world(seeded)
    print(f"Cloud Custodian {version}; detectors / policies: {', '.join(detectors)}")
    _print_runs("CloudSweep (cloudsweep scan)", results["cloudsweep"])
    _print_runs("Cloud Custodian (custodian run)", results["custodian"])
    if results["before"]:
        _print_runs(f"CloudSweep from {before} (before)", results["before"])
        earlier = _median(results["before"], lambda r: r.seconds)
        print(
            f"before: {earlier:.2f} s, {_median(results['before'], lambda r: r.total):.0f} calls; "
            f"ratio to Custodian {earlier / _median(results['custodian'], lambda r: r.seconds):.2f}"
        )
    ours = _median(results["cloudsweep"], lambda r: r.seconds)
    theirs = _median(results["custodian"], lambda r: r.seconds)
    our_calls = _median(results["cloudsweep"], lambda r: r.total)
    their_calls = _median(results["custodian"], lambda r: r.total)
    print(
        f"wall time: CloudSweep {ours:.2f} s, Custodian {theirs:.2f} s: ratio {ours / theirs:.2f} "
        "(target: at most 0.6)"
    )
    minimum = results["cloudsweep"][-1].minimum or 1
    per_resource = _median(
        results["cloudsweep"],
        lambda r: sum(n for (_, op), n in r.calls.items() if op in bench_scan.PER_RESOURCE),
    )
    print(
        f"calls: CloudSweep {our_calls:.0f} ({our_calls / minimum:.2f}x the minimum of the same "
        f"findings, {minimum}; "
        f"{per_resource:.0f} of them about one resource each), Custodian {their_calls:.0f} "
        f"({their_calls / minimum:.2f}x); target for CloudSweep: at most 1.2x"
    )
