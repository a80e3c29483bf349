"""The CRDs on a real API server: installed as ``kubectl apply -k crds/`` installs them, and the
CRD test corpus (``tests/crds``) judged by the server itself, next to the in-process validators
(``cloudsweep.crds``: jsonschema + cel-python). Where they disagree, one of them is wrong.

Objects are sent as kubectl 1.27+ sends them to a current server: server-side strict field
validation (``fieldValidation=Strict``), here with ``dryRun=All`` so nothing is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from cloudsweep import crds
from tests.crds.test_validate import BAD_INPUTS, minimal_policy, sample, with_spec
from tests.kube_real import server
from tests.kube_real.server import KubeReal, Response

# Checks a CRD schema cannot express, made by the operator (a permanent Ready=False condition,
# tests/handlers): the server accepts these objects. Cron field ranges need a cron parser and
# time zones the tz database; neither exists in the API server's CEL environment. A lone UTF-16
# surrogate never reaches a real server's validation: its JSON decoder stores U+FFFD instead, which
# PostgreSQL can store; KMock and Python clients pass the surrogate on, so the operator refuses it.
OPERATOR_ONLY = {
    "bad-cron-out-of-range",
    "unknown-time-zone",
    "display-name-with-lone-surrogate",
    "tag-key-with-lone-surrogate",
}


def _rule_messages(node: Any) -> Iterator[str]:
    if not isinstance(node, dict):
        return
    for rule in node.get("x-kubernetes-validations", []):
        if rule.get("message"):
            yield rule["message"]
    children = [
        *node.get("properties", {}).values(),
        node.get("items"),
        node.get("additionalProperties"),
    ]
    for child in children:
        yield from _rule_messages(child)


# Every message of every x-kubernetes-validations rule: the text users see in both places.
RULE_MESSAGES = sorted({m for r in crds.RESOURCES for m in _rule_messages(crds.schema(r.kind))})


@pytest.fixture(scope="module")
def corpus_namespace(kube_real: KubeReal) -> Iterator[str]:
    name = "crd-corpus"
    kube_real.kubectl("create", "namespace", name, check=False)
    yield name


def dry_run(kube_real: KubeReal, namespace: str, obj: dict[str, Any]) -> Response:
    """The server's answer to creating ``obj`` (nothing is stored)."""
    res = crds.resource(obj["kind"])
    body = {**obj, "metadata": {**obj.get("metadata", {}), "namespace": namespace}}
    return kube_real.request(
        "POST",
        f"/apis/{res.api_version}/namespaces/{namespace}/{res.plural}",
        body,
        params={"dryRun": "All", "fieldValidation": "Strict"},
    )


def refused_fields(answer: Response) -> set[str]:
    """The fields a refusal names: its causes, or the unknown field of a strict decoding error."""
    named = {f for f, _ in answer.causes()}
    named |= set(re.findall(r'unknown field "([^"]+)"', answer.message))
    return named


def local_fields(errors: list[str]) -> set[str]:
    return {e.split(": ", 1)[0] for e in errors}


# --- installation -----------------------------------------------------------------------------


def test_the_crds_install_as_kubectl_apply_k_installs_them(kube_real: KubeReal) -> None:
    # As a user would, with kubectl's default client-side checks: a 1.20 API server publishes
    # the 1.20 OpenAPI, which has no x-kubernetes-validations, so kubectl refuses the CRDs
    # before sending them (docs/install.md: --validate=false on servers older than 1.25).
    strict = kube_real.kubectl("apply", "-k", str(server.REPO / "crds"), check=False)
    assert strict.returncode != 0
    assert "x-kubernetes-validations" in strict.stderr, strict.stderr

    again = kube_real.kubectl("apply", "--validate=false", "-k", str(server.REPO / "crds"))
    # "unchanged", or "configured" where kubectl's patch only restates what the server has.
    assert sorted(line.split()[0] for line in again.stdout.splitlines()) == sorted(
        f"customresourcedefinition.apiextensions.k8s.io/{r.crd_name}" for r in crds.RESOURCES
    ), again.stdout
    for res in crds.RESOURCES:
        stored = kube_real.get(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{res.crd_name}"
        )
        states = {c["type"]: c["status"] for c in stored["status"]["conditions"]}
        assert states["Established"] == "True" and states["NamesAccepted"] == "True", states
        # The server kept every CEL rule and the whole schema as written (nothing pruned).
        [version] = stored["spec"]["versions"]
        assert version["schema"]["openAPIV3Schema"] == crds.schema(res.kind)
        assert version["subresources"] == {"status": {}}
        assert stored["status"]["acceptedNames"]["shortNames"] == list(res.short_names)
    # The category and short names as users type them.
    listed = kube_real.kubectl("get", "cloudsweep", "-A", check=False)
    assert listed.returncode == 0, listed.stderr
    assert kube_real.kubectl("get", "awsacct", "-A").returncode == 0


@pytest.mark.parametrize("kind", ["AwsAccount", "ScanSchedule", "CleanupPolicy"])
def test_the_samples_are_accepted_and_defaulted_as_the_operator_defaults_them(
    kube_real: KubeReal, corpus_namespace: str, kind: str
) -> None:
    obj = sample(kind)
    spec_schema = crds.schema(kind)["properties"]["spec"]["properties"]
    # Left out: every field with a default, to see the server fill them in.
    obj["spec"] = {k: v for k, v in obj["spec"].items() if "default" not in spec_schema.get(k, {})}
    answer = dry_run(kube_real, corpus_namespace, obj)

    assert answer.status == 201, answer.body
    assert crds.validate(kind, obj) == []
    assert answer.body["spec"] == crds.apply_defaults(kind, obj)["spec"]


