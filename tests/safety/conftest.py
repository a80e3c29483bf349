"""Fixtures of the safety suite: a store on the per-test database and settings for moto.

The servers themselves (moto over HTTP, PostgreSQL) come from ``tests/conftest.py``.
"""

from __future__ import annotations

import pytest

from cloudsweep.settings import Settings
from cloudsweep.store import Store

from . import helpers


@pytest.fixture
def store(database_url: str) -> Store:
    return Store(database_url)


@pytest.fixture
def settings(moto_endpoint: str) -> Settings:
    return helpers.settings_for(moto_endpoint)
