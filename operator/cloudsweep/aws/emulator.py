"""A local emulated AWS: a moto server on the loopback interface, running in this process.

Called by the command line for ``cloudsweep scan --demo`` and by the scan benchmark
(``python -m bench scan``), which then seed it with :mod:`cloudsweep.demo.world`. The only
module of the package that imports moto.

Example::

    with emulator.LocalAws() as aws:
        world = demo_world.seed_demo_world(aws.endpoint_url)
        ...  # scan aws.endpoint_url
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal

# moto reads this when an account's EC2 backend is first built; without it every account starts
# with hundreds of public AMIs and their snapshots, which would drown the seeded waste.
os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"

from cloudsweep.domain import InvalidInput


class DemoUnavailable(InvalidInput):
    """moto is not installed: the demo is an extra (``cloudsweep[demo]``), not in the image."""


try:
    from moto.server import ThreadedMotoServer
except ModuleNotFoundError as _missing:  # pragma: no cover - depends on the installation
    raise DemoUnavailable(
        "the demo's emulated AWS needs moto, which this installation leaves out (the operator "
        "image does): pip install 'cloudsweep[demo]', or run `make demo` in a checkout"
    ) from _missing

LOOPBACK: Final = "127.0.0.1"

# Any key pair signs requests for moto; an unknown key is moto's default account (123456789012).
# Fixed values mean the demo needs no AWS configuration on the machine.
ACCESS_KEY_ID: Final = "AKIACLOUDSWEEPDEMO00"
SECRET_ACCESS_KEY: Final = "cloudsweep-demo-secret"

BackdatedKind = Literal[
    "ebs-volume",
    "ebs-snapshot",
    "ami",
    "load-balancer",
    "classic-load-balancer",
    "rds-instance",
    "cloudwatch-log-group",
    "s3-bucket",
]
SizedKind = Literal["cloudwatch-log-group", "s3-multipart-upload"]


class LocalAws:
    """A moto server on 127.0.0.1 and a free port; a context manager, or ``start()``/``stop()``."""

    def __init__(self, *, host: str = LOOPBACK, port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: ThreadedMotoServer | None = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError(
                "the local AWS is not running; call start() or use it in a with block"
            )
        return self._endpoint_url

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LocalAws:
        if self._server is not None:
            return self
        # Werkzeug logs every request to stderr, even with moto's verbose=False; the demo's
        # output is the findings, not thousands of access-log lines.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        server, self._server, self._endpoint_url = self._server, None, None
        if server is not None:
            server.stop()

    def reset(self) -> None:
        """Forget every account's resources, as a fresh server would."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 200:
                raise RuntimeError(f"moto refused to reset: HTTP {response.status}")

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def backdate(
    account_id: str, region: str, kind: BackdatedKind, created: Mapping[str, datetime]
) -> int:
    """Set the creation time of resources held by a moto server in this process.

    moto stamps every resource with the time of the request and has no API to change it, so a
    seeded world would be all seconds old and no age rule (a volume unattached for 30 days, a
    snapshot older than 90) could be shown. The server of :class:`LocalAws` (and the tests')
    runs in this process, so its state can be reached directly. Keys are volume, snapshot and AMI
    IDs, load balancer ARNs, classic load balancer names, DB instance identifiers, log group
    names or bucket names.

    Returns how many of the resources were found; 0 means the server is another process (or the
    IDs are wrong), and nothing was changed.
    """
    found = 0
    for resource_id, when in created.items():
        target = _moto_object(account_id, region, kind, resource_id)
        if target is None:
            continue
        aware = when.astimezone(UTC)
        naive = aware.replace(tzinfo=None)  # moto keeps naive UTC datetimes for EC2 and RDS
        if kind == "ebs-volume":
            target.create_time = naive
        elif kind == "ebs-snapshot":
            target.start_time = naive
        elif kind == "ami":
            target.creation_date = naive
        elif kind == "load-balancer":
            # moto's ELBv2 keeps the ISO text it returns, with milliseconds
            target.created_time = (
                aware.strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond // 1000:03d}Z"
            )
        elif kind == "classic-load-balancer":
            target.created_time = aware
        elif kind == "cloudwatch-log-group":
            target.creation_time = naive
        elif kind == "s3-bucket":
            target.creation_date = aware
        else:
            target.created = naive
            target.instance_create_time = naive
        found += 1
    return found


