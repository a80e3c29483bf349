"""S3 buckets holding incomplete multipart uploads with no lifecycle rule to abort them: the
uploaded parts are billed as storage, invisible in the bucket's object listing, forever.

Registered in ``detectors/__init__.py``; run by the scan run for each account and region (a
bucket belongs to the region ``ListBuckets`` reports it in).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic import Field

from cloudsweep.aws.errors import AwsError, ErrorKind
from cloudsweep.detectors import base, register
from cloudsweep.detectors.context import RegionContext
from cloudsweep.domain import Finding, RiskLevel, money


class S3MultipartParameters(base.DetectorParameters):
    upload_age_days: int = Field(
        default=7,
        ge=1,
        le=3650,
        description="Uploads started at least this long ago count as abandoned.",
    )
    max_uploads_measured: int = Field(
        default=200,
        ge=1,
        le=10000,
        description="Parts are listed for at most this many uploads per bucket; the rest are "
        "estimated at the measured average.",
    )


def abort_prefixes(rules: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """Key prefixes whose incomplete uploads an enabled lifecycle rule aborts ("" = all)."""
    prefixes: list[str] = []
    for rule in rules or ():
        if rule.get("Status") != "Enabled" or not rule.get("AbortIncompleteMultipartUpload"):
            continue
        rule_filter = rule.get("Filter")
        if rule_filter is None:
            prefixes.append(str(rule.get("Prefix") or ""))
        elif "Prefix" in rule_filter or not rule_filter:
            prefixes.append(str(rule_filter.get("Prefix") or ""))
        elif "And" in rule_filter and not rule_filter["And"].get("Tags"):
            prefixes.append(str(rule_filter["And"].get("Prefix") or ""))
        # A tag filter never matches an upload (uploads have no tags): such rules abort nothing.
    return prefixes


@register
class S3MultipartDetector(base.Detector[S3MultipartParameters]):
    """Buckets with abandoned multipart uploads that no lifecycle rule aborts.

    Example ScanSchedule entry::

        detectors:
          s3-incomplete-multipart: {upload_age_days: 7, max_uploads_measured: 500}

    Scoring:

    - confidence 85 (an upload untouched for ``upload_age_days`` is almost always abandoned);
      30 when the bucket is younger than ``min_age_days``.
    - risk LOW: the action adds one lifecycle rule that aborts uploads older than its
      ``days_after_initiation``; it keeps the bucket's other rules. HIGH with a protection tag.
    - cost: the bytes of the uncovered abandoned uploads' parts at the S3 Standard storage price
      (parts are billed in the upload's storage class; Standard is the common and dearest case).
    """

    name = "s3-incomplete-multipart"
    resource_type = "s3-incomplete-multipart"
    permissions = (
        "s3:ListAllMyBuckets",
        "s3:ListBucketMultipartUploads",
        "s3:ListMultipartUploadParts",
        "s3:GetLifecycleConfiguration",
        "s3:GetBucketTagging",
    )
    Parameters = S3MultipartParameters

    def detect(self, ctx: RegionContext, params: S3MultipartParameters) -> Iterator[Finding]:
        for bucket in ctx.inventory.buckets():
            try:
                finding = self._finding(ctx, params, dict(bucket))
            except AwsError as exc:
                if exc.kind is ErrorKind.NOT_FOUND:
                    continue  # deleted since ListBuckets
                raise
            if finding is not None:
                yield finding

    def _finding(
        self, ctx: RegionContext, params: S3MultipartParameters, bucket: dict[str, Any]
    ) -> Finding | None:
        name = str(bucket["Name"])
        cutoff = ctx.now - timedelta(days=params.upload_age_days)
        stale = [
            u
            for u in ctx.inventory.multipart_uploads(name)
            if u.get("Initiated", ctx.now) <= cutoff
        ]
        if not stale:
            return None
        prefixes = abort_prefixes(ctx.inventory.bucket_lifecycle_rules(name))
        uncovered = [
            u for u in stale if not any(str(u.get("Key", "")).startswith(p) for p in prefixes)
        ]
        if not uncovered:
            return None
        measured = uncovered[: params.max_uploads_measured]
        sizes = [
            ctx.inventory.upload_bytes(name, str(u["Key"]), str(u["UploadId"])) for u in measured
        ]
        stored = sum(sizes)
        if len(uncovered) > len(measured):
            stored += (sum(sizes) // len(sizes)) * (len(uncovered) - len(measured))
        cost, unknown = base.priced(ctx.prices.s3_standard_storage_monthly, ctx.region, stored)
        tags = ctx.inventory.bucket_tags(name)
        created = bucket.get("CreationDate")
        age = base.age_days(created, ctx.now)
        checks = (
            base.protection_check(tags, params.protection_tags),
            base.age_check(created, ctx.now, params.min_age_days),
        )
        oldest = min(u["Initiated"] for u in uncovered if "Initiated" in u)
        evidence = [
            f"{len(uncovered)} multipart upload(s) started {params.upload_age_days}+ days ago "
            f"(the oldest {oldest.isoformat()}) hold {stored} bytes of parts",
            "no enabled lifecycle rule aborts them"
            if not prefixes
            else f"lifecycle abort rules cover only the prefixes {', '.join(map(repr, prefixes))}",
            base.cost_evidence(cost, unknown, f"{stored} bytes of S3 Standard"),
        ]
        if len(uncovered) > len(measured):
            evidence.append(
                f"parts listed for {len(measured)} uploads; the other "
                f"{len(uncovered) - len(measured)} estimated at their average"
            )
        score = 85.0 if age is not None and age >= params.min_age_days else 30.0
        return Finding(
            resource_type=self.resource_type,
            resource_id=name,
            region=ctx.region,
            monthly_cost=money(cost),
            confidence=base.confidence(score),
            risk=base.risk_from(checks, RiskLevel.LOW),
            resource_arn=f"arn:{ctx.partition}:s3:::{name}",
            evidence=tuple(evidence),
            safety_checks=checks,
            tags=tags,
            created_at=created,
            details={
                "incomplete_uploads": len(uncovered),
                "uploads_measured": len(measured),
                "parts_bytes": stored,
                "lifecycle_rules": None
                if ctx.inventory.bucket_lifecycle_rules(name) is None
                else len(ctx.inventory.bucket_lifecycle_rules(name) or []),
                "abort_prefixes": prefixes,
                **base.pricing_details(ctx, cost, unknown, stored_bytes=stored),
            },
        )
