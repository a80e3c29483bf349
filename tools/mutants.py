"""Mutation testing of the safety core: ``make mutants`` (every target) and ``make mutants-ci``.

Runs mutmut 3 on the modules where a wrong line deletes something, each with the tests that cover
it, and prints per target the score (killed / every mutant checked, those no test reaches
counted as not killed) and the survivors.

mutmut 3 derives a mutant's module name from its file path and strips only a ``src.`` prefix, so
it cannot mutate ``operator/cloudsweep`` in place (the names would read ``operator.cloudsweep...``
and match no function the tests call). Each target therefore runs in a staging directory,
``build/mutants/<target>/``, where ``src`` is a link to ``operator`` and ``tests`` to ``tests``,
with a ``pyproject.toml`` that is ours plus the target's ``[tool.mutmut]`` section. mutmut copies
both into its own ``mutants/`` tree, so the working tree is never edited. Child processes that
tests start (crash workers, the CLI) import the mutated copy too: ``PYTHONPATH`` names it and
``MUTANT_UNDER_TEST`` is inherited.

Every mutant is a new pytest session, so the session fixtures would start a PostgreSQL server and
build and migrate the test template per mutant (seconds, for tests taking a fraction of that).
One server is started per invocation instead, named to every child by
``CLOUDSWEEP_TEST_DATABASE_URL``, and ``tests/conftest.py`` reuses a template built from the same
migrations on it.

Usage::

    python tools/mutants.py                 # every target (long: see docs/benchmarks.md)
    python tools/mutants.py policies ledger # some targets; ``actions`` names every action's
    python tools/mutants.py urls --diffs    # ... and print each survivor's diff
    python tools/mutants.py --report        # the last results, without running anything
    python tools/mutants.py --ci            # the CI subset: a fixed sample per fast target,
                                            # failing on a survivor not in mutants-equivalent.txt
    python tools/mutants.py --list          # the targets, their modules and tests
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import mutants_allowlist
import mutants_record
from mutants_allowlist import Allowlist

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "mutants"
# The CI sample keeps its own staging, so it never mixes with (or wipes) a full run's results.
BUILD_CI = ROOT / "build" / "mutants-ci"
# The checked-in results (``tools/mutants_record.py``): a full run outlasts a working session and
# ``build/`` a checkout, so each run starts from them and adds its own. Not for the CI sample,
# which is always measured afresh.
RESULTS = ROOT / "docs" / "mutants" / "results"
CI_SAMPLE = 30  # mutants per fast target in ``--ci``
# Mutants known to be equivalent (``tools/mutants_allowlist.py``: by diff, or by name); a survivor
# listed here does not fail ``--ci``.
EQUIVALENTS = ROOT / "tools" / "mutants-equivalent.txt"
# mutmut's statuses that count as killed. "caught by type check": mypy (strict, as ``make test``
# runs it) refuses the mutated code, so it could never be merged; no test needs to run.
KILLED = ("killed", "timeout", "segfault", "caught by type check")


@dataclass(frozen=True)
class Target:
    name: str
    modules: tuple[str, ...]  # paths under operator/
    tests: tuple[str, ...]  # pytest arguments (files, node IDs)
    ci: bool = False  # fast enough for the CI subset
    ci_tests: tuple[str, ...] = ()  # the CI subset's tests, when fewer than ``tests``
    # Repository folders the tests read beside ``tests/`` (mutmut's ``also_copy``), e.g. ``deploy``.
    also_copy: tuple[str, ...] = ()


def _action(name: str, *modules: str, tests: tuple[str, ...] = ()) -> Target:
    """One cleanup action module (or a module and its helpers) and its own tests."""
    return Target(
        name,
        tuple(f"cloudsweep/cleanup/{m}.py" for m in (name, *modules)),
        (f"tests/cleanup/test_{name}.py", *tests),
    )


def _walks(*action_ids: str) -> tuple[str, ...]:
    """The cases of the registry-walking tests (re-check gone, the re-check contract) for these
    actions (``resource-type/action``): only they reach the action's module, and the contract's
    other cases each scan into PostgreSQL."""
    contract = "tests/cleanup/test_recheck_contract.py"
    return tuple(
        node
        for a in action_ids
        for node in (
            f"tests/cleanup/test_recheck_gone.py::test_a_missing_resource_is_reported_gone[{a}]",
            *(
                f"{contract}::test_the_recheck_applies_every_rule_that_selected_the_item[{a}-{rule}]"
                for rule in (
                    "scan-protection-tag",
                    "policy-exclude-tag",
                    "policy-include-tag",
                    "default-protection-tag",
                    "baseline",
                )
            ),
            f"{contract}::test_the_recheck_refuses_what_no_longer_meets_the_scans_criterion[{a}]",
        )
    )


def _resumed(action_id: str) -> str:
    """The storage actions' lost-answer case (``tests/cleanup/test_storage_crash_resume.py``)."""
    return (
        "tests/cleanup/test_storage_crash_resume.py::"
        f"test_a_lost_answer_is_resumed_once_without_a_second_call[{action_id}]"
    )


