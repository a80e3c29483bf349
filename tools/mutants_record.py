"""The checked-in record of mutation results (``docs/mutants/results/<target>.json``).

A full run of the core takes many hours of a small machine, more than one working session, and
mutmut keeps its results only in ``build/`` (gitignored, so a fresh checkout starts from none).
The record carries them over: each function's result codes, under the hash mutmut gives the
function's source. A result is reused only while that hash is the same, so a function edited
since is tested again, whole, exactly as mutmut itself decides between two runs of one tree.
Mutant numbers are stable under an unchanged hash (mutmut numbers the mutants of one function in
the order it finds them in that function's source), so a function's codes are kept by number.

What a reused result assumes is what mutmut's own resume assumes: tests are added, not removed,
so a kill stays a kill; a survivor stays one until ``--survivors`` runs it with today's tests.
Only final verdicts are recorded: a mutant no test reached ("no tests"), one not checked or one
interrupted is decided afresh by the next run, which costs nothing for the first and is needed
for the others.

The functions here work on mutmut's ``.meta`` data (dicts read from the JSON files) so that they
can be tested without mutmut.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SEP = "__mutmut_"
# Exit codes that are a verdict (``mutmut.stats.status_by_exit_code``): killed (1, 3), survived
# (0), time-outs (36, 24, -24, 152, 255), crashes (-11, -9) and caught by the type check (37).
FINAL = frozenset({0, 1, 3, 36, 24, -24, 152, 255, -11, -9, 37})

Meta = dict[str, Any]  # one ``.meta`` file: exit_code_by_key, hash_by_function_name, ...
Record = dict[str, Any]  # one target's record: {"functions": {function: {hash, exit_codes}}}


def split(mutant: str) -> tuple[str, str, str]:
    """``cloudsweep.policies.x_evaluate__mutmut_3`` as (the function's full name, the function's
    name in its file as mutmut's ``hash_by_function_name`` has it, the number)."""
    function, _, number = mutant.rpartition(SEP)
    return function, function.rpartition(".")[2], number


def seed(meta: Meta, record: Record) -> int:
    """Fill ``meta``'s unchecked mutants from ``record`` where their function is unchanged.

    Returns how many were filled. A mutant with a result in ``meta`` keeps it: the tree's own
    results are newer than the record's.
    """
    functions: Mapping[str, Any] = record.get("functions", {})
    hashes: Mapping[str, str] = meta.get("hash_by_function_name", {})
    codes: dict[str, int | None] = meta["exit_code_by_key"]
    filled = 0
    for mutant, code in codes.items():
        if code is not None:
            continue
        function, local, number = split(mutant)
        entry = functions.get(function)
        if entry is None or hashes.get(local) is None or entry["hash"] != hashes[local]:
            continue
        recorded = entry["exit_codes"].get(number)
        if recorded in FINAL:
            codes[mutant] = recorded
            filled += 1
    return filled


def merge(record: Record, metas: list[Meta]) -> Record:
    """The record updated with the verdicts in ``metas`` (every ``.meta`` of the target).

    A function present in ``metas`` takes its codes from there, plus the record's codes for the
    mutants ``metas`` has not decided, if its hash is the same; one whose hash changed starts
    afresh. A function the current code no longer has (its file's meta lacks it) is dropped.
    """
    old: Mapping[str, Any] = record.get("functions", {})
    functions: dict[str, Any] = {}
    present: set[str] = set()
    for meta in metas:
        hashes: Mapping[str, str] = meta.get("hash_by_function_name", {})
        by_function: dict[str, dict[str, int]] = {}
        for mutant, code in meta["exit_code_by_key"].items():
            function, local, number = split(mutant)
            present.add(function)
            if hashes.get(local) is None:
                continue
            codes = by_function.setdefault(function, {})
            if code in FINAL:
                codes[number] = code
        for function, codes in by_function.items():
            digest = hashes[function.rpartition(".")[2]]
            earlier = old.get(function)
            if earlier is not None and earlier["hash"] == digest:
                codes = {**earlier["exit_codes"], **codes}
            if codes:
                functions[function] = {"hash": digest, "exit_codes": _by_number(codes)}
    # Functions of modules this run has no meta for are kept as they were.
    modules = {f.rpartition(".")[0] for f in present}
    for function, entry in old.items():
        if function not in functions and function.rpartition(".")[0] not in modules:
            functions[function] = entry
    return {**record, "functions": dict(sorted(functions.items()))}


def _by_number(codes: Mapping[str, int]) -> dict[str, int]:
    return {n: codes[n] for n in sorted(codes, key=int)}


def count(record: Record) -> int:
    return sum(len(entry["exit_codes"]) for entry in record.get("functions", {}).values())
