"""The resources of one account and region, each listing fetched once and shared.

Built by ``RegionContext`` (one per account and region in a scan run) and read by every detector
of that region: the EBS snapshot detector and the EBS volume detector both need the volumes, but
``DescribeVolumes`` is paged through only once. Thread-safe: each listing has its own lock, so two
detectors asking for the same listing wait for one fetch, and different listings load in parallel.

A listing that failed is remembered and its error raised again to later callers, so a region that
throttles or denies access is not hammered once per detector.

``page_size`` (a constructor parameter) sets MaxResults / PageSize / MaxRecords of paged listings,
raised to each API's minimum; tests set it small to prove that pagination is followed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cloudsweep.aws import errors
from cloudsweep.detectors.metrics import MetricNeeds, MetricQuery, MetricSeries, MetricsReader

if TYPE_CHECKING:
    from datetime import datetime

    from mypy_boto3_backup.type_defs import BackupVaultListMemberTypeDef
    from mypy_boto3_ec2.type_defs import (
        AddressTypeDef,
        ImageTypeDef,
        InstanceTypeDef,
        InstanceTypeInfoTypeDef,
        LaunchTemplateTypeDef,
        NatGatewayTypeDef,
        RouteTableTypeDef,
        SnapshotTypeDef,
        VolumeTypeDef,
    )
    from mypy_boto3_elb.type_defs import InstanceStateTypeDef, LoadBalancerDescriptionTypeDef
    from mypy_boto3_elbv2.type_defs import (
        LoadBalancerTypeDef,
        TargetGroupTypeDef,
        TargetHealthDescriptionTypeDef,
    )
    from mypy_boto3_logs.type_defs import LogGroupTypeDef
    from mypy_boto3_rds.type_defs import DBInstanceTypeDef
    from mypy_boto3_s3.type_defs import BucketTypeDef, MultipartUploadTypeDef

T = TypeVar("T")

# The smallest page each API accepts (AWS rejects smaller MaxResults values).
_MIN_PAGE = {
    ("ec2", "describe_volumes"): 5,
    ("ec2", "describe_snapshots"): 5,
    ("ec2", "describe_images"): 6,
    ("ec2", "describe_instances"): 5,
    ("ec2", "describe_nat_gateways"): 5,
    ("ec2", "describe_route_tables"): 5,
    ("rds", "describe_db_instances"): 20,
    ("ec2", "describe_launch_templates"): 5,
}
# The largest page of every paged listing the scan makes (botocore's service models and the API
# references): without a configured page size, a listing takes the fewest calls it can. Some
# defaults are smaller (DescribeLaunchConfigurations 50 of 100; moto's ELB APIs 50 of 400). The
# older EC2 listings (volumes, snapshots, instances, images) are left without MaxResults: they
# then answer everything at once.
_MAX_PAGE = {
    ("elbv2", "describe_load_balancers"): 400,
    ("elbv2", "describe_target_groups"): 400,
    ("elb", "describe_load_balancers"): 400,
    ("ec2", "describe_nat_gateways"): 1000,
    ("ec2", "describe_route_tables"): 100,
    ("ec2", "describe_launch_templates"): 200,
    ("ec2", "describe_launch_template_versions"): 200,
    ("autoscaling", "describe_launch_configurations"): 100,
    ("rds", "describe_db_instances"): 100,
    ("logs", "describe_log_groups"): 50,
    ("backup", "list_backup_vaults"): 1000,
    ("backup", "list_recovery_points_by_backup_vault"): 1000,
    ("s3", "list_multipart_uploads"): 1000,
    ("s3", "list_parts"): 1000,
}
_TAG_BATCH = 20  # DescribeTags of both load balancer APIs takes at most 20 names / ARNs
_INSTANCE_TYPE_BATCH = 100  # DescribeInstanceTypes takes at most 100 types


def _operation_name(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_")).replace("Db", "DB")


class _Failed:
    def __init__(self, error: errors.AwsError) -> None:
        self.error = error


class Inventory:
    """Lazily fetched, cached listings of one account and region.

    Example::

        inventory = Inventory(lambda service: session.client(service, "eu-west-1"),
                              region="eu-west-1", page_size=100)
        unattached = [v for v in inventory.volumes() if v["State"] == "available"]
        inventory.listings()   # {"ec2:DescribeVolumes": 1234}
    """

    def __init__(
        self, client: Callable[[str], Any], *, region: str, page_size: int | None = None
    ) -> None:
        self._client = client
        self.region = region
        self.page_size = page_size
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._cache: dict[str, Any] = {}
        self.metrics = MetricsReader(client, region=region)

    # --- machinery -----------------------------------------------------------------------

    def _cached(self, key: str, load: Callable[[], T]) -> T:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                try:
                    self._cache[key] = load()
                except errors.AwsError as exc:
                    self._cache[key] = _Failed(exc)
            value = self._cache[key]
        if isinstance(value, _Failed):
            raise value.error
        return cast(T, value)

    def _paginate(self, service: str, method: str, result_key: str, **params: Any) -> list[Any]:
        operation = _operation_name(method)
        if self.page_size is not None:
            size = max(self.page_size, _MIN_PAGE.get((service, method), 1))
            params["PaginationConfig"] = {"PageSize": size}
        elif (service, method) in _MAX_PAGE:
            params["PaginationConfig"] = {"PageSize": _MAX_PAGE[(service, method)]}
        items: list[Any] = []
        with errors.translated(service, operation, self.region):
            paginator = self._client(service).get_paginator(method)
            for page in paginator.paginate(**params):
                items.extend(page.get(result_key, []))
        return items

    def _call(self, service: str, method: str, **params: Any) -> Any:
        with errors.translated(service, _operation_name(method), self.region):
            return getattr(self._client(service), method)(**params)

    def listings(self) -> dict[str, int]:
        """Which listings were fetched: ``{"service:Operation[:detail]": items}`` (-1 if failed)."""
        with self._guard:
            snapshot = dict(self._cache)
        return {
            key: (-1 if isinstance(value, _Failed) else len(value))
            for key, value in snapshot.items()
        }

    def failures(self) -> dict[str, errors.AwsError]:
        with self._guard:
            snapshot = dict(self._cache)
        return {k: v.error for k, v in snapshot.items() if isinstance(v, _Failed)}

    # --- CloudWatch ----------------------------------------------------------------------

    def metric_series(
        self, queries: Sequence[MetricQuery], *, now: datetime, lookback_days: int
    ) -> dict[MetricQuery, MetricSeries]:
        """Daily series of many resources' metrics, 500 queries a ``GetMetricData`` call."""
        return self.metrics.read(queries, now=now, lookback_days=lookback_days)

    def metric_windows(
        self, queries: Sequence[MetricQuery], *, now: datetime, lookback_days: int
    ) -> dict[MetricQuery, float | None]:
        """Each query's statistic over the whole lookback (None: no datapoint), 500 a call."""
        return self.metrics.read_window(queries, now=now, lookback_days=lookback_days)

    def read_metrics_together(self, needs: Sequence[MetricNeeds], *, now: datetime) -> None:
        """Several detectors' metrics in shared batches, for their later reads (see metrics)."""
        self.metrics.read_together(needs, now=now)

    # --- EC2 -----------------------------------------------------------------------------

    def instances(self) -> list[InstanceTypeDef]:
        """Every instance of the region (all states), flattened out of the reservations."""

        def load() -> list[InstanceTypeDef]:
            reservations = self._paginate("ec2", "describe_instances", "Reservations")
            return [i for r in reservations for i in r.get("Instances", [])]

        return self._cached("ec2:DescribeInstances", load)

    def instance_types(self, names: Iterable[str]) -> dict[str, InstanceTypeInfoTypeDef]:
        """What AWS says of these instance types (instance storage...), 100 types a call."""
        wanted = sorted({n for n in names if n})
        out: dict[str, InstanceTypeInfoTypeDef] = {}
        for start in range(0, len(wanted), _INSTANCE_TYPE_BATCH):
            batch = wanted[start : start + _INSTANCE_TYPE_BATCH]

            def load(batch: list[str] = batch) -> list[InstanceTypeInfoTypeDef]:
                response = self._call("ec2", "describe_instance_types", InstanceTypes=batch)
                return list(response.get("InstanceTypes", []))

            for info in self._cached(f"ec2:DescribeInstanceTypes:{','.join(batch)}", load):
                out[str(info.get("InstanceType"))] = info
        return out

    def nat_gateways(self) -> list[NatGatewayTypeDef]:
        return self._cached(
            "ec2:DescribeNatGateways",
            lambda: self._paginate("ec2", "describe_nat_gateways", "NatGateways"),
        )

    def route_tables(self) -> list[RouteTableTypeDef]:
        return self._cached(
            "ec2:DescribeRouteTables",
            lambda: self._paginate("ec2", "describe_route_tables", "RouteTables"),
        )

    def volumes(self) -> list[VolumeTypeDef]:
        return self._cached(
            "ec2:DescribeVolumes",
            lambda: self._paginate("ec2", "describe_volumes", "Volumes"),
        )

    def snapshots(self) -> list[SnapshotTypeDef]:
        """Snapshots this account owns (not public or shared ones)."""
        return self._cached(
            "ec2:DescribeSnapshots",
            lambda: self._paginate("ec2", "describe_snapshots", "Snapshots", OwnerIds=["self"]),
        )

    def images(self) -> list[ImageTypeDef]:
        """AMIs this account owns."""
        return self._cached(
            "ec2:DescribeImages",
            lambda: self._paginate("ec2", "describe_images", "Images", Owners=["self"]),
        )

    def addresses(self) -> list[AddressTypeDef]:
        """Elastic IPs (DescribeAddresses is not paged: an account has at most a few hundred)."""

        def load() -> list[AddressTypeDef]:
            return list(self._call("ec2", "describe_addresses").get("Addresses", []))

        return self._cached("ec2:DescribeAddresses", load)

    def image_snapshot_ids(self) -> dict[str, str]:
        """Snapshot ID -> the ID of an AMI of this account whose block devices use it."""
        used: dict[str, str] = {}
        for image in self.images():
            for mapping in image.get("BlockDeviceMappings", []):
                snapshot_id = mapping.get("Ebs", {}).get("SnapshotId")
                if snapshot_id:
                    used.setdefault(snapshot_id, image["ImageId"])
        return used

    # --- ELBv2 (application, network, gateway) -------------------------------------------

    def load_balancers(self) -> list[LoadBalancerTypeDef]:
        return self._cached(
            "elbv2:DescribeLoadBalancers",
            lambda: self._paginate("elbv2", "describe_load_balancers", "LoadBalancers"),
        )

    def target_groups(self) -> list[TargetGroupTypeDef]:
        return self._cached(
            "elbv2:DescribeTargetGroups",
            lambda: self._paginate("elbv2", "describe_target_groups", "TargetGroups"),
        )

    def target_health(self, target_group_arn: str) -> list[TargetHealthDescriptionTypeDef]:
        def load() -> list[TargetHealthDescriptionTypeDef]:
            response = self._call(
                "elbv2", "describe_target_health", TargetGroupArn=target_group_arn
            )
            return list(response.get("TargetHealthDescriptions", []))

        return self._cached(f"elbv2:DescribeTargetHealth:{target_group_arn}", load)

    def load_balancer_tags(self, arns: Sequence[str]) -> dict[str, dict[str, str]]:
        """Tags of ELBv2 load balancers (fetched in batches of 20, cached per load balancer)."""
        return self._tags("elbv2", "ResourceArns", "TagDescriptions", "ResourceArn", arns)

    def load_balancer_attributes(self, arn: str) -> dict[str, str]:
        def load() -> dict[str, str]:
            response = self._call("elbv2", "describe_load_balancer_attributes", LoadBalancerArn=arn)
            return {a["Key"]: a["Value"] for a in response.get("Attributes", [])}

        return self._cached(f"elbv2:DescribeLoadBalancerAttributes:{arn}", load)

    # --- classic ELB ---------------------------------------------------------------------

    def classic_load_balancers(self) -> list[LoadBalancerDescriptionTypeDef]:
        return self._cached(
            "elb:DescribeLoadBalancers",
            lambda: self._paginate("elb", "describe_load_balancers", "LoadBalancerDescriptions"),
        )

    def classic_instance_health(self, name: str) -> list[InstanceStateTypeDef]:
        def load() -> list[InstanceStateTypeDef]:
            response = self._call("elb", "describe_instance_health", LoadBalancerName=name)
            return list(response.get("InstanceStates", []))

        return self._cached(f"elb:DescribeInstanceHealth:{name}", load)

    def classic_load_balancer_tags(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        return self._tags("elb", "LoadBalancerNames", "TagDescriptions", "LoadBalancerName", names)

    def _tags(
        self, service: str, param: str, result: str, id_key: str, ids: Iterable[str]
    ) -> dict[str, dict[str, str]]:
        wanted = list(dict.fromkeys(ids))
        out: dict[str, dict[str, str]] = {}
        missing: list[str] = []
        with self._guard:
            for resource in wanted:
                cached = self._cache.get(f"{service}:DescribeTags:{resource}")
                if isinstance(cached, dict):
                    out[resource] = cached
                else:
                    missing.append(resource)
        for start in range(0, len(missing), _TAG_BATCH):
            batch = missing[start : start + _TAG_BATCH]
            response = self._call(service, "describe_tags", **{param: batch})
            found = {
                d[id_key]: {t["Key"]: t.get("Value", "") for t in d.get("Tags", [])}
                for d in response.get(result, [])
            }
            with self._guard:
                for resource in batch:
                    tags = found.get(resource, {})
                    self._cache[f"{service}:DescribeTags:{resource}"] = tags
                    out[resource] = tags
        return out

    # --- RDS -----------------------------------------------------------------------------

    def db_instances(self) -> list[DBInstanceTypeDef]:
        return self._cached(
            "rds:DescribeDBInstances",
            lambda: self._paginate("rds", "describe_db_instances", "DBInstances"),
        )

    # --- AWS Backup ----------------------------------------------------------------------

    def backup_recovery_point_arns(self) -> frozenset[str]:
        """ARNs of the resources that back AWS Backup recovery points (EBS snapshot ARNs...).

        Raises ``AwsError`` when AWS Backup cannot be read (no permission, not available in the
        region, or moto, which lists vaults but not their recovery points); callers record that
        as a failed safety check instead of failing.
        """

        def load() -> frozenset[str]:
            arns: set[str] = set()
            for vault in self.backup_vaults():
                for point in self._paginate(
                    "backup",
                    "list_recovery_points_by_backup_vault",
                    "RecoveryPoints",
                    BackupVaultName=vault["BackupVaultName"],
                ):
                    arns.add(point.get("RecoveryPointArn", ""))
                    arns.add(point.get("ResourceArn", ""))
            arns.discard("")
            return frozenset(arns)

        return self._cached("backup:ListRecoveryPoints", load)

    def backup_vaults(self) -> list[BackupVaultListMemberTypeDef]:
        return self._cached(
            "backup:ListBackupVaults",
            lambda: self._paginate("backup", "list_backup_vaults", "BackupVaultList"),
        )

    # --- storage types: AMIs in use, log groups, S3 buckets (i15) -------------------------

    def launch_template_images(self) -> dict[str, list[str]]:
        """Image ID (or ``resolve:ssm:`` parameter) -> the launch template versions naming it.

        Every version counts, not only the default: an Auto Scaling group or a person may launch
        any version. One DescribeLaunchTemplateVersions listing per template.
        """

        def load() -> dict[str, list[str]]:
            used: dict[str, list[str]] = {}
            for template in self.launch_templates():
                versions = self._paginate(
                    "ec2",
                    "describe_launch_template_versions",
                    "LaunchTemplateVersions",
                    LaunchTemplateId=template["LaunchTemplateId"],
                )
                for version in versions:
                    image = (version.get("LaunchTemplateData") or {}).get("ImageId")
                    if image:
                        used.setdefault(image, []).append(
                            f"launch template {template.get('LaunchTemplateName')} "
                            f"version {version.get('VersionNumber')}"
                        )
            return used

        return self._cached("ec2:DescribeLaunchTemplateVersions", load)

    def launch_templates(self) -> list[LaunchTemplateTypeDef]:
        return self._cached(
            "ec2:DescribeLaunchTemplates",
            lambda: self._paginate("ec2", "describe_launch_templates", "LaunchTemplates"),
        )

    def launch_configuration_images(self) -> dict[str, list[str]]:
        """Image ID -> the Auto Scaling launch configurations naming it."""

        def load() -> dict[str, list[str]]:
            used: dict[str, list[str]] = {}
            for config in self._paginate(
                "autoscaling", "describe_launch_configurations", "LaunchConfigurations"
            ):
                used.setdefault(config["ImageId"], []).append(
                    f"launch configuration {config['LaunchConfigurationName']}"
                )
            return used

        return self._cached("autoscaling:DescribeLaunchConfigurations", load)

    def log_groups(self) -> list[LogGroupTypeDef]:
        return self._cached(
            "logs:DescribeLogGroups",
            lambda: self._paginate("logs", "describe_log_groups", "logGroups"),
        )

    def log_group_tags(self, arn: str) -> dict[str, str]:
        def load() -> dict[str, str]:
            response = self._call("logs", "list_tags_for_resource", resourceArn=arn)
            return dict(response.get("tags") or {})

        return self._cached(f"logs:ListTagsForResource:{arn}", load)

    def buckets(self) -> list[BucketTypeDef]:
        """The account's S3 buckets in this region (ListBuckets filtered by ``BucketRegion``)."""
        return self._cached(
            "s3:ListBuckets",
            lambda: self._paginate("s3", "list_buckets", "Buckets", BucketRegion=self.region),
        )

    def multipart_uploads(self, bucket: str) -> list[MultipartUploadTypeDef]:
        return self._cached(
            f"s3:ListMultipartUploads:{bucket}",
            lambda: self._paginate("s3", "list_multipart_uploads", "Uploads", Bucket=bucket),
        )

    def upload_bytes(self, bucket: str, key: str, upload_id: str) -> int:
        """The bytes of the parts uploaded so far (what S3 bills while the upload is pending)."""

        def load() -> list[int]:
            parts = self._paginate(
                "s3", "list_parts", "Parts", Bucket=bucket, Key=key, UploadId=upload_id
            )
            return [int(p.get("Size", 0)) for p in parts]

        return sum(self._cached(f"s3:ListParts:{bucket}/{upload_id}", load))

    def bucket_lifecycle_rules(self, bucket: str) -> list[dict[str, Any]] | None:
        """The bucket's lifecycle rules; None when it has no lifecycle configuration."""

        def load() -> dict[str, list[dict[str, Any]]]:
            # Cached as {} (no configuration) or {"rules": [...]}: listings() counts entries.
            try:
                response = self._call("s3", "get_bucket_lifecycle_configuration", Bucket=bucket)
            except errors.AwsError as exc:
                if exc.code == "NoSuchLifecycleConfiguration":
                    return {}
                raise
            return {"rules": [dict(rule) for rule in response.get("Rules", [])]}

        return self._cached(f"s3:GetBucketLifecycleConfiguration:{bucket}", load).get("rules")

    def bucket_tags(self, bucket: str) -> dict[str, str]:
        def load() -> dict[str, str]:
            try:
                response = self._call("s3", "get_bucket_tagging", Bucket=bucket)
            except errors.AwsError as exc:
                if exc.code == "NoSuchTagSet":
                    return {}
                raise
            return {t["Key"]: t.get("Value", "") for t in response.get("TagSet", [])}

        return self._cached(f"s3:GetBucketTagging:{bucket}", load)