TARGETS = (
    Target(
        "policies",
        ("cloudsweep/policies.py",),
        ("tests/test_policies.py",),
        ci=True,
    ),
    # The ledger with every quick test that reaches it: approvals, their endings, withdrawals and
    # lapses (the approval chain, the clock), rollbacks, recovery of interrupted attempts, the
    # action history and the policies' figures. The handler tests that also reach
    # ``policy_stats`` and ``save_policy`` take minutes each; ``test_ledger_history`` checks both
    # at the store instead.
    Target(
        "ledger",
        ("cloudsweep/store/ledger.py",),
        (
            "tests/store/test_ledger.py",
            "tests/store/test_ledger_history.py",
            "tests/store/test_tenancy.py",
            "tests/test_cleaning.py",
            "tests/safety/test_approval_chain.py",
            "tests/safety/test_rollback.py",
            "tests/safety/test_clock.py",
            "tests/safety/test_recovery.py",
        ),
    ),
    # The item locks (``ItemLock``, ``Store.item_lock``) live in the store's facade, which is
    # mostly one-line delegations: mutated whole, with the tests that take and lose locks (two
    # workers, the lock's connection cut) and the store's quick tests for the delegations.
    Target(
        "locks",
        ("cloudsweep/store/api.py",),
        (
            "tests/store/test_ledger.py",
            "tests/store/test_ledger_history.py",
            "tests/store/test_tenancy.py",
            "tests/store/test_findings.py",
            "tests/store/test_retention.py",
            "tests/store/test_views.py",
            # The facade's reads that only handler tests (minutes) reached: admission records
            # and `cloudsweep db status` (the scans' reads are in test_findings, the slugs in
            # test_tenancy).
            "tests/store/test_admissions.py",
            "tests/store/test_status.py",
            "tests/test_cleaning.py",
            "tests/safety/test_approval_chain.py",
            "tests/safety/test_rollback.py",
            "tests/safety/test_two_workers.py",
            "tests/safety/test_database_failure.py"
            "::test_a_lost_lock_stops_the_run_before_the_destructive_call",
            "tests/safety/test_database_failure.py"
            "::test_lock_lost_just_before_the_delete_while_another_worker_recovers",
        ),
    ),
    # The executor and recovery: the tests that run it in this process (seconds each), plus the
    # recovery tests' SIGKILLed children; not the crash matrices (test_crash, the database
    # failure steps, test_every_action: minutes), only the lost-lock cases of the latter and one
    # action's rollback under a lost database.
    Target(
        "cleaning",
        ("cloudsweep/cleaning.py",),
        (
            "tests/test_cleaning.py",
            # What runs and rollbacks report and record, exactly (small worlds: seconds a test).
            "tests/test_cleaning_records.py",
            "tests/safety/test_recovery.py",
            "tests/safety/test_clock.py",
            "tests/safety/test_approval_chain.py",
            "tests/safety/test_recheck_rules.py",
            "tests/safety/test_database_failure.py"
            "::test_a_lost_lock_stops_the_run_before_the_destructive_call",
            "tests/safety/test_tenants.py"
            "::test_no_cleanup_runs_in_an_account_whose_role_ignores_the_external_id",
            # The hostile tenant's run and dry run of an account it does not hold.
            "tests/safety/test_tenants.py::test_a_second_organization_never_gets_anything_of_the_first",
            "tests/safety/test_aws_faults.py::test_throttled_or_5xx_delete",
            "tests/safety/test_aws_faults.py::test_terminal_errors_end_failed_with_the_message",
            "tests/safety/test_rollback.py::test_rollback_loses_the_database_at_a_step_then_rerun"
            "[ebs-volume/snapshot-and-delete-after-claim]",
            "tests/cleanup/test_recheck_contract.py"
            "::test_an_action_whose_recheck_reports_no_tags_is_refused",
        ),
    ),
    # Every cleanup action's re-check, prepare and execute: one target per action module, with
    # that module's tests (the narrowest that cover it; the executor's tests are ``cleaning``'s).
    Target(
        "action_common",
        ("cloudsweep/cleanup/common.py", "cloudsweep/cleanup/selection.py"),
        (
            "tests/cleanup/test_common.py",
            "tests/cleanup/test_recheck_gone.py",
            "tests/cleanup/test_recheck_contract.py",
            # The helpers' callers: deletes, dry runs, waiters, describe-one, tags, savings.
            "tests/cleanup/test_ebs_volume.py",
            "tests/cleanup/test_ebs_snapshot.py",
            "tests/cleanup/test_elastic_ip.py",
            "tests/cleanup/test_log_group.py",
            # The policy evaluation applies selection.py's tag rules too (fast, no servers).
            "tests/test_policies.py",
        ),
    ),
    _action(
        "ebs_volume",
        tests=(
            *_walks("ebs-volume/snapshot-and-delete"),
            "tests/safety/test_recheck_rules.py",
        ),
    ),
    _action(
        "ebs_snapshot",
        # The ami action hands its snapshots to the snapshot actions after the grace period.
        tests=(*_walks("ebs-snapshot/archive", "ebs-snapshot/delete"), "tests/cleanup/test_ami.py"),
    ),
    _action("elastic_ip", tests=_walks("elastic-ip/release")),
    _action(
        "load_balancer",
        "lb_common",
        "lb_classic",
        "lb_classic_restore",
        "lb_elbv2",
        "lb_elbv2_restore",
        tests=_walks("load-balancer/delete"),
    ),
    _action(
        "rds_instance",
        tests=_walks("rds-instance/final-snapshot-and-delete", "rds-instance/stop"),
    ),
    _action("ami", tests=(*_walks("ami/deregister"), _resumed("ami/deregister"))),
    _action(
        "ebs_gp3_candidate",
        tests=(
            *_walks("ebs-gp3-candidate/modify-to-gp3"),
            _resumed("ebs-gp3-candidate/modify-to-gp3"),
        ),
    ),
    _action("ec2_instance", tests=_walks("ec2-instance/stop")),
    _action("ec2_stopped_instance", tests=_walks("ec2-stopped-instance/snapshot-and-terminate")),
    _action(
        "log_group",
        tests=(
            *_walks("cloudwatch-log-group/set-retention"),
            _resumed("cloudwatch-log-group/set-retention"),
        ),
    ),
    _action("nat_gateway", tests=_walks("nat-gateway/delete")),
    _action(
        "s3_multipart",
        tests=(
            *_walks("s3-incomplete-multipart/add-abort-multipart-rule"),
            _resumed("s3-incomplete-multipart/add-abort-multipart-rule"),
        ),
    ),
    Target(
        "approvals",
        (
            "cloudsweep/handlers/cleanuppolicies.py",
            "cloudsweep/handlers/cleanupapprovals.py",
            "cloudsweep/handlers/webhooks.py",
        ),
        (
            "tests/handlers/test_policy_access.py",
            "tests/handlers/test_approvals.py",
            "tests/handlers/test_approval_records.py",
            "tests/handlers/test_policy_accounts.py",
            "tests/handlers/test_webhooks.py",
            # The one test whose cleanup run fails for one policy: the EvaluationFailed status.
            "tests/handlers/test_policy_isolation.py",
        ),
        # The operator under test reads the CRDs (schemas, defaults) from crds/ beside the tests;
        # test_policy_access renders deploy/base (the operator's ClusterRole) with kustomize.
        also_copy=("crds", "deploy"),
    ),
    Target(
        "session",
        ("cloudsweep/aws/session.py",),
        ("tests/aws/test_session.py",),
    ),
    Target(
        "urls",
        ("cloudsweep/notify/urls.py",),
        ("tests/notify/test_urls.py", "tests/notify/test_slack.py"),
        ci=True,
        # The Slack tests wait for slow and failing receivers: in CI only the URL checks.
        ci_tests=("tests/notify/test_urls.py",),
    ),
)
# Names that stand for several targets (``make mutants TARGETS=actions``).
GROUPS = {
    "actions": tuple(t.name for t in TARGETS if t.modules[0].startswith("cloudsweep/cleanup/")),
}


