"""A second CloudSweep process for the request-budget test: N EC2 calls through a budgeted session.

Run as ``python -m tests.aws.budget_worker DATABASE_URL ENDPOINT N RATE``; prints ``ready``, waits
for a line on standard input (so several workers start together), then calls DescribeVolumes N
times in one account and region.
"""

from __future__ import annotations

import sys

import boto3

from cloudsweep import aws
from cloudsweep.settings import Settings
from cloudsweep.store.rate_budget import PostgresBudget

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/CloudSweepScanner"


def main() -> None:
    database_url, endpoint, count, rate = sys.argv[1:5]
    session = aws.AccountSession(
        ACCOUNT,
        ROLE,
        external_id="budget-test",
        purpose=aws.Purpose.CLEANUP,
        settings=Settings(aws_endpoint_url=endpoint, aws_max_attempts=1),
        base_session=boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing"),
        budget=PostgresBudget(database_url, rates={"ec2": float(rate)}, burst_seconds=1.0),
    )
    ec2 = session.client("ec2", "us-east-1")
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(count)):
        ec2.describe_volumes()
    print("done", flush=True)


if __name__ == "__main__":
    main()
