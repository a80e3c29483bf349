"""Generated documentation: the CRD reference and the settings table.

Called by ``python -m cloudsweep.docs_gen`` (rewrites ``docs/crd-reference.md`` and the generated
block of ``docs/configuration.md``) and by ``tests/deploy/test_docs.py``, which fails when the
committed documents differ from what this module builds from the CRD schemas
(``cloudsweep.crds``) and the settings model (``cloudsweep.settings.Settings``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from cloudsweep import crds
from cloudsweep.settings import Settings

BEGIN: Final = "<!-- BEGIN GENERATED: settings (python -m cloudsweep.docs_gen) -->"
END: Final = "<!-- END GENERATED: settings -->"
DOCS_DIR: Final = Path(__file__).resolve().parents[2] / "docs"


def _cell(text: object) -> str:
    """Markdown table cell text: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


# --- settings ------------------------------------------------------------------------------


def env_var(name: str) -> str:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def _type_name(field: FieldInfo) -> str:
    annotation = field.annotation
    text = getattr(annotation, "__name__", None) if annotation is not None else None
    if text is None or "|" in str(annotation):
        text = str(annotation)
    return text.replace("pathlib.", "").replace("NoneType", "None")


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "computed (see description)"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "unset"
    return f"`{field.default}`"


def _limits(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{word} {value}")
    return ", ".join(parts)


def settings_table() -> str:
    """A Markdown table of every field of ``Settings``: env var, type, default, description."""
    lines = [
        "| Environment variable | Setting | Type | Default | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        limits = _limits(field)
        description = field.description or ""
        if limits:
            description = f"{description} Allowed: {limits}."
        lines.append(
            f"| `{env_var(name)}` | `{name}` | `{_cell(_type_name(field))}` "
            f"| {_cell(_default_text(field))} | {_cell(description)} |"
        )
    return "\n".join(lines) + "\n"


def configuration_with_table(text: str) -> str:
    """``docs/configuration.md`` with its generated block replaced by the current table."""
    before, found, rest = text.partition(BEGIN)
    _, found_end, after = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"docs/configuration.md needs the markers {BEGIN} and {END}")
    return f"{before}{BEGIN}\n{settings_table()}{END}{after}"


# --- CRD reference -------------------------------------------------------------------------


def _constraints(node: Mapping[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if "default" in node:
        parts.append(f"default `{_compact(node['default'])}`")
    for key, word in (
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ):
        if key in node:
            parts.append(f"{word} {node[key]}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    if "format" in node:
        parts.append(f"format {node['format']}")
    if node.get("x-kubernetes-list-type") in ("set", "map"):
        parts.append(f"unique ({node['x-kubernetes-list-type']})")
    return "; ".join(parts)


def _compact(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list) and not value:
        return "{}" if isinstance(value, dict) else "[]"
    return str(value)


def _type(node: Mapping[str, Any]) -> str:
    kind = str(node.get("type", "any"))
    if kind == "array" and isinstance(node.get("items"), Mapping):
        return f"[]{_type(node['items'])}"
    if kind == "object" and isinstance(node.get("additionalProperties"), Mapping):
        return f"map[string]{_type(node['additionalProperties'])}"
    return kind


def _fields(
    node: Mapping[str, Any], path: str, required: bool
) -> Iterator[tuple[str, str, bool, str, str]]:
    yield path, _type(node), required, _constraints(node), str(node.get("description", ""))
    target = node
    suffix = ""
    if node.get("type") == "array" and isinstance(node.get("items"), Mapping):
        target, suffix = node["items"], "[]"
    elif isinstance(node.get("additionalProperties"), Mapping):
        target, suffix = node["additionalProperties"], ".*"
    if target is not node and "properties" not in target:
        return
    needed = set(target.get("required", ()))
    for name, child in target.get("properties", {}).items():
        yield from _fields(child, f"{path}{suffix}.{name}", name in needed)


def _rules(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    for rule in node.get("x-kubernetes-validations", ()):
        yield path, str(rule.get("message") or rule["rule"])
    items = node.get("items")
    if isinstance(items, Mapping):
        yield from _rules(items, f"{path}[]")
    for name, child in node.get("properties", {}).items():
        yield from _rules(child, f"{path}.{name}")


def crd_reference() -> str:
    """The Markdown reference of the custom resources, from their CRDs' schemas."""
    out = [
        "# CRD reference",
        "",
        "<!-- Generated by `python -m cloudsweep.docs_gen` from crds/*.yaml: do not edit. -->",
        "",
        f"All kinds are in the API group `{crds.GROUP}`, version `{crds.VERSION}`, namespaced; "
        "a namespace is one organization. See `deploy/samples/` for complete examples.",
        "",
    ]
    for res in crds.RESOURCES:
        crd = crds.load(res.kind)
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == crds.VERSION]
        schema = version["schema"]["openAPIV3Schema"]
        names = crd["spec"]["names"]
        out += [
            f"## {res.kind}",
            "",
            _cell(schema.get("description", "")),
            "",
            f"- API version: `{res.api_version}`; plural `{names['plural']}`, short names "
            + ", ".join(f"`{n}`" for n in names.get("shortNames", []))
            + "; category `"
            + ", ".join(names.get("categories", []))
            + "`",
            "",
            "### Columns of `kubectl get`",
            "",
            "| Column | JSONPath | Description |",
            "| --- | --- | --- |",
        ]
        for column in version.get("additionalPrinterColumns", []):
            out.append(
                f"| {_cell(column['name'])} | `{_cell(column['jsonPath'])}` "
                f"| {_cell(column.get('description', ''))} |"
            )
        for part in ("spec", "status"):
            node = schema["properties"].get(part)
            if node is None:
                continue
            out += [
                "",
                f"### {part}",
                "",
                "| Field | Type | Required | Constraints | Description |",
                "| --- | --- | --- | --- | --- |",
            ]
            needed = set(node.get("required", ()))
            for name, child in node.get("properties", {}).items():
                for path, kind, required, constraints, description in _fields(
                    child, f"{part}.{name}", name in needed
                ):
                    out.append(
                        f"| `{path}` | `{_cell(kind)}` | {'yes' if required else ''} "
                        f"| {_cell(constraints)} | {_cell(description)} |"
                    )
        rules = list(_rules(schema, ""))
        if rules:
            out += ["", "### Validation rules", "", "| Where | Rule |", "| --- | --- |"]
            out += [f"| `{path.lstrip('.') or '(object)'}` | {_cell(m)} |" for path, m in rules]
        out.append("")
    return "\n".join(out)


def write(docs: Path = DOCS_DIR) -> list[Path]:
    reference = docs / "crd-reference.md"
    reference.write_text(crd_reference(), encoding="utf-8")
    configuration = docs / "configuration.md"
    configuration.write_text(
        configuration_with_table(configuration.read_text(encoding="utf-8")), encoding="utf-8"
    )
    return [reference, configuration]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cloudsweep.docs_gen",
        description="Regenerate docs/crd-reference.md and the settings table of "
        "docs/configuration.md.",
    )
    parser.add_argument("docs", nargs="?", default=DOCS_DIR, type=Path)
    args = parser.parse_args(argv)
    for path in write(args.docs):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
