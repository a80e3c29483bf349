"""The CRD files themselves: structural, bounded, named as the code expects, in step with the code.

Adding a detector, a region or a detector parameter without updating ``crds/`` fails here.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudsweep import crds, detectors
from cloudsweep.pricing import load_catalog

ROOT = Path(__file__).resolve().parents[2]
CRDS = {r.kind: crds.load(r.kind) for r in crds.RESOURCES}
KINDS = sorted(CRDS)

Node = tuple[str, dict[str, Any]]


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[Node]:
    """Every schema node with its path (``.spec.rules.regions[]``, ``.spec.x{}`` for map values)."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def all_nodes() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for kind in KINDS:
        for path, node in nodes(crds.schema(kind)):
            yield kind, path, node


def version(kind: str) -> dict[str, Any]:
    (only,) = CRDS[kind]["spec"]["versions"]
    return only


@pytest.mark.parametrize("kind", KINDS)
def test_crd_identity(kind: str) -> None:
    res = crds.resource(kind)
    crd = CRDS[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == res.crd_name == f"{res.plural}.cloudsweep.io"
    spec = crd["spec"]
    assert spec["group"] == crds.GROUP == "cloudsweep.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": res.kind,
        "listKind": f"{res.kind}List",
        "plural": res.plural,
        "singular": res.singular,
        "shortNames": list(res.short_names),
        "categories": [crds.CATEGORY],
    }
    assert (ROOT / "crds" / res.file_name).is_file()


@pytest.mark.parametrize("kind", KINDS)
def test_served_and_stored_v1alpha1_with_status_subresource(kind: str) -> None:
    v = version(kind)
    assert (v["name"], v["served"], v["storage"]) == ("v1alpha1", True, True)
    assert v["subresources"] == {"status": {}}
    assert crds.VERSION == "v1alpha1"


def test_short_names() -> None:
    assert {k: CRDS[k]["spec"]["names"]["shortNames"] for k in KINDS} == {
        "AwsAccount": ["awsacct"],
        "CleanupApproval": ["cleanappr"],
        "CleanupPolicy": ["cleanpol"],
        "ScanSchedule": ["scansched"],
    }


def test_printer_columns() -> None:
    columns = {k: [c["name"] for c in version(k)["additionalPrinterColumns"]] for k in KINDS}
    assert columns == {
        "AwsAccount": ["ACCOUNT", "READY", "CONNECTED", "WASTE ($/MONTH)", "LAST SCAN", "AGE"],
        "ScanSchedule": ["SCHEDULE", "SUSPENDED", "LAST SCHEDULE", "NEXT", "AGE"],
        "CleanupPolicy": ["TYPE", "ACTION", "DRY RUN", "AWAITING", "EXECUTED", "AGE"],
        "CleanupApproval": ["POLICY", "RESOURCE", "DECISION", "APPROVER", "READY", "AGE"],
    }


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_point_at_schema_fields(kind: str) -> None:
    paths = {path for path, _ in nodes(crds.schema(kind))}
    for column in version(kind)["additionalPrinterColumns"]:
        assert column["type"] in ("string", "integer", "number", "boolean", "date")
        json_path = column["jsonPath"]
        if json_path == ".metadata.creationTimestamp":
            continue
        field = json_path.split("[?")[0]
        assert field in paths, (kind, column)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(kind: str) -> None:
    """Kubernetes' structural-schema rules, plus ours: no field is ever kept unknown."""
    for path, node in nodes(crds.schema(kind)):
        assert "type" in node, f"{kind} {path or '<root>'} has no type"
        assert node.get("additionalProperties") is not True, (kind, path)
        assert not ("properties" in node and "additionalProperties" in node), (kind, path)
        assert "x-kubernetes-preserve-unknown-fields" not in node, (kind, path)
        assert "x-kubernetes-int-or-string" not in node, (kind, path)
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "not", "nullable"):
            assert forbidden not in node, (kind, path, forbidden)
        if node["type"] == "object" and path != ".metadata":
            assert "properties" in node or "additionalProperties" in node, (kind, path)
        if node["type"] == "array":
            assert "items" in node, (kind, path)


def test_every_value_is_bounded() -> None:
    for kind, path, node in all_nodes():
        where = f"{kind} {path}"
        if path in (".apiVersion", ".kind"):
            continue  # the API server bounds these
        if node["type"] == "string":
            assert "maxLength" in node or "enum" in node, f"{where}: string without maxLength"
        if node["type"] == "array":
            assert "maxItems" in node, f"{where}: array without maxItems"
        if node["type"] == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{where}: map without maxProperties"
        if node["type"] == "integer" and path.startswith(".spec"):
            assert "minimum" in node and "maximum" in node, f"{where}: integer without range"


def test_every_object_lists_what_it_requires_correctly() -> None:
    for kind, path, node in all_nodes():
        for name in node.get("required", ()):
            assert name in node.get("properties", {}), (kind, path, name)


def test_list_map_keys_are_required() -> None:
    for kind, path, node in all_nodes():
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"]["required"]), (kind, path)


