"""``cloudsweep db``: upgrade the schema, show its status, apply retention."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudsweep import domain
from cloudsweep.cli import output

# Each command imports the store (SQLAlchemy, Alembic) itself: `cloudsweep --help` stays light.

app = typer.Typer(
    help="The database: schema migrations, status and retention.", no_args_is_help=True
)

FormatOption = Annotated[
    output.OutputFormat, typer.Option("--output", "-o", help="table, json or csv")
]


@app.command()
def upgrade() -> None:
    """Migrate the database to the newest schema (embedded, or CLOUDSWEEP_DATABASE_URL)."""
    from cloudsweep.store import database, migrate

    handle = database.resolve()
    try:
        before = migrate.current_revision(handle.url)
        migrate.upgrade(handle.url)
        after = migrate.current_revision(handle.url)
    finally:
        handle.close()
    output.errors.print(f"schema {before or 'empty'} -> {after} ({handle.description})")


@app.command()
def status(fmt: FormatOption = output.OutputFormat.TABLE) -> None:
    """Show the schema revision and row counts per table."""
    from cloudsweep.store import Store, database, migrate

    handle = database.resolve()
    try:
        info = Store(handle.url).status() if migrate.current_revision(handle.url) else None
        if info is None:
            info = {"revision": None, "head": migrate.head_revision(), "tables": {}}
    finally:
        handle.close()
    if fmt is output.OutputFormat.JSON:
        output.print_json({**info, "database": handle.description})
        return
    state = "up to date" if info["revision"] == info["head"] else "run `cloudsweep db upgrade`"
    output.console.print(
        f"database: {handle.description}\nrevision: {info['revision'] or 'none'} (head {info['head']}, {state})"
    )
    rows = [{"table": name, "rows": count} for name, count in info["tables"].items()]
    if rows:
        output.render(rows, columns=["table", "rows"], fmt=fmt, right_aligned=["rows"])


@app.command()
def retention(fmt: FormatOption = output.OutputFormat.TABLE) -> None:
    """Apply retention (scans 12 months, actions 24), make partitions ahead, refresh the views."""
    from cloudsweep.store import Store, database

    handle = database.open_database()
    try:
        report = Store(handle.url).apply_retention(domain.utcnow())
    finally:
        handle.close()
    rows = [
        {"what": "scans deleted", "count": report.scans_deleted},
        {"what": "cleanup actions deleted", "count": report.actions_deleted},
        {"what": "partitions dropped", "count": len(report.partitions_dropped)},
        {"what": "partitions created", "count": report.partitions_created},
        {"what": "views refreshed", "count": len(report.views_refreshed)},
    ]
    output.render(
        rows, columns=["what", "count"], fmt=fmt, right_aligned=["count"], title="Retention"
    )
