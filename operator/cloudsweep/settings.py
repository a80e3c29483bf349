"""Process-wide settings from the environment (``CLOUDSWEEP_*``); read by the front doors and store."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cloudsweep"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOUDSWEEP_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL under data_dir is started.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the embedded PostgreSQL keeps its files ($XDG_DATA_HOME/cloudsweep).",
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        description="Send every AWS call to this endpoint (a moto server in tests and the demo). "
        "AWS_ENDPOINT_URL is honoured too.",
    )
    price_catalog: Path | None = Field(
        default=None,
        description="A price catalog JSON to use instead of the bundled one "
        "(`cloudsweep pricing refresh` writes one under data_dir).",
    )
    scan_concurrency: int = Field(
        default=8, ge=1, le=64, description="Regions x detectors at once."
    )
    aws_max_attempts: int = Field(default=5, ge=1, le=20, description="botocore standard retries.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
