"""The helpers every cleanup action shares; above all, re-checks are never laxer than the scan."""

from __future__ import annotations

import pytest

from cloudsweep.cleanup import common

KEYS = ("cloudsweep.io/protect", "do-not-delete")


@pytest.mark.parametrize(
    ("tags", "protected"),
    [
        ({"do-not-delete": "true"}, True),
        ({"Do-Not-Delete": "yes"}, True),  # keys match whatever their case
        ({"CLOUDSWEEP.IO/PROTECT": ""}, True),  # present with no value protects
        ({"do-not-delete": "false"}, False),
        ({"do-not-delete": " Off "}, False),
        ({"team": "web"}, False),
    ],
)
def test_protection_tags_are_judged_as_the_detectors_judge_them(
    tags: dict[str, str], protected: bool
) -> None:
    assert (common.protected_by(tags, KEYS) is not None) is protected