def stage(target: Target, build: Path = BUILD) -> Path:
    """Make ``build/mutants/<target>`` (kept between runs: mutmut resumes what it finished)."""
    where = build / target.name
    where.mkdir(parents=True, exist_ok=True)
    links = [("src", ROOT / "operator"), ("tests", ROOT / "tests")]
    links += [(folder, ROOT / folder) for folder in target.also_copy]
    for link, to in links:
        path = where / link
        if not path.is_symlink():
            path.symlink_to(to)
    section = "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["src/cloudsweep"]',
            "only_mutate = [" + ", ".join(f'"src/{m}"' for m in target.modules) + "]",
            "pytest_add_cli_args_test_selection = ["
            + ", ".join(f'"{t}"' for t in target.tests)
            + "]",
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]',
            # A mutant that mypy (strict, as ``make test`` runs it) refuses could never be merged:
            # mutmut counts it "caught by type check" without running a test.
            f'type_check_command = ["{sys.executable}", "-m", "mypy", "-O", "json"]',
            "also_copy = [" + ", ".join(f'"{f}"' for f in target.also_copy) + "]",
            # Slow real servers (moto, PostgreSQL, child processes): time-outs only for loops.
            "timeout_multiplier = 5.0",
            "timeout_constant = 30.0",
            "",
        ]
    )
    # mypy runs in mutmut's ``mutants/`` copy, where the package is under ``src``.
    ours = (
        (ROOT / "pyproject.toml").read_text().replace('mypy_path = "operator"', 'mypy_path = "src"')
    )
    (where / "pyproject.toml").write_text(ours + section)
    return where


