"""Helpers of the metrics tests: read a collector's samples, find promtool and prometheus."""

from __future__ import annotations

import shutil
from collections.abc import Iterable

import pytest
from prometheus_client.core import Metric

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(families: Iterable[Metric]) -> Samples:
    """Every sample as ``{(name, frozenset(labels.items())): value}``."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def named(found: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in found.items() if n == name}


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # Not a skip: CI installs Debian's `prometheus` package, which brings both binaries.
        pytest.fail(
            f"{name} not found: install Debian's prometheus package (apt-get install prometheus)"
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return _binary("prometheus")
