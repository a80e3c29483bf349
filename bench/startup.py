"""``python -m bench startup``: how long ``cloudsweep --help`` takes, as a user's shell runs it.

Each run is a fresh process of the console script (interpreter start, imports, help rendering);
the median is the figure (issue 16's target: under 0.5 s). ``tests/cli/test_startup.py`` checks the
cause without timing anything: no heavy package is imported to print help.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import typer

from bench.common import machine

COMMANDS = (("--help",), ("scan", "--help"), ("--version",))


def _children_cpu() -> float:
    """User and system CPU seconds of the finished child processes: less moved by the machine's
    load than wall time, on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(
    runs: int = typer.Option(11, "--runs", min=1, help="Runs of each command."),
) -> None:
    """Time ``cloudsweep --help`` (and a command's help, and --version) in fresh processes."""
    cloudsweep = str(Path(sys.executable).with_name("cloudsweep"))
    env = {**os.environ, "COLUMNS": "100"}
    print(f"machine: {machine()}")
    before = os.getloadavg()
    for args in COMMANDS:
        seconds, cpu = [], []
        for _ in range(runs):
            used = _children_cpu()
            started = time.perf_counter()
            subprocess.run(
                [cloudsweep, *args], env=env, capture_output=True, check=True, timeout=60
            )
            seconds.append(time.perf_counter() - started)
            cpu.append(_children_cpu() - used)
        print(
            f"cloudsweep {' '.join(args):14s} wall median {statistics.median(seconds):.3f} s "
            f"(min {min(seconds):.3f}, max {max(seconds):.3f}); CPU median "
            f"{statistics.median(cpu):.3f} s ({runs} runs; target: under 0.5 s)"
        )
    after = os.getloadavg()
    print(f"load average (1 min) before {before[0]:.2f}, after {after[0]:.2f}")
