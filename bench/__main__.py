"""``python -m bench NAME``: run one benchmark and print its figures."""

from __future__ import annotations

import typer

from bench import c7n, metrics, scan, startup, store
from bench import operator as operator_bench

app = typer.Typer(
    help="CloudSweep benchmarks: print figures for docs/benchmarks.md.", no_args_is_help=True
)
app.command("store")(store.run)
app.command("scan")(scan.run)
app.command("metrics")(metrics.run)
app.command("operator")(operator_bench.run)
app.command("c7n")(c7n.run)
app.command("startup")(startup.run)


@app.callback()
def _group() -> None:
    """Keep subcommands even while there is only one."""


if __name__ == "__main__":
    app()
