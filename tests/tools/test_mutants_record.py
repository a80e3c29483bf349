"""tools/mutants_record.py: the checked-in results that carry a mutation run across checkouts.

A recorded verdict may be reused only for a function whose source is unchanged (mutmut's hash),
never overrides a newer result in the tree, and only final verdicts are kept.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))

import mutants_record  # noqa: E402

EVALUATE = "cloudsweep.policies.x_evaluate"
WHOLE = "cloudsweep.policies.x__whole"


def _meta(codes: dict[str, int | None], hashes: dict[str, str]) -> dict[str, Any]:
    return {"exit_code_by_key": dict(codes), "hash_by_function_name": dict(hashes)}


def test_a_recorded_verdict_fills_an_unchecked_mutant_of_an_unchanged_function() -> None:
    record = mutants_record.merge(
        {},
        [
            _meta(
                {f"{EVALUATE}__mutmut_1": 1, f"{EVALUATE}__mutmut_2": 0, f"{WHOLE}__mutmut_1": 37},
                {"x_evaluate": "aaa", "x__whole": "bbb"},
            )
        ],
    )
    fresh = _meta(
        {f"{EVALUATE}__mutmut_1": None, f"{EVALUATE}__mutmut_2": None, f"{WHOLE}__mutmut_1": None},
        {"x_evaluate": "aaa", "x__whole": "bbb"},
    )

    assert mutants_record.seed(fresh, record) == 3
    assert fresh["exit_code_by_key"] == {
        f"{EVALUATE}__mutmut_1": 1,
        f"{EVALUATE}__mutmut_2": 0,
        f"{WHOLE}__mutmut_1": 37,
    }


def test_an_edited_function_is_tested_again_whole() -> None:
    record = mutants_record.merge(
        {},
        [
            _meta(
                {f"{EVALUATE}__mutmut_1": 1, f"{WHOLE}__mutmut_1": 1},
                {"x_evaluate": "aaa", "x__whole": "bbb"},
            )
        ],
    )
    edited = _meta(
        {f"{EVALUATE}__mutmut_1": None, f"{WHOLE}__mutmut_1": None},
        {"x_evaluate": "changed", "x__whole": "bbb"},
    )

    assert mutants_record.seed(edited, record) == 1
    assert edited["exit_code_by_key"][f"{EVALUATE}__mutmut_1"] is None
    assert edited["exit_code_by_key"][f"{WHOLE}__mutmut_1"] == 1


def test_the_trees_own_result_is_newer_than_the_record() -> None:
    record = mutants_record.merge({}, [_meta({f"{EVALUATE}__mutmut_1": 0}, {"x_evaluate": "aaa"})])
    # ``--survivors`` killed it since, in this tree.
    tree = _meta({f"{EVALUATE}__mutmut_1": 1}, {"x_evaluate": "aaa"})

    assert mutants_record.seed(tree, record) == 0
    assert tree["exit_code_by_key"][f"{EVALUATE}__mutmut_1"] == 1
    merged = mutants_record.merge(record, [tree])
    assert merged["functions"][EVALUATE]["exit_codes"] == {"1": 1}


def test_only_verdicts_are_recorded() -> None:
    # Not checked (None), no tests (33), interrupted (2): decided again by the next run.
    record = mutants_record.merge(
        {},
        [
            _meta(
                {
                    f"{EVALUATE}__mutmut_1": None,
                    f"{EVALUATE}__mutmut_2": 33,
                    f"{EVALUATE}__mutmut_3": 2,
                    f"{EVALUATE}__mutmut_4": 36,
                },
                {"x_evaluate": "aaa"},
            )
        ],
    )

    assert record["functions"][EVALUATE]["exit_codes"] == {"4": 36}


def test_a_run_adds_to_the_record_and_drops_what_the_code_no_longer_has() -> None:
    other = "cloudsweep.notify.urls.x__parse"
    record = mutants_record.merge(
        {},
        [
            _meta(
                {f"{EVALUATE}__mutmut_1": 1, f"{WHOLE}__mutmut_1": 1},
                {"x_evaluate": "aaa", "x__whole": "bbb"},
            ),
            _meta({f"{other}__mutmut_1": 1}, {"x__parse": "ccc"}),
        ],
    )
    # A later tree of the policies module only: ``_whole`` was deleted, ``evaluate`` is partly
    # checked (its first mutant is not checked again, the second is new).
    later = _meta(
        {f"{EVALUATE}__mutmut_1": None, f"{EVALUATE}__mutmut_2": 0},
        {"x_evaluate": "aaa"},
    )

    merged = mutants_record.merge(record, [later])

    assert merged["functions"] == {
        EVALUATE: {"hash": "aaa", "exit_codes": {"1": 1, "2": 0}},
        # Another module, which this tree does not hold: kept as it was.
        other: {"hash": "ccc", "exit_codes": {"1": 1}},
    }
    assert mutants_record.count(merged) == 3
