"""tools/mutants.py's allow-list of equivalent mutants, its CI sample and its whole-core line.

The allow-list must follow a mutant across mutmut's renumbering (an edit elsewhere in the
function) and let go of it when the mutated line itself changes; the CI sample must not move when
an unrelated function gains mutants.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))

import mutants  # noqa: E402
import mutants_allowlist  # noqa: E402

# As ``mutmut show`` prints it (after its own ``# name: status`` line).
PARSE_94 = """\
--- src/cloudsweep/notify/urls.py
+++ src/cloudsweep/notify/urls.py
@@ -30,7 +30,7 @@
     if not raw_host:
         raise WebhookError("the URL has no host")
     host = raw_host.lower().rstrip(".")
-    host = host.encode("idna").decode("ascii")
+    host = host.encode("IDNA").decode("ascii")
     return host
"""
# The same mutation after an edit earlier in ``_parse``: other line numbers, other context, and
# mutmut numbers it 97 now.
PARSE_97 = """\
--- src/cloudsweep/notify/urls.py
+++ src/cloudsweep/notify/urls.py
@@ -33,7 +33,7 @@
     if not raw_host or raw_host.isspace():
         raise WebhookError("the URL has no host name")
     host = raw_host.lower().rstrip(".")
-    host   = host.encode("idna").decode("ascii")
+    host   = host.encode("IDNA").decode("ascii")
     return host
