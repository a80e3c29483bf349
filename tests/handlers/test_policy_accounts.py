"""Which accounts a CleanupPolicy covers: the ones it names or selects in its own namespace, never
every account there (``cleanuppolicies._policy``, checked without an operator).

The resolved ``accounts`` is what the executor asks the ledger for (``cleaning.run_cleanup``
passes ``policy.accounts`` as the candidates' account filter), so an account left out here is
never planned, approved or cleaned by this policy.
"""

from __future__ import annotations

from typing import Any

import pytest

from cloudsweep.handlers import cleanuppolicies

NS = "team-a"
# A kopf index as the operator holds it: (namespace, name) -> the AwsAccount's selection facts.
ACCOUNTS: dict[tuple[str, str], list[dict[str, Any]]] = {
    (NS, "prod"): [{"accountId": "111111111111", "labels": {"env": "prod"}}],
    (NS, "sandbox"): [{"accountId": "222222222222", "labels": {"env": "dev"}}],
    ("team-b", "theirs"): [{"accountId": "333333333333", "labels": {"env": "prod"}}],
}


def policy_object(**selection: Any) -> dict[str, Any]:
    return {"spec": {"resourceType": "elastic-ip", "action": "release", **selection}}


@pytest.mark.parametrize(
    "selection",
    [
        {"accounts": ["prod"]},
        {"accountSelector": {"matchLabels": {"env": "prod"}}},
        {"accounts": ["prod"], "accountSelector": {}},  # names win over a selector of all
    ],
    ids=["by-name", "by-label", "names-and-selector"],
)
def test_a_policy_covers_only_the_accounts_it_selects(selection: dict[str, Any]) -> None:
    policy, selected = cleanuppolicies._policy(policy_object(**selection), "p", NS, ACCOUNTS)
    assert selected
    assert policy.accounts == ("111111111111",)  # not the sandbox, not team-b's prod


def test_a_selector_of_all_covers_the_namespaces_accounts_only() -> None:
    policy, selected = cleanuppolicies._policy(policy_object(accountSelector={}), "p", NS, ACCOUNTS)
    assert selected
    assert sorted(policy.accounts) == ["111111111111", "222222222222"]


def test_a_selection_that_matches_nothing_selects_nothing() -> None:
    policy, selected = cleanuppolicies._policy(
        policy_object(accounts=["theirs"]), "p", NS, ACCOUNTS
    )
    assert not selected  # another namespace's account is not found by name
    assert policy.accounts == ()