# --- the bad-input corpus -----------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c["id"] for c in BAD_INPUTS])
def test_bad_input_is_refused_by_the_server_as_by_the_in_process_validators(
    kube_real: KubeReal, corpus_namespace: str, case: dict[str, Any]
) -> None:
    obj = with_spec(case["kind"], **case["set"])
    local = crds.validate(case["kind"], obj)
    answer = dry_run(kube_real, corpus_namespace, obj)

    assert case["field"] in local_fields(local), local
    if case["id"] in OPERATOR_ONLY:
        assert answer.status == 201, (answer.status, answer.body)
        return
    assert answer.status in (400, 422), (answer.status, answer.body)
    # The server names the field the corpus says, as users see it (kubectl prints the message).
    assert case["field"] in refused_fields(answer), answer.message
    assert case["field"] in answer.message
    # A rule's message is the CRD's own text: the same words, on the same fields, in both.
    server_rules = {(f, m) for f, text in answer.causes() for m in RULE_MESSAGES if m in text}
    local_rules = {
        (f, m) for e in local for f in [e.split(": ", 1)[0]] for m in RULE_MESSAGES if m in e
    }
    assert server_rules == local_rules, (answer.causes(), local)
    # Every field the server refuses, the in-process validators refuse too (and vice versa,
    # but for unknown fields: the server stops decoding at the first one).
    if answer.status == 422:
        assert refused_fields(answer) == local_fields(local), (answer.causes(), local)


def test_every_bad_input_case_is_judged_here(kube_real: KubeReal) -> None:
    assert {c["id"] for c in BAD_INPUTS} >= OPERATOR_ONLY


# --- the rest of the CRD tests' corpus ------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    ["0 3 * * *", "*/15 * * * *", "0 8-18 * * MON-FRI", "30 2 1,15 * *", "@hourly", "@weekly"],
)
def test_cron_schedules_the_validators_accept_the_server_accepts(
    kube_real: KubeReal, corpus_namespace: str, schedule: str
) -> None:
    obj = with_spec("ScanSchedule", schedule=schedule)
    assert crds.validate("ScanSchedule", obj) == []
    assert dry_run(kube_real, corpus_namespace, obj).status == 201


@pytest.mark.parametrize("schedule", ["@every 5m", "@reboot", "* * * * * *", "", "0 3 * * * "])
def test_schedules_the_validators_refuse_the_server_refuses(
    kube_real: KubeReal, corpus_namespace: str, schedule: str
) -> None:
    obj = with_spec("ScanSchedule", schedule=schedule)
    answer = dry_run(kube_real, corpus_namespace, obj)
    assert answer.status == 422 and "spec.schedule" in refused_fields(answer), answer.body
    assert "spec.schedule" in local_fields(crds.validate("ScanSchedule", obj))


def test_the_action_table_is_the_same_on_the_server(
    kube_real: KubeReal, corpus_namespace: str
) -> None:
    actions = crds.schema("CleanupPolicy")["properties"]["spec"]["properties"]["action"]["enum"]
    disagreements = []
    for resource_type, allowed in crds.ACTIONS_BY_RESOURCE_TYPE.items():
        for action in actions:
            obj = minimal_policy(resourceType=resource_type, action=action)
            by_server = dry_run(kube_real, corpus_namespace, obj).status == 201
            by_us = crds.validate("CleanupPolicy", obj) == []
            if not by_server == by_us == (action in allowed):
                disagreements.append((resource_type, action, by_server, by_us))
    assert disagreements == []


@pytest.mark.parametrize(
    ("auto", "approval", "accepted"),
    [
        ("99999999.98", "99999999.99", True),
        ("99999999.99", "99999999.98", False),
        ("50", "50.00", True),
    ],
)
def test_money_rules_compare_exactly_at_cents_on_the_server(
    kube_real: KubeReal, corpus_namespace: str, auto: str, approval: str, accepted: bool
) -> None:
    obj = with_spec("CleanupPolicy", maxMonthlyCost=auto, requireApprovalAbove=approval)
    assert (dry_run(kube_real, corpus_namespace, obj).status == 201) is accepted
    assert (crds.validate("CleanupPolicy", obj) == []) is accepted


def test_account_id_is_immutable_on_the_server_as_in_process(
    kube_real: KubeReal, namespace: str
) -> None:
    old = sample("AwsAccount")
    old["metadata"] = {"name": "immutable", "namespace": namespace}
    path = f"/apis/cloudsweep.io/v1alpha1/namespaces/{namespace}/awsaccounts"
    created = kube_real.request("POST", path, old)
    assert created.status == 201, created.body
    new = {
        "accountId": "210987654321",
        "roleArn": "arn:aws:iam::210987654321:role/CloudSweep",
    }

    answer = kube_real.request(
        "PATCH", f"{path}/immutable", {"spec": new}, content_type="application/merge-patch+json"
    )

    message = "accountId is immutable; create a new AwsAccount for another account"
    assert answer.status == 422, answer.body
    assert [f for f, m in answer.causes() if message in m] == ["spec.accountId"], answer.body
    assert crds.validate(
        "AwsAccount", with_spec("AwsAccount", **new), old=sample("AwsAccount")
    ) == [f"spec.accountId: {message}"]
