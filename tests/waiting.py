"""Waiting for what the operator does in its own threads: poll a check until it holds.

A wait ends when its time has passed on both clocks, the monotonic one and the wall clock. On
this machine (a virtual machine) a wait of 30 s once gave up after 3 s of wall-clock time, in which
the operator's 1 s timers ticked 3 times (stop 22, about 1 run in 30 of the approval handler
tests): the monotonic clock had moved 27 s further than the wall clock and every other process.
A test must fail because the operator did not act in its time, not because the clock jumped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# What a check may raise while the object it reads is not complete yet.
NOT_YET: tuple[type[Exception], ...] = (KeyError, TypeError, IndexError)


def wait_for(
    check: Callable[[], Any],
    timeout: float,
    what: str = "condition",
    every: float = 0.2,
    not_yet: tuple[type[Exception], ...] = NOT_YET,
) -> Any:
    """``check()`` until it is truthy (returned); AssertionError once ``timeout`` seconds have
    passed on both clocks, naming ``what``, the last value and how long the wait really took."""
    started, wall = time.monotonic(), time.time()
    last: Any = None
    checks = 0
    while True:
        try:
            last = check()
        except not_yet:
            last = None
        checks += 1
        if last:
            return last
        if min(time.monotonic() - started, time.time() - wall) >= timeout:
            break
        time.sleep(every)
    raise AssertionError(
        f"timed out waiting for {what}; last value: {last!r} (after {checks} checks, "
        f"{time.monotonic() - started:.1f} s, {time.time() - wall:.1f} s of wall-clock time)"
    )