def run(
    target: Target,
    *,
    sample: int | None,
    max_children: int,
    report_only: bool = False,
    verbose: bool = False,
    build: Path = BUILD,
    survivors_only: bool = False,
    save: bool = False,
    equivalent: Allowlist | None = None,
) -> dict[str, object]:
    where = stage(target, build)
    recorded = build == BUILD
    env = dict(os.environ)
    # Child processes import the mutated tree, and find the tests package beside it.
    env["PYTHONPATH"] = os.pathsep.join([str(where / "mutants" / "src"), str(where / "mutants")])
    # The mutated tree has no migrations/ beside it: the tests' databases use the repository's.
    env.setdefault("CLOUDSWEEP_MIGRATIONS_DIR", str(ROOT / "migrations"))
    # A mutant that drops a lock, or leaves a transaction open, makes a test wait on a row lock
    # nobody will release, until mutmut's wall-clock limit (five times the tests' own time plus
    # 30 s, minutes for the ledger's). libpq gives every connection of the tests (and of the
    # processes they start) a lock time-out instead: the wait fails after 30 s, a kill as the
    # time-out was. The tests' real waits last milliseconds to seconds; were one longer, mutmut's
    # clean run (every test, no mutant) would fail and stop the run before any verdict.
    env.setdefault("PGOPTIONS", "-c lock_timeout=30s")
    log = where / "mutmut.log"
    started = time.monotonic()
    names: list[str] = []
    if survivors_only and not report_only:
        _keep_results_for_added_tests(where, target)
    with log.open("a") as output:
        out = None if verbose else output
        if not report_only:
            # A first call generates the mutants and maps tests to functions, then stops on a
            # filter that matches nothing. (mutmut 3.8's very first run in a fresh tree failed its
            # stats pass here, seen twice; a second call always got through: this is that call.)
            known = _mapped_functions(where)
            first = [sys.executable, "-m", "mutmut", "run", "cloudsweep.none.x_nothing"]
            subprocess.run(
                first, cwd=where, env=env, stdout=output, stderr=subprocess.STDOUT, check=False
            )
            if known is not None and (_mapped_functions(where) or set()) - known:
                # A function new since the last run: mutmut's incremental stats map only new
                # tests, so no test would be found for it and its mutants would be recorded
                # "no tests". Map every test again (results stay: they follow function hashes).
                (where / "mutants" / "mutmut-stats.json").unlink()
                subprocess.run(
                    first, cwd=where, env=env, stdout=output, stderr=subprocess.STDOUT, check=False
                )
        # A report from a fresh tree (a new checkout) shows the record against today's mutants;
        # an existing tree is not written to here, as a run may be using it.
        fresh = report_only and recorded and not _metas(where)
        if fresh:
            _generate(where, target)
        if recorded and (fresh or not report_only):
            reused = _seed(target, where)
            if reused:
                print(f"   {target.name}: {reused} results reused from {_record_path(target)}")
        if survivors_only and not report_only:
            # Again, with the tests as they are now (mutmut copies them afresh and maps the new
            # ones): what a new test kills is counted. A mutant killed before stays killed, as
            # tests are only added. Mutants no test reached go again too: a test added to the
            # target's list may reach them now. Listed equivalents keep their verdict
            # (``to_run_again``), so the result is a full run's, or fewer kills than one's.
            listed = equivalent if equivalent is not None else equivalents()
            results = _results(where, None)
            survived = [n for n, s in results.items() if s == "survived"]
            names = to_run_again(results, _diffs(where, survived) if survived else {}, listed)
            if not names:
                names = ["cloudsweep.none.x_nothing"]
        if sample is not None and not report_only:
            names = stable_sample(_diffs(where, None), sample)
        if not report_only:
            command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
            subprocess.run(command + names, cwd=where, env=env, stdout=out, stderr=out, check=False)
    seconds = time.monotonic() - started
    if recorded and (save or not report_only):
        _save(target, where)
    results = _results(where, names if sample is not None else None)
    killed = sum(1 for s in results.values() if s in KILLED)
    by_mypy = sum(1 for s in results.values() if s == "caught by type check")
    reached = sum(
        1
        for s in results.values()
        if s not in ("no tests", "skipped", "not checked", "check was interrupted by user")
    )
    survivors = sorted(n for n, s in results.items() if s == "survived")
    untested = sorted(n for n, s in results.items() if s == "no tests")
    unchecked = sorted(n for n, s in results.items() if s == "not checked")
    # A mutant no test reaches is not killed: it counts against the score like a survivor (its
    # function runs only where mutmut's stats cannot see it, or nowhere in the tests).
    judged = reached + len(untested)
    score = 100.0 * killed / judged if judged else 0.0
    # mutmut's wall time per mutant (fork to exit): what the shared server saves, without the
    # one-off stats pass and clean run that ``seconds`` includes.
    durations = [d for d in _durations(where, names if sample is not None else None) if d > 0]
    per_mutant = sum(durations) / len(durations) if durations else 0.0
    return {
        "target": target.name,
        "mutants": len(results),
        "reached": reached,
        "judged": judged,
        "killed": killed,
        "by_mypy": by_mypy,
        "score": round(score, 1),
        "seconds": round(seconds),
        "per_mutant": round(per_mutant, 1),
        "survivors": survivors,
        "no_tests": untested,
        "not_checked": unchecked,
        "log": str(log.relative_to(ROOT)),
    }


