"""The s3-incomplete-multipart detector against moto over HTTP.

moto reports every multipart upload as initiated in 2010, so all are old enough; the cutoff is
tested by moving the scan's "now" back before that date.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cloudsweep.detectors import s3_multipart
from cloudsweep.domain import RiskLevel

from .conftest import REGION, by_id, check

DETECTOR = s3_multipart.S3MultipartDetector()
PART = 5 * 1024 * 1024


def bucket(s3, name: str, uploads: dict[str, int], tags: dict[str, str] | None = None) -> None:
    s3.create_bucket(Bucket=name)
    if tags:
        s3.put_bucket_tagging(
            Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
        )
    for key, parts in uploads.items():
        upload = s3.create_multipart_upload(Bucket=name, Key=key)["UploadId"]
        for number in range(1, parts + 1):
            s3.upload_part(
                Bucket=name, Key=key, UploadId=upload, PartNumber=number, Body=b"x" * PART
            )


def findings(make_context, **kwargs):
    params = kwargs.pop("params", {})
    return by_id(list(DETECTOR.detect(make_context(**kwargs), DETECTOR.parameters(params))))


def test_pending_uploads_without_an_abort_rule_are_priced_by_their_parts(
    seed, make_context, catalog
):
    bucket(seed("s3"), "media-uploads", {"videos/a.mp4": 2, "videos/b.mp4": 1})

    finding = findings(make_context)["media-uploads"]

    assert finding.details["parts_bytes"] == 3 * PART
    assert finding.details["incomplete_uploads"] == 2
    assert finding.details["lifecycle_rules"] is None
    assert finding.monthly_cost == catalog.s3_standard_storage_monthly(REGION, 3 * PART).quantize(
        finding.monthly_cost
    )
    assert finding.resource_arn == "arn:aws:s3:::media-uploads"
    assert finding.risk is RiskLevel.LOW
    assert finding.safety_checks_passed


def test_buckets_covered_by_an_abort_rule_or_without_uploads_are_not_reported(seed, make_context):
    s3 = seed("s3")
    bucket(s3, "covered-bucket", {"x/y": 1})
    s3.put_bucket_lifecycle_configuration(
        Bucket="covered-bucket",
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "abort",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                }
            ]
        },
    )
    bucket(s3, "clean-bucket", {})
    bucket(s3, "dirty-bucket", {"k": 1})

    assert set(findings(make_context)) == {"dirty-bucket"}


def test_an_existing_lifecycle_configuration_without_abort_or_for_another_prefix_is_reported(
    seed, make_context
):
    """Unhappy path: a lifecycle configuration already present, but it aborts nothing here."""
    s3 = seed("s3")
    bucket(s3, "logs-bucket", {"raw/part": 1, "tmp/part": 1})
    s3.put_bucket_lifecycle_configuration(
        Bucket="logs-bucket",
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "raw/"},
                    "Expiration": {"Days": 30},
                },
                {
                    "ID": "abort-tmp",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "tmp/"},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                },
                {
                    "ID": "disabled-abort",
                    "Status": "Disabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                },
            ]
        },
    )

    finding = findings(make_context)["logs-bucket"]

    assert finding.details["incomplete_uploads"] == 1  # raw/part only: tmp/ is covered
    assert finding.details["abort_prefixes"] == ["tmp/"]
    assert finding.details["lifecycle_rules"] == 3


def test_recent_uploads_are_not_abandoned(seed, make_context):
    bucket(seed("s3"), "busy-bucket", {"k": 1})

    # moto dates every upload 2010-11-10: a scan on 2010-11-12 sees a two-day-old upload.
    assert "busy-bucket" not in findings(make_context, now=datetime(2010, 11, 12, tzinfo=UTC))


def test_parts_are_listed_for_a_bounded_number_of_uploads(seed, make_context, recorder):
    bucket(seed("s3"), "many-uploads", {f"k{i}": 1 for i in range(4)})

    finding = findings(make_context, params={"max_uploads_measured": 2})["many-uploads"]

    assert finding.details["parts_bytes"] == 4 * PART
    assert finding.details["uploads_measured"] == 2
    assert recorder.count(service="s3", operation="ListParts") == 2
    assert not recorder.mutating()


def test_protected_bucket_is_high_risk(seed, make_context):
    bucket(seed("s3"), "keep-bucket", {"k": 1}, tags={"do-not-delete": "1"})

    finding = findings(make_context)["keep-bucket"]

    assert not check(finding, "protection-tag")
    assert finding.risk is RiskLevel.HIGH