def set_stored_bytes(
    account_id: str, region: str, kind: SizedKind, sizes: Mapping[str, int]
) -> int:
    """Set what a moto server in this process reports as stored: a log group's ``storedBytes``
    (keys: log group names) or the part sizes of a multipart upload (keys: ``bucket/upload-id``).

    The demo shows the cost of gigabytes of old logs and abandoned parts without sending
    gigabytes into an in-process server. Returns how many were found, as :func:`backdate` does.
    """
    found = 0
    for key, size in sizes.items():
        if kind == "cloudwatch-log-group":
            from moto.logs.models import logs_backends

            group = logs_backends[account_id][region].groups.get(key)
            streams = list(group.streams.values()) if group is not None else []
            if not streams:
                continue
            for index, stream in enumerate(streams):
                stream.stored_bytes = size if index == 0 else 0
        else:
            from moto.s3.models import s3_backends

            bucket_name, _, upload_id = key.partition("/")
            bucket = s3_backends[account_id]["aws"].buckets.get(bucket_name)
            upload = bucket.multiparts.get(upload_id) if bucket is not None else None
            parts = list(upload.parts.values()) if upload is not None else []
            if not parts:
                continue
            for index, part in enumerate(parts):
                part.contentsize = size // len(parts) + (size % len(parts) if index == 0 else 0)
        found += 1
    return found


def _moto_object(account_id: str, region: str, kind: BackdatedKind, resource_id: str) -> Any:
    # Imported here: these pull in large moto backends that only backdating needs.
    if kind == "cloudwatch-log-group":
        from moto.logs.models import logs_backends

        return logs_backends[account_id][region].groups.get(resource_id)
    if kind == "s3-bucket":
        from moto.s3.models import s3_backends

        return s3_backends[account_id]["aws"].buckets.get(resource_id)
    if kind in ("ebs-volume", "ebs-snapshot", "ami"):
        from moto.ec2.models import ec2_backends

        ec2 = ec2_backends[account_id][region]
        tables: dict[str, Mapping[str, Any]] = {
            "ebs-volume": ec2.volumes,
            "ebs-snapshot": ec2.snapshots,
            "ami": ec2.amis,
        }
        return tables[kind].get(resource_id)
    if kind == "load-balancer":
        from moto.elbv2.models import elbv2_backends

        return elbv2_backends[account_id][region].load_balancers.get(resource_id)
    if kind == "classic-load-balancer":
        from moto.elb.models import elb_backends

        return elb_backends[account_id][region].load_balancers.get(resource_id)
    from moto.rds.models import rds_backends

    return rds_backends[account_id][region].databases.get(resource_id)


def backdate_compute(
    account_id: str,
    region: str,
    *,
    launched: Mapping[str, datetime] | None = None,
    stopped: Mapping[str, datetime] | None = None,
    nat_created: Mapping[str, datetime] | None = None,
) -> int:
    """Set launch times, stop times and NAT gateway creation times in a moto server of this
    process (see :func:`backdate`): moto stamps them with the time of the request, so a demo could
    show no instance stopped for months. The stop time is the one AWS reports, inside the
    instance's ``StateTransitionReason``. Returns how many resources were found."""
    from moto.ec2.models import ec2_backends

    ec2 = ec2_backends[account_id][region]
    instances = {i.id: i for r in ec2.reservations.values() for i in r.instances}
    found = 0
    for instance_id, when in (launched or {}).items():
        if instance_id in instances:
            instances[instance_id].launch_time = when.astimezone(UTC).replace(tzinfo=None)
            found += 1
    for instance_id, when in (stopped or {}).items():
        if instance_id in instances:
            stamp = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            instances[instance_id]._reason = f"User initiated ({stamp} GMT)"
            found += 1
    for nat_id, when in (nat_created or {}).items():
        nat = ec2.nat_gateways.get(nat_id)
        if nat is not None:
            nat._created_at = when.astimezone(UTC).replace(tzinfo=None)
            found += 1
    return found
