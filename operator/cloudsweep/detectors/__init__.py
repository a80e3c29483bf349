"""THE detector registry: one detector class per resource type, registered once by name.

Called by the scan run (``all_detectors()``), the CLI and the custom-resource validation (``get``,
``names``), and the IAM template builder (each detector's ``permissions``). The detector modules
are imported at the bottom of this module so that importing ``cloudsweep.detectors`` registers
them all.
"""

from __future__ import annotations

from typing import Any, TypeVar

from cloudsweep.detectors.base import Detector, DetectorParameters
from cloudsweep.detectors.context import Prices, RegionContext
from cloudsweep.detectors.inventory import Inventory
from cloudsweep.domain import InvalidInput

D = TypeVar("D", bound=type[Detector[Any]])

_REGISTRY: dict[str, type[Detector[Any]]] = {}


class UnknownDetector(InvalidInput, KeyError):
    """A resource type or detector name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: D) -> D:
    """Class decorator: add a detector under its ``name``; a second class with the name is refused."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"detector {cls.__qualname__} has no name")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"detector name {name!r} is already registered by "
            f"{existing.__module__}.{existing.__qualname__}; "
            f"{cls.__module__}.{cls.__qualname__} must use another name"
        )
    _REGISTRY[name] = cls
    return cls


def get(name: str) -> type[Detector[Any]]:
    """The detector class registered as ``name``, or UnknownDetector listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownDetector(
            f"unknown resource type {name!r}; known resource types: {', '.join(names())}"
        ) from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def permissions(selected: list[str] | None = None) -> list[str]:
    """The IAM actions the detectors (all, or the ``selected`` names) use, sorted and unique.

    The scan session's inline read-only policy and the IAM role templates are built from this.
    """
    chosen = names() if selected is None else selected
    return sorted({action for name in chosen for action in get(name).permissions})


def all_detectors() -> list[Detector[Any]]:
    """One instance of every registered detector, in name order."""
    return [_REGISTRY[name]() for name in names()]


# Imported for their side effect: each module registers its detector.
from cloudsweep.detectors import (  # noqa: E402
    ami,
    ebs_gp3_candidate,
    ebs_snapshot,
    ebs_volume,
    ec2_instance,
    ec2_stopped_instance,
    elastic_ip,
    load_balancer,
    log_group,
    nat_gateway,
    rds_instance,
    s3_multipart,
)

__all__ = [
    "Detector",
    "DetectorParameters",
    "Inventory",
    "Prices",
    "RegionContext",
    "UnknownDetector",
    "all_detectors",
    "ami",
    "ebs_gp3_candidate",
    "ebs_snapshot",
    "ebs_volume",
    "ec2_instance",
    "ec2_stopped_instance",
    "elastic_ip",
    "get",
    "load_balancer",
    "log_group",
    "names",
    "nat_gateway",
    "permissions",
    "rds_instance",
    "register",
    "s3_multipart",
]