def _record_path(target: Target) -> Path:
    return RESULTS / f"{target.name}.json"


def _mapped_functions(where: Path) -> set[str] | None:
    """The functions mutmut's stats know (by their hashes), or None before any stats pass."""
    stats = where / "mutants" / "mutmut-stats.json"
    if not stats.exists():
        return None
    return set(json.loads(stats.read_text()).get("function_hashes", {}))


def _metas(where: Path) -> list[Path]:
    return sorted((where / "mutants").rglob("*.meta"))


def _read_meta(path: Path) -> dict[str, Any]:
    """A ``.meta`` file, read while a run may be rewriting it (``--report`` during a run): a
    half-written file is read again."""
    for _ in range(19):
        with contextlib.suppress(json.JSONDecodeError):
            return cast(dict[str, Any], json.loads(path.read_text()))
        time.sleep(0.1)
    return cast(dict[str, Any], json.loads(path.read_text()))  # the last try raises


def _generate(where: Path, target: Target) -> None:
    """The mutants of ``target``, without mutmut's test passes: for ``--report`` on a fresh tree,
    which shows the recorded results against the mutants of today's code."""
    with contextlib.chdir(where):  # mutmut reads its configuration from the directory
        from mutmut.__main__ import create_mutants_for_file

        for module in target.modules:
            output = Path("mutants") / "src" / module
            output.parent.mkdir(parents=True, exist_ok=True)
            result = create_mutants_for_file(Path("src") / module, output)
            if result.error:
                raise result.error


def _seed(target: Target, where: Path) -> int:
    """Fill the tree's unchecked mutants from the record (unchanged functions only)."""
    path = _record_path(target)
    if not path.exists():
        return 0
    record = json.loads(path.read_text())
    filled = 0
    for meta in _metas(where):
        data = _read_meta(meta)
        seeded = mutants_record.seed(data, record)
        if seeded:
            meta.write_text(json.dumps(data, indent=4))
            filled += seeded
    return filled


