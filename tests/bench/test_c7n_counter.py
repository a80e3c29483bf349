"""The benchmark's server-side call counter (``bench/c7n.py``) counts as botocore does.

Both tools of ``python -m bench c7n`` are counted at the moto server; this checks the counter
against the client's own record (a botocore event per call) over the protocols the scan uses:
query (EC2, ELB, STS), JSON (CloudWatch Logs), CBOR or query (CloudWatch) and REST (S3).
"""

from __future__ import annotations

from collections import Counter

import boto3

from bench import c7n

CREDENTIALS = {"aws_access_key_id": "AKIABENCHCOUNTER0000", "aws_secret_access_key": "x"}


def test_counts_every_call_by_service_and_operation() -> None:
    made: Counter[str] = Counter()

    def record(event_name: str, **_: object) -> None:
        made[event_name.rsplit(".", 1)[-1]] += 1

    with c7n.counted_moto() as (endpoint, counter):
        session = boto3.Session(region_name="eu-west-1", **CREDENTIALS)
        session.events.register("before-call", record)
        ec2 = session.client("ec2", endpoint_url=endpoint)
        ec2.create_volume(AvailabilityZone="eu-west-1a", Size=1)
        ec2.describe_volumes()
        ec2.describe_volumes()
        session.client("elb", endpoint_url=endpoint).describe_load_balancers()
        session.client("logs", endpoint_url=endpoint).describe_log_groups()
        session.client("cloudwatch", endpoint_url=endpoint).list_metrics()
        session.client("s3", endpoint_url=endpoint).list_buckets()
        session.client("backup", endpoint_url=endpoint).list_backup_vaults()
        session.client("sts", endpoint_url=endpoint).get_caller_identity()

        counted = counter.take()

    assert counted == Counter(
        {
            ("ec2", "CreateVolume"): 1,
            ("ec2", "DescribeVolumes"): 2,
            ("elasticloadbalancing", "DescribeLoadBalancers"): 1,
            ("logs", "DescribeLogGroups"): 1,
            ("monitoring", "ListMetrics"): 1,
            ("s3", "ListBuckets"): 1,
            ("backup", "ListBackupVaults"): 1,
            ("sts", "GetCallerIdentity"): 1,
        }
    )
    assert sum(counted.values()) == sum(made.values())
