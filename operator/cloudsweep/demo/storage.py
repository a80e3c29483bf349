"""Demo seeds for the storage types: volumes that should be gp3, unused AMIs, log groups that
never expire and buckets with abandoned multipart uploads, each with look-alikes that are in use.

Called by :mod:`cloudsweep.demo.world`, once per region, after :func:`cloudsweep.demo.core.seed_ec2`
(the gp3 candidates are attached to its instances). Sizes that would take gigabytes to upload
(stored log bytes, uploaded parts) are set in the in-process moto server by
:func:`cloudsweep.aws.emulator.set_stored_bytes`; on a server in another process they stay small.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Final

from cloudsweep import pricing
from cloudsweep.aws import emulator
from cloudsweep.demo.seeding import DAY, PROTECT_TAG, RegionSeed, Verdict, spec, tags_of

_GIB: Final = 1024**3


def seed_storage(seed: RegionSeed) -> None:
    _seed_gp3_candidates(seed)
    _seed_images(seed)
    # Only where the price catalog has the storage prices (the packaged one of 2026-11-25 has them
    # for us-east-1 only): elsewhere these findings would show as waste of unknown price.
    catalog = pricing.load_catalog()
    if _priced(catalog.cloudwatch_logs_storage_monthly, seed.region):
        _seed_log_groups(seed)
    if _priced(catalog.s3_standard_storage_monthly, seed.region):
        _seed_buckets(seed)


def _priced(lookup: Callable[[str, int], Decimal], region: str) -> bool:
    try:
        lookup(region, _GIB)
    except LookupError:
        return False
    return True


def _seed_gp3_candidates(seed: RegionSeed) -> None:
    """Attached gp2 and io1 volumes that gp3 serves for less; a protected one."""
    ec2 = seed.account.ec2(seed.region)
    zone = seed.subnets[0]["AvailabilityZone"]
    for name, host, device, volume_type, size, iops, category, verdict, extra in (
        ("web-1-data", "web-1", "/dev/sdg", "gp2", 500, None, "gp2-attached", Verdict.WASTE, {}),
        (
            "batch-1-scratch",
            "batch-1",
            "/dev/sdh",
            "io1",
            200,
            5000,
            "io1-attached",
            Verdict.WASTE,
            {},
        ),
        (
            "web-2-cache",
            "web-2",
            "/dev/sdg",
            "gp2",
            200,
            None,
            "protected",
            Verdict.PROTECTED,
            {PROTECT_TAG: "true"},
        ),
    ):
        tags = seed.labels(
            name, "storefront" if host.startswith("web") else "data", "prod", **extra
        )
        volume_id = ec2.create_volume(
            AvailabilityZone=zone,
            Size=size,
            VolumeType=volume_type,  # type: ignore[arg-type]
            TagSpecifications=spec("volume", tags),
            **({"Iops": iops} if iops else {}),  # type: ignore[arg-type]
        )["VolumeId"]
        ec2.attach_volume(VolumeId=volume_id, InstanceId=seed.instances[host], Device=device)
        seed.add(
            "ebs-gp3-candidate",
            volume_id,
            tags,
            category,
            verdict,
            120 * DAY,
            volume_type=volume_type,
            size=str(size),
            attached_to=seed.instances[host],
        )


def _seed_images(seed: RegionSeed) -> None:
    """AMIs: one nothing uses (waste), ones a launch template version or a launch configuration
    uses, and one too new to judge. The instances' own AMI is core's."""
    ec2 = seed.account.ec2(seed.region)
    images: dict[str, str] = {}
    for name, team, category, verdict, age in (
        ("web-base-2023.11", "platform", "unused", Verdict.WASTE, 400),
        ("batch-base-2024.02", "data", "launch-template", Verdict.IN_USE, 300),
        ("legacy-base-2022.08", "platform", "launch-configuration", Verdict.IN_USE, 800),
        ("ml-base-new", "data", "recent", Verdict.TOO_RECENT, 20),
    ):
        tags = seed.labels(name, team, "prod")
        image_id = ec2.register_image(Name=tags["Name"], Architecture="x86_64")["ImageId"]
        # moto gives each image a snapshot of its own: AMI-referenced, so never snapshot waste.
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if "Ebs" in m]
        ec2.create_tags(Resources=[image_id, *snapshots], Tags=tags_of(tags))
        images[category] = image_id
        seed.add("ami", image_id, tags, category, verdict, age * DAY)
        for snapshot in snapshots:
            seed.add("ebs-snapshot", snapshot, tags, "ami-referenced", Verdict.IN_USE, age * DAY)
    # Only version 2 of the template names the image: every version counts, not the default.
    template = ec2.create_launch_template(
        LaunchTemplateName="batch-workers" + seed.suffix,
        LaunchTemplateData={"InstanceType": "m5.large"},
    )["LaunchTemplate"]
    ec2.create_launch_template_version(
        LaunchTemplateId=template["LaunchTemplateId"],
        LaunchTemplateData={"ImageId": images["launch-template"], "InstanceType": "m5.large"},
    )
    seed.account.autoscaling(seed.region).create_launch_configuration(
        LaunchConfigurationName="legacy-web" + seed.suffix,
        ImageId=images["launch-configuration"],
        InstanceType="t3.small",
    )


def _seed_log_groups(seed: RegionSeed) -> None:
    """Log groups that never expire (waste), one with a retention, one protected."""
    logs = seed.account.logs(seed.region)
    stored: dict[str, int] = {}
    for name, team, gib, retention, category, verdict, age, extra in (
        (
            "/aws/lambda/promo-2023-signup",
            "marketing",
            300,
            None,
            "never-expires",
            Verdict.WASTE,
            400,
            {},
        ),
        ("/ecs/orders-api", "storefront", 80, 30, "has-retention", Verdict.IN_USE, 500, {}),
        (
            "/audit/payments",
            "payments",
            120,
            None,
            "protected",
            Verdict.PROTECTED,
            700,
            {"do-not-delete": "true"},
        ),
    ):
        group = name + seed.suffix
        tags = {**seed.labels(group, team, "prod", **extra), "Name": group}
        logs.create_log_group(logGroupName=group, tags=tags)
        if retention:
            logs.put_retention_policy(logGroupName=group, retentionInDays=retention)
        logs.create_log_stream(logGroupName=group, logStreamName="main")
        logs.put_log_events(
            logGroupName=group,
            logStreamName="main",
            logEvents=[{"timestamp": int(seed.now.timestamp() * 1000), "message": "started"}],
        )
        stored[group] = gib * _GIB
        seed.add(
            "cloudwatch-log-group", group, tags, category, verdict, age * DAY, stored_gib=str(gib)
        )
    emulator.set_stored_bytes(seed.account.account_id, seed.region, "cloudwatch-log-group", stored)


def _seed_buckets(seed: RegionSeed) -> None:
    """Buckets with abandoned uploads: no lifecycle configuration, a configuration without an
    abort rule (waste), and one whose abort rule covers them (in use)."""
    s3 = seed.account.s3(seed.region)
    sizes: dict[str, int] = {}
    for short, team, gib, rules, category, verdict in (
        ("media-uploads", "storefront", 120, None, "no-lifecycle", Verdict.WASTE),
        ("data-lake-raw", "data", 60, "expire-only", "lifecycle-without-abort", Verdict.WASTE),
        ("db-backups", "platform", 40, "abort", "abort-rule", Verdict.IN_USE),
    ):
        bucket = f"cloudsweep-demo-{seed.account.account_id}-{seed.region}-{short}"
        location = (
            {}
            if seed.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": seed.region}}
        )
        s3.create_bucket(Bucket=bucket, **location)  # type: ignore[arg-type]
        tags = seed.labels(bucket, team, "prod")
        tags["Name"] = bucket
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags_of(tags)})
        if rules is not None:
            lifecycle_rules: list[dict[str, object]] = [
                {
                    "ID": "expire-tmp",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "tmp/"},
                    "Expiration": {"Days": 14},
                }
            ]
            if rules == "abort":
                lifecycle_rules.append(
                    {
                        "ID": "abort-uploads",
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
                    }
                )
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={"Rules": lifecycle_rules},  # type: ignore[typeddict-item]
            )
        for key in ("exports/2024-q1.parquet", "exports/2024-q2.parquet"):
            upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"part")
            sizes[f"{bucket}/{upload}"] = gib * _GIB // 2
        seed.add(
            "s3-incomplete-multipart",
            bucket,
            tags,
            category,
            verdict,
            timedelta(days=365),
            parts_gib=str(gib),
        )
    emulator.set_stored_bytes(seed.account.account_id, seed.region, "s3-multipart-upload", sizes)