def _save(target: Target, where: Path) -> None:
    """Add the tree's verdicts to the record (one function a line, so merges stay readable)."""
    path = _record_path(target)
    old = json.loads(path.read_text()) if path.exists() else {}
    metas = [_read_meta(meta) for meta in _metas(where)]
    if not metas:
        return
    record = mutants_record.merge(old, metas)
    if record["functions"] == old.get("functions", {}):
        return  # nothing new: the file (and its date) stay as they are
    record["target"] = target.name
    record["saved"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    functions = record.pop("functions")
    head = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items())
    body = ",\n".join(
        f"    {json.dumps(name)}: {json.dumps(entry, separators=(',', ':'))}"
        for name, entry in functions.items()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{\n" + head + ',\n  "functions": {\n' + body + "\n  }\n}\n")


def _keep_results_for_added_tests(where: Path, target: Target) -> None:
    """Let ``--survivors`` keep the earlier results when the target's test list grew.

    mutmut resets every result (and re-runs the whole target) when its test selection changes,
    as a changed list could also have lost tests. ``--survivors`` re-runs every survivor with
    today's tests, and a test list only grows (tests are added, never removed, to kill
    survivors), so a kill stays a kill: the stored fingerprint is set to today's list, and
    mutmut maps the new tests incrementally ("Found N new tests").
    """
    stats = where / "mutants" / "mutmut-stats.json"
    if not stats.exists():
        return
    data = json.loads(stats.read_text())
    # mutmut's own fingerprint of ``pytest_add_cli_args_test_selection`` (Config.config_fingerprint).
    selection = hashlib.sha256(repr(tuple(target.tests)).encode()).hexdigest()[:12]
    data.setdefault("config_fingerprint", {})["test_selection"] = selection
    stats.write_text(json.dumps(data, indent=4))


def to_run_again(results: dict[str, str], diffs: dict[str, str], known: Allowlist) -> list[str]:
    """What ``--survivors`` runs: unlisted survivors, and the mutants no test reached.

    A listed equivalent keeps its verdict: it changes no behaviour, so it survives every test of
    its function, and running them all again costs minutes a mutant (the listed ``ledger`` ones,
    five each). Counting it survived is the conservative side. ``--clean``, or any edit of its
    function, runs it again.
    """
    again = sorted(n for n, s in results.items() if s in ("survived", "no tests"))
    return [n for n in again if results[n] == "no tests" or not known.allows(n, diffs.get(n))]


def unmatched_entries(known: Allowlist, survivor_diffs: dict[str, str]) -> list[str]:
    """The allow-list's entries that match none of the survivors (``survivor_diffs``: each one's
    diff): a test or mypy kills their mutant now, or its line changed. They are judgments about
    nothing, and would quietly excuse a new mutant that happened to share the line: remove them."""
    used = {mutants_allowlist.key(name, diff) for name, diff in survivor_diffs.items()}
    return sorted((known.keys - used) | (known.names - set(survivor_diffs)))


def equivalents() -> Allowlist:
    """The checked-in list of mutants known to be equivalent (``docs/testing.md`` says why)."""
    return mutants_allowlist.parse(EQUIVALENTS.read_text() if EQUIVALENTS.exists() else "")


def stable_sample(diffs: dict[str, str], size: int) -> list[str]:
    """``size`` mutants chosen by a hash of what they change, not by mutmut's numbers.

    The same mutants every run of the same code, so a change in the result means a change in
    code or tests. A mutant's rank depends only on its function and mutated lines, not on its
    number, so renumbering (an edit elsewhere in a function) changes nothing, and an edit that
    adds or removes mutants moves the sample only at its edge: a new mutant enters if it ranks
    among the first ``size`` (pushing out the last one), a removed one lets the next one in.
    The hash spreads the sample over the module's functions.
    """

    def rank(name: str) -> tuple[str, str]:
        entry = mutants_allowlist.key(name, diffs[name])
        return hashlib.sha256(f"12:{entry}".encode()).hexdigest(), name

    return sorted(sorted(diffs, key=rank)[:size])


def _diffs(where: Path, only: list[str] | None) -> dict[str, str]:
    """Each mutant's diff (as ``mutmut show`` prints it), read in-process from the staged tree."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diffs: dict[str, str] = {}
    with contextlib.chdir(where):  # mutmut reads ``mutants/<path>`` relative to the directory
        for meta in Path("mutants").rglob("*.meta"):
            path = meta.relative_to("mutants").with_suffix("")
            for name in _read_meta(meta).get("exit_code_by_key", {}):
                if only is None or name in only:
                    diffs[name] = get_diff_for_mutant(name, path=path)
    return diffs


def show(target: Target, name: str, build: Path = BUILD) -> str:
    """The mutant's diff, as ``mutmut show`` prints it."""
    where = build / target.name
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
    )
    return "\n".join(
        line
        for line in shown.stdout.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    )