"""
LISTED = """\
# notify/urls.py: codec names are case-insensitive.
cloudsweep.notify.urls.x__parse: host = host.encode("idna").decode("ascii") ==> host = host.encode("IDNA").decode("ascii")
"""


def test_a_listed_diff_matches_the_same_mutant_under_another_number() -> None:
    allowed = mutants_allowlist.parse(LISTED)

    assert allowed.allows("cloudsweep.notify.urls.x__parse__mutmut_94", PARSE_94)
    assert allowed.allows("cloudsweep.notify.urls.x__parse__mutmut_97", PARSE_97)


def test_a_changed_mutated_line_no_longer_matches() -> None:
    allowed = mutants_allowlist.parse(LISTED)
    # The line itself was edited (another codec): the mutant must be judged again.
    changed = PARSE_94.replace('decode("ascii")', 'decode("latin-1")')
    # Another mutation of the same line is another mutant.
    other = PARSE_94.replace(
        '+    host = host.encode("IDNA")', '+    host = host.encode("XXidnaXX")'
    )

    assert not allowed.allows("cloudsweep.notify.urls.x__parse__mutmut_94", changed)
    assert not allowed.allows("cloudsweep.notify.urls.x__parse__mutmut_94", other)


def test_the_same_line_in_another_function_does_not_match() -> None:
    allowed = mutants_allowlist.parse(LISTED)

    assert not allowed.allows("cloudsweep.notify.urls.x_resolve_webhook__mutmut_94", PARSE_94)
    assert not allowed.allows("cloudsweep.policies.x__parse__mutmut_94", PARSE_94)


def test_bare_mutant_names_are_still_read_with_their_comments() -> None:
    """The first format, which engineers are still appending in: a name a line."""
    allowed = mutants_allowlist.parse(
        "# policies: the codec name in upper case.\n"
        "cloudsweep.policies.x_load_policies__mutmut_4\n"
        "cloudsweep.policies.x_load_policies__mutmut_5   # the same, for the other codec\n"
        "\n"
        "#cloudsweep.policies.x_load_policies__mutmut_6\n"
    )

    assert allowed.names == {
        "cloudsweep.policies.x_load_policies__mutmut_4",
        "cloudsweep.policies.x_load_policies__mutmut_5",
    }
    assert allowed.allows("cloudsweep.policies.x_load_policies__mutmut_4", None)
    assert allowed.allows("cloudsweep.policies.x_load_policies__mutmut_5", PARSE_94)
    # A bare name is that number only (what it always meant), and a commented-out one is no entry.
    assert not allowed.allows("cloudsweep.policies.x_load_policies__mutmut_6", None)
    assert not allowed.allows("cloudsweep.policies.x_load_policies__mutmut_40", None)


def test_a_hash_in_the_code_of_a_diff_entry_is_not_a_comment() -> None:
    diff = "-    x = 1  # one\n+    x = 2  # one\n"
    allowed = mutants_allowlist.parse("cloudsweep.m.x_f:   x = 1  # one ==>x = 2   # one\n")

    assert allowed.allows("cloudsweep.m.x_f__mutmut_3", diff)
    assert mutants_allowlist.key("cloudsweep.m.x_f__mutmut_3", diff) == (
        "cloudsweep.m.x_f: x = 1 # one ==> x = 2 # one"
    )


def test_the_checked_in_list_is_read_and_each_entry_has_a_reason() -> None:
    text = (TOOLS / "mutants-equivalent.txt").read_text()
    allowed = mutants_allowlist.parse(text)

    assert allowed.keys, "no diff entries read"
    # Every entry sits in a block (lines without a blank one) that a comment, its reason, opens.
    reasoned = False
    for line in text.splitlines():
        if not line.strip():
            reasoned = False
        elif line.startswith("#"):
            reasoned = True
        else:
            assert reasoned, f"no reason above {line!r}"


def _diffs(function: str, count: int, start: int = 1) -> dict[str, str]:
    return {
        f"cloudsweep.m.{function}__mutmut_{start + i}": f"-    x = {i}\n+    x = {i + 1}\n"
        for i in range(count)
    }


def test_the_sample_is_the_same_each_run() -> None:
    diffs = {**_diffs("x_f", 40), **_diffs("x_g", 40)}

    first = mutants.stable_sample(diffs, 10)

    assert len(first) == 10
    assert first == mutants.stable_sample(dict(reversed(diffs.items())), 10)
    # Spread over the module, not the first function's mutants.
    assert {name.split("__mutmut_")[0] for name in first} == {
        "cloudsweep.m.x_f",
        "cloudsweep.m.x_g",
    }


def test_renumbering_a_function_keeps_its_sampled_mutants_and_the_others() -> None:
    before = {**_diffs("x_f", 40), **_diffs("x_g", 40)}
    # An edit added mutants at the top of x_g: its old mutants are renumbered (same changes).
    after = {**_diffs("x_f", 40), **_diffs("x_g", 40, start=6)}

    def changes(sample: list[str], diffs: dict[str, str]) -> set[str]:
        return {mutants_allowlist.key(name, diffs[name]) for name in sample}

    assert changes(mutants.stable_sample(before, 10), before) == changes(
        mutants.stable_sample(after, 10), after
    )


@pytest.mark.parametrize(
    ("incomplete", "expected_tail"),
    [
        ([], ")"),
        (
            ["ledger (not run)", "session (partial or sampled: 114 of 378 not checked)"],
            "; no full result, so not a score of the whole: ledger (not run), "
            "session (partial or sampled: 114 of 378 not checked)",
        ),
    ],
)
def test_the_core_line_says_which_targets_it_does_not_cover(
    incomplete: list[str], expected_tail: str
) -> None:
    line = mutants.core_line([900, 800, 720], incomplete, whole=True)

    assert line.startswith("== core: score 90.0% (720 killed of 800 checked")
    assert line.endswith(expected_tail)


def test_survivors_runs_again_what_is_unjudged_and_what_no_test_reached() -> None:
    listed = "cloudsweep.notify.urls.x__parse__mutmut_94"
    unjudged = "cloudsweep.notify.urls.x__parse__mutmut_95"
    unreached = "cloudsweep.notify.urls.x__parse__mutmut_96"
    results = {
        listed: "survived",
        unjudged: "survived",
        unreached: "no tests",
        "cloudsweep.notify.urls.x__parse__mutmut_97": "killed",
        "cloudsweep.notify.urls.x__parse__mutmut_98": "caught by type check",
    }
    diffs = {listed: PARSE_94, unjudged: PARSE_94.replace('"IDNA"', '"idnA"')}
    known = mutants_allowlist.parse(LISTED)

    assert mutants.to_run_again(results, diffs, known) == [unjudged, unreached]
    # With nothing listed, every survivor goes again.
    empty = mutants_allowlist.parse("")
    assert mutants.to_run_again(results, diffs, empty) == [listed, unjudged, unreached]


def test_entries_that_no_survivor_matches_are_reported() -> None:
    known = mutants_allowlist.parse(
        LISTED
        + "# a bare name, of a mutant killed since\ncloudsweep.notify.urls.x__parse__mutmut_3\n"
    )
    listed = "cloudsweep.notify.urls.x__parse__mutmut_94"

    assert mutants.unmatched_entries(known, {listed: PARSE_94}) == [
        "cloudsweep.notify.urls.x__parse__mutmut_3"
    ]
    assert mutants.unmatched_entries(known, {}) == sorted(known.keys | known.names)