def test_no_reference_can_name_another_namespace() -> None:
    for kind, path, _ in all_nodes():
        assert "namespace" not in path.lower().split(".")[-1], (kind, path)


def test_aws_account_spec_has_no_external_id() -> None:
    spec = crds.schema("AwsAccount")["properties"]["spec"]["properties"]
    status = crds.schema("AwsAccount")["properties"]["status"]["properties"]
    assert "externalId" not in spec
    assert "externalId" in status


def test_patterns_are_anchored_and_explained() -> None:
    for kind, path, node in all_nodes():
        if "pattern" in node:
            pattern = node["pattern"]
            assert pattern.startswith("^") and pattern.endswith("$"), (kind, path)
            if path.startswith(".spec"):
                assert crds._pattern_hint(pattern) != "a string the pattern accepts", (kind, path)


def _wildcards(pattern: str) -> list[str]:
    """The parts of a regular expression that could match a control character: ``.``, ``\\s``,
    ``\\S``, ``\\W``, ``\\D`` and negated classes, except ``[^\\x00-\\x1f\\x7f]`` (which excludes
    them all)."""
    safe = pattern.replace("[^\\x00-\\x1f\\x7f]", "")
    found, in_class, index = [], False, 0
    while index < len(safe):
        char = safe[index]
        if char == "\\":
            if not in_class and safe[index + 1] in "sSWD":
                found.append(safe[index : index + 2])
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            if safe[index + 1] == "^":
                found.append("[^")
        elif char == "]" and in_class:
            in_class = False
        elif char == "." and not in_class:
            found.append(".")
        index += 1
    return found


def test_no_spec_string_admits_a_control_character() -> None:
    """NUL (which PostgreSQL cannot store) and other control characters are refused at admission
    in every string of every spec: by an enum, a format, or a pattern without wildcards."""
    checked = 0
    for kind, path, node in all_nodes():
        if not path.startswith(".spec") or node["type"] != "string":
            continue
        checked += 1
        assert "enum" in node or "format" in node or "pattern" in node, (kind, path)
        assert not _wildcards(node.get("pattern", "")), (kind, path, node["pattern"])
    assert checked >= 20


def test_no_spec_map_admits_a_key_with_a_control_character() -> None:
    """Map keys have no schema of their own: a CEL rule on every map of a spec refuses them."""
    maps = [
        (kind, path, node)
        for kind, path, node in all_nodes()
        if path.startswith(".spec") and isinstance(node.get("additionalProperties"), dict)
    ]
    assert len(maps) == 4  # two tag maps, two matchLabels
    for kind, path, node in maps:
        for bad in ("a\x00b", "line\nbreak", "tab\t", "del\x7f"):
            refused = [
                rule["rule"]
                for rule in node.get("x-kubernetes-validations", ())
                if list(crds._check_rule(rule, {bad: "x"}, crds._MISSING, ()))
            ]
            assert refused, (kind, path, bad)


def test_account_ids_and_role_arns_follow_the_domain_rules() -> None:
    from cloudsweep.domain import ACCOUNT_ID_RE, ROLE_ARN_RE

    account_paths = []
    for kind, path, node in all_nodes():
        if path.endswith(".accountId") and path.startswith(".spec"):
            account_paths.append((kind, path))
            assert node["type"] == "string"
            assert node["pattern"] == ACCOUNT_ID_RE.pattern
        if path.endswith(".roleArn"):
            assert node["pattern"] == ROLE_ARN_RE.pattern.replace(
                "(?P<partition>aws|aws-cn|aws-us-gov)", "aws(-cn|-us-gov)?"
            ).replace("(?P<account>[0-9]{12})", "[0-9]{12}").replace(
                "(?P<path>[\\w+=,.@/-]{1,512})", "[\\w+=,.@/-]{1,512}"
            )
    assert len(account_paths) == 3  # AwsAccount, CleanupPolicy approvals, CleanupApproval


def test_money_is_a_decimal_string_never_a_float() -> None:
    money = [
        (kind, path, node)
        for kind, path, node in all_nodes()
        if path.split(".")[-1].lower().endswith(("cost", "above", "waste", "costperrun", "monthly"))
    ]
    assert len(money) >= 10
    for kind, path, node in money:
        assert node["type"] == "string", (kind, path)
        assert crds._MONEY_RE.fullmatch(node["pattern"]), (kind, path)
    assert not [p for _, p, n in all_nodes() if n["type"] == "number"]


def enums_containing(value: str) -> list[tuple[str, str, list[str]]]:
    return [(k, p, n["enum"]) for k, p, n in all_nodes() if value in n.get("enum", ())]


def test_resource_type_enums_equal_the_detector_registry() -> None:
    found = enums_containing("ebs-volume")
    assert {(k, p) for k, p, _ in found} == {
        ("CleanupPolicy", ".spec.resourceType"),
        ("ScanSchedule", ".spec.resourceTypes[]"),
    }
    for kind, path, enum in found:
        assert enum == detectors.names(), (kind, path)
    parameters = crds.schema("ScanSchedule")["properties"]["spec"]["properties"]["parameters"]
    assert sorted(parameters["properties"]) == detectors.names()
    assert sorted(crds.ACTIONS_BY_RESOURCE_TYPE) == detectors.names()