def _durations(where: Path, only: list[str] | None) -> list[float]:
    durations: list[float] = []
    for meta in (where / "mutants").rglob("*.meta"):
        data = _read_meta(meta)
        for name, seconds in data.get("durations_by_key", {}).items():
            if (only is None or name in only) and seconds is not None:
                durations.append(float(seconds))
    return durations


def _results(where: Path, only: list[str] | None) -> dict[str, str]:
    """Each mutant's status, from mutmut's ``.meta`` files (exit codes of the test runs)."""
    from mutmut.stats import status_by_exit_code

    results: dict[str, str] = {}
    for meta in (where / "mutants").rglob("*.meta"):
        data = _read_meta(meta)
        for name, code in data.get("exit_code_by_key", {}).items():
            if only is not None and name not in only:
                continue
            results[name] = status_by_exit_code[code]
    return results


@contextlib.contextmanager
def shared_database() -> Iterator[None]:
    """One PostgreSQL server for every mutant of this invocation, stopped however it ends.

    ``CLOUDSWEEP_TEST_DATABASE_URL`` (which the ``pg_server_url`` fixture honours) reaches mutmut,
    its forked children and the processes their tests start. A URL already set is used as is.
    """
    if os.environ.get("CLOUDSWEEP_TEST_DATABASE_URL"):
        yield
        return
    sys.path.insert(0, str(ROOT / "operator"))
    from cloudsweep.store import embedded

    # A kill (CI time-out) stops the server like Ctrl-C does, through the ``finally`` below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="cloudsweep-pg-") as data_dir:
        server = embedded.start(Path(data_dir))
        os.environ["CLOUDSWEEP_TEST_DATABASE_URL"] = server.url
        try:
            yield
        finally:
            del os.environ["CLOUDSWEEP_TEST_DATABASE_URL"]
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="target or group names (default: all)")
    parser.add_argument("--ci", action="store_true", help="a fixed sample of the fast targets")
    parser.add_argument("--sample", type=int, help="run only this many mutants per target")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--report", action="store_true", help="print the last results, run none")
    parser.add_argument("--clean", action="store_true", help="forget earlier results first")
    parser.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="run again, with today's tests, the last survivors not listed as equivalent "
        "and the mutants no test reached",
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="with --report: add build/'s results to docs/mutants/results/ (each run does)",
    )
    parser.add_argument("--verbose", action="store_true", help="show mutmut's own output")
    parser.add_argument("--min-score", type=float, default=0.0, help="fail below this score")
    args = parser.parse_args()
    if args.list:
        for t in TARGETS:
            ci = " (CI sample)" if t.ci else ""
            print(f"{t.name}{ci}: {' '.join(t.modules)}\n    tests: {' '.join(t.tests)}")
        for group, members in GROUPS.items():
            print(f"group {group}: {' '.join(members)}")
        return 0
    wanted = {n for name in args.targets for n in GROUPS.get(name, (name,))}
    unknown = wanted - {t.name for t in TARGETS}
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; see --list")
    chosen = [t for t in TARGETS if not wanted or t.name in wanted]
    sample = args.sample
    if args.ci:
        chosen = [dataclasses.replace(t, tests=t.ci_tests or t.tests) for t in chosen if t.ci]
        sample = sample or CI_SAMPLE
    known = equivalents()
    build = BUILD_CI if args.ci else BUILD
    # The CI subset's targets use no database (policies, the URL checks): no server to start,
    # which costs CPU and, on a loaded machine, could time out and fail the step for nothing.
    # (A CI target whose tests need one would still work: each session starts its own.)
    with contextlib.nullcontext() if args.report or args.ci else shared_database():
        return _run_targets(args, chosen, sample, known, build)


