"""A contract test over the whole cleanup registry: every action declares what it needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cloudsweep import cleanup, detectors

ACTIONS = cleanup.all_actions()


def test_every_resource_type_can_be_cleaned_and_only_known_ones() -> None:
    assert {a.resource_type for a in ACTIONS} == set(detectors.names())


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: f"{a.resource_type}/{a.action}")
def test_each_action_declares_its_contract(action: type[cleanup.CleanupAction]) -> None:
    assert action.permissions and all(":" in p for p in action.permissions)
    assert action.rollback_note
    assert action.__doc__ and action.__module__.startswith("cloudsweep.cleanup.")
    module_doc = __import__(action.__module__, fromlist=["_"]).__doc__ or ""
    assert "resourceType" in (action.__doc__ or "") + module_doc, "a policy example is missing"
    with pytest.raises(ValidationError):
        action().parameters({"no_such_parameter": 1})
    module = action.__module__.rsplit(".", 1)[1]
    assert (Path(__file__).parent / f"test_{module}.py").is_file()


def test_a_second_registration_under_the_same_key_is_refused() -> None:
    first = ACTIONS[0]

    class Impostor(first):  # type: ignore[valid-type, misc]
        pass

    with pytest.raises(ValueError, match="already registered"):
        cleanup.register(Impostor)
