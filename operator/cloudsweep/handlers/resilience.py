"""Kubernetes API failures: retries without a limit, and timers that outlive a refused patch.

Both are set up by the start-up handler (``config.configure``).

- kopf retries a failed API call (5xx, 429, 403, time-outs, connection errors) as many times as
  ``settings.networking.error_backoffs`` has delays, then raises: a watch that fails so stops the
  operator, and a timer whose status patch fails so stops for good. ``RetryBackoffs`` never runs
  out, so an API server outage of any length only delays the operator.
- kopf 1.45 applies a timer's patch after the handler returns; a 4xx it does not handle itself
  (409, 422, 400: it handles 404) ends the timer's task silently and for good, so that object's
  schedule never ticks again until the operator restarts. ``guard_timer_patches`` logs the refusal
  and drops the patch instead: the timer runs again at its next interval and writes the state it
  computes then (a status the API server keeps refusing is retried once an interval, not in a
  loop). The timers keep what a lost patch must not repeat (a run-now already started) in their
  object's ``memo`` as well as in status.
- kopf 1.45 restarts a watch (with a new list) only after a 410 Gone inside the stream. Any other
  ERROR event in the stream, and any 4xx it does not retry on the list or watch request (400, 410,
  422, ...), fail that resource's watcher, and with it the whole operator (seen in
  tests/handlers/test_api_failures.py). ``guard_watch_errors`` logs such an error and lists and
  watches again after a growing delay (``RetryBackoffs``): the same recovery as after 410, with
  nothing missed (the new list sees every object) and nothing repeated (handlers keep their
  progress in the objects).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

# kopf's delays before retrying a failed API call, then the cap forever.
_FIRST_BACKOFFS = (1.0, 2.0, 5.0, 10.0, 30.0)


class RetryBackoffs:
    """1, 2, 5, 10, 30 s, then ``cap`` seconds forever (each delay at most ``cap``).

    Re-iterable and unsized: kopf iterates it afresh for every API call and, finding no length,
    retries until the call succeeds.
    """

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def __iter__(self) -> Iterator[float]:
        for delay in _FIRST_BACKOFFS:
            yield min(delay, self.cap)
        while True:
            yield self.cap

    def __repr__(self) -> str:
        return f"RetryBackoffs(cap={self.cap})"


class _TimerApplication:
    """What kopf's daemons module sees as its ``application`` module: the same module, but
    ``patch_and_check`` logs and drops a patch the API server refuses instead of raising."""

    def __init__(self, application: Any, errors: Any) -> None:
        self._application = application
        self._errors = errors
        self.guarded = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._application, name)

    async def patch_and_check(self, **kwargs: Any) -> Any:
        try:
            return await self._application.patch_and_check(**kwargs)
        except self._errors.APIClientError as error:  # 4xx; kopf retries 403/429, handles 404
            body = kwargs.get("body") or {}
            meta = body.get("metadata") or {}
            log.error(
                "The Kubernetes API server refused a timer's patch of %s %s/%s (HTTP %s: %s); "
                "it is dropped, and the timer writes its state again at its next interval",
                body.get("kind", "object"),
                meta.get("namespace"),
                meta.get("name"),
                error.status,
                error.message or error,
            )
            return None, None


def guard_timer_patches() -> bool:
    """Install ``_TimerApplication`` into kopf's daemons module (once); False if kopf's internals
    are not what this was written for (then timers keep kopf's own behaviour)."""
    try:
        from kopf._cogs.clients import errors
        from kopf._core.engines import daemons
    except ImportError:  # pragma: no cover - another kopf
        log.warning("kopf internals changed: a refused timer patch will stop that timer")
        return False
    current = getattr(daemons, "application", None)
    if getattr(current, "guarded", False):
        return True
    if current is None or not hasattr(current, "patch_and_check"):  # pragma: no cover
        log.warning("kopf internals changed: a refused timer patch will stop that timer")
        return False
    setattr(daemons, "application", _TimerApplication(current, errors))  # noqa: B010
    return True


def guard_watch_errors(cap: float) -> bool:
    """Install ``_relisting_watch`` into kopf's watching module (once); False if kopf's internals
    are not what this was written for (then a watch error stops the operator, as in kopf)."""
    try:
        from kopf._cogs.clients import errors, watching
    except ImportError:  # pragma: no cover - another kopf
        log.warning("kopf internals changed: a watch error will stop the operator")
        return False
    current = getattr(watching, "continuous_watch", None)
    if getattr(current, "guarded", False):
        return True
    if current is None:  # pragma: no cover
        log.warning("kopf internals changed: a watch error will stop the operator")
        return False
    recoverable = (watching.WatchingError, errors.APIClientError)
    setattr(watching, "continuous_watch", _relisting_watch(current, recoverable, cap))  # noqa: B010
    return True


def _relisting_watch(
    original: Callable[..., AsyncIterator[Any]],
    recoverable: tuple[type[Exception], ...],
    cap: float,
) -> Callable[..., AsyncIterator[Any]]:
    failures: dict[str, int] = {}  # consecutive failures per resource and namespace

    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        where = f"{kwargs.get('resource')} in {kwargs.get('namespace') or 'all namespaces'}"
        try:
            async for event in original(**kwargs):
                failures.pop(where, None)
                yield event
        except recoverable as error:
            count = failures[where] = failures.get(where, 0) + 1
            delays = list(zip(range(count), RetryBackoffs(cap), strict=False))
            delay = delays[-1][1]
            log.error(
                "The watch of %s failed (%s); listing and watching again in %s s",
                where,
                error,
                delay,
            )
            await asyncio.sleep(delay)
            # Returning ends this stream: kopf's infinite watch starts a new list and watch.

    continuous_watch.guarded = True  # type: ignore[attr-defined]
    return continuous_watch