def _run_targets(
    args: argparse.Namespace,
    chosen: list[Target],
    sample: int | None,
    known: Allowlist,
    build: Path,
) -> int:
    failed = False
    totals = [0, 0, 0]
    incomplete: list[str] = []  # targets whose figures are not a full run's
    survivor_diffs: dict[str, str] = {}  # every target's survivors, for the allow-list's check
    for target in chosen:
        if args.clean or (args.ci and not args.report):
            # The sample is small: always measured afresh, never resumed from older code.
            shutil.rmtree(build / target.name, ignore_errors=True)
        report = run(
            target,
            sample=sample,
            max_children=args.max_children,
            report_only=args.report,
            verbose=args.verbose,
            build=build,
            survivors_only=args.survivors,
            save=args.save,
            equivalent=known,
        )
        survivors: list[str] = report["survivors"]  # type: ignore[assignment]
        print(
            f"\n== {report['target']}: score {report['score']}% "
            f"({report['killed']} killed of {report['judged']} checked, "
            f"{report['by_mypy']} of them by mypy; "
            f"{report['mutants']} mutants; {report['seconds']} s, "
            f"{report['per_mutant']} s per mutant)",
            flush=True,
        )
        diffs = _diffs(build / target.name, survivors) if survivors else {}
        survivor_diffs.update(diffs)
        unjudged = [n for n in survivors if not known.allows(n, diffs.get(n))]
        for name in survivors:
            mark = "" if name in unjudged else "  (equivalent: docs/testing.md)"
            print(f"   survived: {name}{mark}")
            if args.diffs or (args.ci and name in unjudged):
                print("      " + _changed_lines(diffs[name]).replace("\n", "\n      "))
            if args.diffs:
                print(f"      allow-list entry: {mutants_allowlist.key(name, diffs[name])}")
        no_tests: list[str] = report["no_tests"]  # type: ignore[assignment]
        not_checked: list[str] = report["not_checked"]  # type: ignore[assignment]
        if no_tests:
            print(f"   no test reaches {len(no_tests)} mutants (counted as not killed)")
        if not_checked:
            print(f"   not checked: {len(not_checked)} mutants")
        if not report["mutants"]:
            incomplete.append(f"{target.name} (not run)")
        elif not_checked:
            incomplete.append(
                f"{target.name} (partial or sampled: {len(not_checked)} of "
                f"{report['mutants']} not checked)"
            )
        if not args.report and report["mutants"] and not report["reached"]:
            print(f"   the tests did not run: see {report['log']}")
            failed = True
        totals[0] += int(report["mutants"])  # type: ignore[call-overload]
        totals[1] += int(report["judged"])  # type: ignore[call-overload]
        totals[2] += int(report["killed"])  # type: ignore[call-overload]
        failed = failed or float(report["score"]) < args.min_score  # type: ignore[arg-type]
        if args.ci and unjudged:
            _explain_survivors(target, unjudged, diffs)
            failed = True
    if len(chosen) > 1 and not args.ci:
        print("\n" + core_line(totals, incomplete, whole=len(chosen) == len(TARGETS)))
    if len(chosen) == len(TARGETS) and not args.ci and not incomplete:
        # Only over a whole result: an entry of a target not run would look unused.
        for entry in unmatched_entries(known, survivor_diffs):
            print(
                f"   listed, but no survivor matches it (killed now, or its line changed): {entry}"
            )
    return 1 if failed else 0


def core_line(totals: list[int], incomplete: list[str], *, whole: bool) -> str:
    """One line for the whole core (or the targets chosen), which says what it does not count."""
    mutants, judged, killed = totals
    score = f"{100.0 * killed / judged:.1f}%" if judged else "none"
    line = (
        f"== {'core' if whole else 'these targets'}: score {score} "
        f"({killed} killed of {judged} checked, over every target with results; "
        f"{mutants} mutants)"
    )
    if incomplete:
        line += "; no full result, so not a score of the whole: " + ", ".join(incomplete)
    return line


def _changed_lines(diff: str) -> str:
    return "\n".join(
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    )


def _explain_survivors(target: Target, unjudged: list[str], diffs: dict[str, str]) -> None:
    """What a failing CI step says: which mutant, what it changes, and how to judge it."""
    tests = " ".join(target.ci_tests or target.tests)
    print(
        f"\n   FAILED: {len(unjudged)} sampled mutant(s) of {target.name} survived the tests and "
        "are not listed as equivalent: the tests do not notice the change shown above."
    )
    for name in unjudged:
        print(
            f"   - {name}\n"
            f"     reproduce: cd {BUILD_CI.relative_to(ROOT)}/{target.name}/mutants && "
            f"MUTANT_UNDER_TEST={name} python -m pytest {tests}\n"
            "     if the change alters behaviour: write a test that fails on it "
            "(a behavioural one, docs/testing.md);\n"
            "     if it cannot (an equivalent mutant): append to tools/mutants-equivalent.txt a "
            "'# <reason>' line and\n"
            f"       {mutants_allowlist.key(name, diffs[name])}\n"
            '     and say why in docs/testing.md ("Equivalent mutants").'
        )


if __name__ == "__main__":
    sys.exit(main())
