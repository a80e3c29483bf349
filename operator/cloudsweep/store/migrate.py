"""Run Alembic migrations programmatically; called by ``cloudsweep db upgrade`` and at start-up."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from cloudsweep.store.engine import get_engine


class MigrationsNotFound(RuntimeError):
    pass


def migrations_dir() -> Path:
    """Where the Alembic environment lives: a source checkout, an installed share dir, or the env."""
    candidates = []
    if configured := os.environ.get("CLOUDSWEEP_MIGRATIONS_DIR"):
        candidates.append(Path(configured))
    candidates.append(Path(__file__).resolve().parents[3] / "migrations")
    candidates.append(Path(sys.prefix) / "share" / "cloudsweep" / "migrations")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationsNotFound(
        "cannot find the Alembic migrations (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); set CLOUDSWEEP_MIGRATIONS_DIR to the repository's migrations/ folder"
    )


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Passed as an attribute, not an option: ConfigParser would mangle '%' in passwords.
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    return script.get_current_head()
