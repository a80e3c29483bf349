"""The documentation covers every setting, every CRD field and every condition reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cloudsweep import docs_gen
from cloudsweep.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

REASONS = {
    "AwsAccount": [
        "Connected",
        "AssumeRoleFailed",
        "IdentityMismatch",
        "ExternalIdNotEnforced",
        "AccountClaimedByAnotherOrganization",
        "InvalidSpec",
        "Deleting",
    ],
    "ScanSchedule": [
        "Scheduled",
        "Suspended",
        "ScanLimitReached",
        "NoAccountsSelected",
        "InvalidSpec",
        "ScanFailed",
        "ScanPartial",
    ],
    "CleanupPolicy": [
        "Evaluated",
        "InvalidSpec",
        "AwaitingApproval",
        "CleanupFailed",
        "EvaluationFailed",
    ],
    "CleanupApproval": ["Recorded", "FindingNotFound", "ApprovalIgnored", "InvalidSpec"],
}


def test_configuration_table_is_generated_from_the_settings_model() -> None:
    text = (DOCS / "configuration.md").read_text()
    assert docs_gen.configuration_with_table(text) == text, (
        "docs/configuration.md is stale: run `python -m cloudsweep.docs_gen`"
    )
    for name in Settings.model_fields:
        assert f"`{docs_gen.env_var(name)}`" in text


def test_every_cloudsweep_environment_variable_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    names = set()
    for path in (REPO / "operator" / "cloudsweep").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value
                if value.startswith("CLOUDSWEEP_") and value.isupper() and " " not in value:
                    names.add(value.rstrip("_"))
    names.discard("CLOUDSWEEP")
    missing = sorted(n for n in names if f"`{n}`" not in text)
    assert not missing, f"docs/configuration.md does not document {missing}"


def test_crd_reference_is_generated_from_the_crds() -> None:
    assert (DOCS / "crd-reference.md").read_text() == docs_gen.crd_reference(), (
        "docs/crd-reference.md is stale: run `python -m cloudsweep.docs_gen`"
    )


def test_crd_reference_lists_every_spec_field() -> None:
    from cloudsweep import crds

    text = docs_gen.crd_reference()
    for res in crds.RESOURCES:
        for name in crds.schema(res.kind)["properties"]["spec"]["properties"]:
            assert f"`spec.{name}`" in text, f"{res.kind}: spec.{name}"


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_troubleshooting_explains_every_reason(kind: str) -> None:
    text = (DOCS / "troubleshooting.md").read_text()
    section = text.split(f"## {kind}", 1)[1].split("\n## ", 1)[0]
    for reason in REASONS[kind]:
        assert f"| `{reason}` |" in section, f"{kind}: {reason}"


def test_install_and_upgrade_pages_exist() -> None:
    install = (DOCS / "install.md").read_text()
    upgrade = (DOCS / "upgrade.md").read_text()
    assert "kubectl apply -k deploy/overlays/production" in install
    assert "cloudsweep db upgrade" in upgrade
    for path in ("deploy/iam/cloudformation.json", "deploy/overlays/dev", "crds/"):
        assert path in install
        assert (REPO / path.rstrip("/")).exists()


def test_writer_regenerates_both_documents(tmp_path: Path) -> None:
    (tmp_path / "configuration.md").write_text(f"x\n{docs_gen.BEGIN}\nold\n{docs_gen.END}\ny\n")
    assert docs_gen.main([str(tmp_path)]) == 0
    assert (tmp_path / "crd-reference.md").read_text() == docs_gen.crd_reference()
    assert docs_gen.settings_table() in (tmp_path / "configuration.md").read_text()
