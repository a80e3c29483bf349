"""tests/waiting.py: a wait ends on the check, or when both clocks say its time has passed."""

from __future__ import annotations

import time

import pytest

from tests import waiting


def test_returns_the_first_truthy_value_and_tolerates_an_incomplete_object() -> None:
    answers = iter([KeyError("status"), None, {}, {"ready": True}])

    def check() -> object:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert waiting.wait_for(check, timeout=5, every=0.01) == {"ready": True}


def test_times_out_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"timed out waiting for the moon; last value: 0 "):
        waiting.wait_for(lambda: 0, timeout=0.2, what="the moon", every=0.01)


def test_a_jump_of_the_monotonic_clock_does_not_end_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seen on this machine: the monotonic clock 27 s ahead of the wall clock within 3 s."""
    real = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real() + 1000 * (calls[0] > 0))
    calls = [0]

    def check() -> bool:
        calls[0] += 1
        return calls[0] >= 20  # true after about 0.2 s of real time

    assert waiting.wait_for(check, timeout=1, every=0.01) is True