def test_region_enums_equal_the_pricing_catalog() -> None:
    known = sorted(load_catalog().regions)
    found = enums_containing("us-east-1")
    assert {(k, p) for k, p, _ in found} == {
        ("AwsAccount", ".spec.regions[]"),
        ("ScanSchedule", ".spec.regions[]"),
        ("CleanupPolicy", ".spec.rules.regions[]"),
        ("CleanupPolicy", ".spec.approvals[].region"),
        ("CleanupApproval", ".spec.region"),
    }
    for kind, path, enum in found:
        # An account may also say [all]: every region enabled for it, read from AWS at each scan.
        expected = ["all", *known] if (kind, path) == ("AwsAccount", ".spec.regions[]") else known
        assert enum == expected, (kind, path)
    default = crds.schema("AwsAccount")["properties"]["spec"]["properties"]["regions"]["default"]
    assert set(default) <= set(known)


def test_detector_parameters_match_the_detectors() -> None:
    parameters = crds.schema("ScanSchedule")["properties"]["spec"]["properties"]["parameters"]
    for name in detectors.names():
        model = detectors.get(name).Parameters.model_json_schema()
        crd = parameters["properties"][name]["properties"]
        assert sorted(crd) == sorted(model["properties"]), name
        for field, spec in model["properties"].items():
            assert crd[field]["type"] == spec["type"], (name, field)
            assert crd[field].get("minimum") == spec.get("minimum"), (name, field)
            assert crd[field].get("maximum") == spec.get("maximum"), (name, field)


def test_crd_parameter_examples_pass_the_detectors_own_validation() -> None:
    spec = yaml.safe_load((ROOT / "deploy" / "samples" / "scanschedule.yaml").read_text())["spec"]
    for name, raw in spec["parameters"].items():
        detectors.get(name)().parameters(raw)


def test_action_enum_is_the_union_of_the_action_table() -> None:
    action = crds.schema("CleanupPolicy")["properties"]["spec"]["properties"]["action"]
    table = {a for actions in crds.ACTIONS_BY_RESOURCE_TYPE.values() for a in actions}
    assert (
        set(action["enum"])
        == table
        == {
            "delete",
            "snapshot-and-delete",
            "release",
            "archive",
            "stop",
            "final-snapshot-and-delete",
            "modify-to-gp3",
            "deregister",
            "set-retention",
            "add-abort-multipart-rule",
            "snapshot-and-terminate",
        }
    )


def test_scan_types_and_risk_levels_match_the_domain_enums() -> None:
    from cloudsweep.domain import RiskLevel, ScanStatus, ScanType

    spec = crds.schema("ScanSchedule")["properties"]["spec"]["properties"]
    assert spec["scanType"]["enum"] == [t.value for t in ScanType]
    rules = crds.schema("CleanupPolicy")["properties"]["spec"]["properties"]["rules"]
    assert rules["properties"]["maxRiskLevel"]["enum"] == [r.value for r in RiskLevel]
    last_scan = crds.schema("AwsAccount")["properties"]["status"]["properties"]["lastScan"]
    assert last_scan["properties"]["outcome"]["enum"] == [s.value for s in ScanStatus]


def test_conditions_are_the_same_crossplane_style_schema_everywhere() -> None:
    conditions = [crds.schema(k)["properties"]["status"]["properties"]["conditions"] for k in KINDS]
    items = [c["items"] for c in conditions]
    assert all(i == items[0] for i in items)
    assert set(items[0]["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert all(c["x-kubernetes-list-map-keys"] == ["type"] for c in conditions)
    for kind in KINDS:
        assert "phase" not in crds.schema(kind)["properties"]["status"]["properties"]


def test_every_cel_rule_compiles_with_the_functions_provided() -> None:
    rules = [
        rule["rule"]
        for _, _, node in all_nodes()
        for rule in node.get("x-kubernetes-validations", ())
    ]
    assert len(rules) >= 10
    for rule in rules:
        crds._cel_program(rule)


def test_cel_rules_have_messages_and_valid_field_paths() -> None:
    for kind, path, node in all_nodes():
        for rule in node.get("x-kubernetes-validations", ()):
            assert rule.get("message"), (kind, path, rule)
            if "reason" in rule:
                assert rule["reason"] in (
                    "FieldValueInvalid",
                    "FieldValueForbidden",
                    "FieldValueRequired",
                    "FieldValueDuplicate",
                )
            if "fieldPath" in rule:
                field = rule["fieldPath"].lstrip(".")
                assert field in node["properties"], (kind, path, rule)


def test_kustomization_lists_every_crd() -> None:
    kustomization = yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(r.file_name for r in crds.RESOURCES)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_renders_the_crds() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "crds")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = list(yaml.safe_load_all(result.stdout))
    assert sorted(d["metadata"]["name"] for d in rendered) == sorted(
        r.crd_name for r in crds.RESOURCES
    )
    for doc in rendered:
        assert doc == crds.load(doc["spec"]["names"]["kind"])
