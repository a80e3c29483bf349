"""Names the command line shows in its help, kept where importing them costs nothing.

``cloudsweep --help`` must not import the detectors (boto3, pydantic models, the price catalog) to
list their names, so the names live here too. ``tests/cli/test_startup.py`` checks this list
against the detector registry and ``iam.DEFAULT_ROLE_NAME`` against the one here: a detector added
without its name here fails that test, not a user's ``--help``.
"""

from __future__ import annotations

from typing import Final

# Every registered detector's name, sorted as ``cloudsweep.detectors.names()`` returns them.
DETECTOR_NAMES: Final = (
    "ami",
    "cloudwatch-log-group",
    "ebs-gp3-candidate",
    "ebs-snapshot",
    "ebs-volume",
    "ec2-instance",
    "ec2-stopped-instance",
    "elastic-ip",
    "load-balancer",
    "nat-gateway",
    "rds-instance",
    "s3-incomplete-multipart",
)

# The scanner role's default name in every member account (``cloudsweep accounts discover``).
SCANNER_ROLE_NAME: Final = "CloudSweep"
