"""Contract test: walk the detector registry and hold every detector to the house rules."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

from cloudsweep import detectors
from cloudsweep.detectors import base

NAMES = detectors.names()
_ACTION = re.compile(r"^[a-z0-9-]+:[A-Z][A-Za-z0-9]+$")


def test_every_resource_type_of_the_brief_is_registered():
    assert NAMES == [
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
    ]
    assert [type(d).name for d in detectors.all_detectors()] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_detector_contract(name):
    cls = detectors.get(name)
    assert issubclass(cls, base.Detector)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cls.name)
    assert cls.resource_type == cls.name
    assert cls.permissions and all(_ACTION.fullmatch(p) for p in cls.permissions)
    assert len(set(cls.permissions)) == len(cls.permissions)
    # Parameters: a pydantic model refusing unknown keys, valid with no input at all.
    assert issubclass(cls.Parameters, base.DetectorParameters)
    assert cls.Parameters.model_config.get("extra") == "forbid"
    cls().parameters({})
    with pytest.raises(pydantic.ValidationError):
        cls().parameters({"no_such_parameter": 1})
    # A docstring with a usage example and its scoring rules.
    doc = cls.__doc__ or ""
    assert "Example" in doc and "::" in doc, f"{name} docstring lacks an example"
    assert "confidence" in doc.lower()
    # The module has a docstring and a test module.
    module = cls.__module__.rsplit(".", 1)[1]
    assert (Path(__file__).parent / f"test_{module}.py").is_file(), f"no tests for {module}"


def test_bad_parameters_are_refused():
    detector = detectors.get("rds-instance")()
    for bad in ({"lookback_days": 0}, {"lookback_days": "many"}, {"min_age_days": -1}):
        with pytest.raises(pydantic.ValidationError):
            detector.parameters(bad)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(detectors.UnknownDetector) as caught:
        detectors.get("ebs-volumes")
    message = str(caught.value)
    assert "'ebs-volumes'" in message
    assert all(name in message for name in NAMES)


def test_duplicate_names_are_refused():
    class Impostor(base.Detector[base.DetectorParameters]):
        name = "ebs-volume"
        resource_type = "ebs-volume"
        permissions = ("ec2:DescribeVolumes",)
        Parameters = base.DetectorParameters

        def detect(self, ctx, params):
            return iter(())

    with pytest.raises(ValueError, match="already registered"):
        detectors.register(Impostor)
    assert detectors.get("ebs-volume") is not Impostor
    # Registering the same class again is harmless (module reloads).
    original = detectors.get("ebs-volume")
    assert detectors.register(original) is original


def test_permissions_union():
    actions = detectors.permissions()
    assert actions == sorted(set(actions))
    assert "ec2:DescribeVolumes" in actions and "cloudwatch:GetMetricData" in actions
    assert detectors.permissions(["elastic-ip"]) == ["ec2:DescribeAddresses"]
    with pytest.raises(detectors.UnknownDetector):
        detectors.permissions(["nope"])


def test_all_detectors_share_one_inventory_concurrently(seed, make_context, recorder):
    """What the scan run does per region: every detector at once on one RegionContext; each
    listing is fetched once, and nothing but reads is called."""
    from concurrent.futures import ThreadPoolExecutor

    ec2 = seed("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=3)["VolumeId"]
    ec2.create_snapshot(VolumeId=volume)
    ec2.allocate_address(Domain="vpc")
    ctx = make_context()

    def run(detector):
        return list(detector.detect(ctx, detector.parameters()))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, detectors.all_detectors() * 3))

    found = {(f.resource_type, f.resource_id) for findings in results for f in findings}
    assert ("ebs-volume", volume) in found
    assert {t for t, _ in found} == {"ebs-volume", "ebs-snapshot", "elastic-ip"}
    counts = recorder.by_operation()
    for operation in ("DescribeVolumes", "DescribeSnapshots", "DescribeAddresses"):
        assert counts[("ec2", operation)] == 1, operation
    assert counts[("rds", "DescribeDBInstances")] == 1
    assert set(ctx.inventory.listings()) >= {
        "ec2:DescribeVolumes",
        "ec2:DescribeSnapshots",
        "ec2:DescribeAddresses",
        "elbv2:DescribeLoadBalancers",
        "elb:DescribeLoadBalancers",
        "rds:DescribeDBInstances",
    }
    assert not recorder.mutating()
    (assume,) = recorder.calls(operation="AssumeRole")
    assert "ec2:DescribeVolumes" in assume.params["Policy"]
