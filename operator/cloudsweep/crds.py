"""The CustomResourceDefinitions (``crds/*.yaml``) as data: names, defaults and validation.

Called by the kopf handlers (``cloudsweep.handlers``), which register on the group, version and
plural named here and, for every object they receive, call ``apply_defaults`` and ``validate``
and turn the messages into a permanent ``Ready=False`` condition. That is a second line of
defence behind the API server's own validation, and the only one on KMock (the test API server),
which neither validates nor defaults. Also called by ``tests/crds``.

``validate`` does what the API server does with a CRD's ``openAPIV3Schema``: defaults, the schema
(via jsonschema), ``x-kubernetes-list-type`` uniqueness and the ``x-kubernetes-validations`` CEL
rules (via cel-python, with the Kubernetes string functions the CRDs use), and two checks a schema
cannot express: the cron expression's field values and the time zone name. Unknown fields are
refused, as ``kubectl apply`` does by default (strict server-side field validation); an API server
asked not to validate fields prunes them instead, since no schema keeps unknown fields.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import celpy
import jsonschema
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from croniter import croniter

GROUP: Final = "cloudsweep.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "cloudsweep"
CRDS_DIR_ENV: Final = "CLOUDSWEEP_CRDS_DIR"
# A new value of this annotation on a ScanSchedule starts one run; status.lastRunNow keeps the
# value acted on, so a re-applied manifest or an operator restart never starts a second run.
RUN_NOW_ANNOTATION: Final = "cloudsweep.io/run-now"

# The actions a CleanupPolicy may take per resource type. Every action records what undoes it
# first (DESIGN.md invariant 3), which is why there is no plain ``delete`` for volumes or
# databases. The CRD's CEL rules encode the same table; tests/crds checks they agree.
ACTIONS_BY_RESOURCE_TYPE: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "ebs-volume": ("snapshot-and-delete",),
        "ebs-snapshot": ("archive", "delete"),
        "elastic-ip": ("release",),
        "load-balancer": ("delete",),
        "rds-instance": ("stop", "final-snapshot-and-delete"),
        "ebs-gp3-candidate": ("modify-to-gp3",),
        "ami": ("deregister",),
        "cloudwatch-log-group": ("set-retention",),
        "s3-incomplete-multipart": ("add-abort-multipart-rule",),
        "ec2-instance": ("stop",),
        "ec2-stopped-instance": ("snapshot-and-terminate",),
        "nat-gateway": ("delete",),
    }
)


@dataclass(frozen=True, slots=True)
class Resource:
    """One custom resource's names, as kopf and kubectl use them."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    group: str = GROUP
    version: str = VERSION

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def file_name(self) -> str:
        return f"{self.crd_name}.yaml"


AWS_ACCOUNT: Final = Resource("AwsAccount", "awsaccounts", "awsaccount", ("awsacct",))
SCAN_SCHEDULE: Final = Resource("ScanSchedule", "scanschedules", "scanschedule", ("scansched",))
CLEANUP_POLICY: Final = Resource("CleanupPolicy", "cleanuppolicies", "cleanuppolicy", ("cleanpol",))
CLEANUP_APPROVAL: Final = Resource(
    "CleanupApproval", "cleanupapprovals", "cleanupapproval", ("cleanappr",)
)
RESOURCES: Final = (AWS_ACCOUNT, SCAN_SCHEDULE, CLEANUP_POLICY, CLEANUP_APPROVAL)

Json = Any  # a value decoded from JSON or YAML: dict, list, str, int, float, bool or None
PathItem = str | int


def resource(kind: str) -> Resource:
    """The resource whose kind, plural, singular or short name is ``kind``."""
    for res in RESOURCES:
        if kind in (res.kind, res.plural, res.singular, *res.short_names):
            return res
    raise ValueError(
        f"unknown custom resource kind {kind!r}; known: {', '.join(r.kind for r in RESOURCES)}"
    )


def crds_dir() -> Path:
    """The folder with the CRD YAMLs: ``$CLOUDSWEEP_CRDS_DIR``, else the repository's ``crds/``."""
    override = os.environ.get(CRDS_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "crds"


def load(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition document of ``kind`` (a copy: change it freely)."""
    return copy.deepcopy(_load(_file(kind)))


def schema(kind: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of the served version ``v1alpha1`` of ``kind`` (a copy)."""
    return copy.deepcopy(_root(kind))


def _file(kind: str) -> str:
    return str(crds_dir() / resource(kind).file_name)


def _root(kind: str) -> dict[str, Any]:
    """The cached schema itself: internal callers must not change it."""
    return _schema(_file(kind))


@functools.cache
def _load(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"CRD file {path} not found; set {CRDS_DIR_ENV} to the folder holding the CRD YAMLs"
        ) from None
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"{path} is not a CustomResourceDefinition")
    return doc


@functools.cache
def _schema(path: str) -> dict[str, Any]:
    for version in _load(path)["spec"]["versions"]:
        if version["name"] == VERSION:
            found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
            return found
    raise ValueError(f"{path} does not define version {VERSION}")


# --- defaults ---------------------------------------------------------------------------------


def apply_defaults(kind: str, obj: Mapping[str, Json]) -> dict[str, Any]:
    """A copy of ``obj`` with the schema's defaults filled in, as the API server stores it.

    Defaults apply inside objects that are present (``spec.rules`` defaults to ``{}``, whose
    fields then get their own defaults), so ``dryRun`` is true unless someone wrote false.
    """
    result: dict[str, Any] = _plain_json(obj)
    _default(_root(kind), result)
    return result


def _default(node: Mapping[str, Any], value: Json) -> None:
    if isinstance(value, dict):
        properties: Mapping[str, Any] = node.get("properties", {})
        for name, sub in properties.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default(sub, value[name])
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            for item in value.values():
                _default(extra, item)
    elif isinstance(value, list) and isinstance(node.get("items"), Mapping):
        for item in value:
            _default(node["items"], item)


# --- validation -------------------------------------------------------------------------------


def validate(
    kind: str, obj: Mapping[str, Json], old: Mapping[str, Json] | None = None
) -> list[str]:
    """Every reason the API server would refuse ``obj``, each naming the field; [] when valid.

    ``old`` is the stored object for an update: rules on ``oldSelf`` (immutable fields) are
    checked only when it is given. Defaults are applied first, as the API server does.
    """
    res = resource(kind)
    errors: list[tuple[tuple[PathItem, ...], str]] = []
    if obj.get("apiVersion") != res.api_version:
        errors.append(
            (("apiVersion",), f"must be {res.api_version}, not {obj.get('apiVersion')!r}")
        )
    if obj.get("kind") != res.kind:
        errors.append((("kind",), f"must be {res.kind}, not {obj.get('kind')!r}"))
    value = apply_defaults(kind, obj)
    root = _root(kind)
    blocking: list[bool] = []
    schema_errors = list(_schema_errors(res.kind, _strict_schema(_file(kind)), value, blocking))
    schema_errors += list(_list_type_errors(root, value, ()))
    broken = [path for path, _ in schema_errors]
    errors += schema_errors
    old_value = _plain_json(old) if old is not None else _MISSING
    if old is not None:
        _default(root, old_value)
    # As the API server: no rule runs once a blocking schema error was found (anywhere); every
    # rule runs otherwise, also beside a failed pattern or bound (tests/kube_real compares).
    if not any(blocking):
        errors += list(_cel_errors(root, value, old_value, ()))
    if res is SCAN_SCHEDULE and isinstance(value.get("spec"), dict):
        errors += list(_schedule_errors(value["spec"], broken))
    errors += list(_surrogate_errors(value.get("spec"), ("spec",)))
    return [f"{_format_path(path)}: {message}" for path, message in _dedupe(errors)]


def _dedupe(
    errors: Sequence[tuple[tuple[PathItem, ...], str]],
) -> list[tuple[tuple[PathItem, ...], str]]:
    seen: set[tuple[tuple[PathItem, ...], str]] = set()
    unique = []
    for error in errors:
        if error not in seen:
            seen.add(error)
            unique.append(error)
    return unique


def _format_path(path: Sequence[PathItem]) -> str:
    text = ""
    for item in path:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else item)
    return text or "<object>"


def _plain_json(value: Any) -> Any:
    """A deep copy as JSON would carry it: YAML timestamps become RFC 3339 strings, as kubectl sends."""
    if isinstance(value, Mapping):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


# jsonschema ----------------------------------------------------------------------------------


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    # The API server uses Go's RE2: ASCII \w and \d, and ``$`` only at the very end (Python's also
    # matches before a final newline).
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern, re.ASCII)


def _pattern(
    validator: Any, pattern: str, instance: Json, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not _regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value, re.ASCII
    ):
        raise ValueError(value)
    datetime.fromisoformat(value)
    return True


# OpenAPI v3 schemas are closest to draft 4 (booleans are not integers, 1.0 is not an integer).
_Validator: Any = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft4Validator, {"pattern": _pattern}
)


@functools.cache
def _strict_schema(path: str) -> dict[str, Any]:
    """The schema with ``additionalProperties: false`` wherever properties are listed.

    A structural schema may not say so itself; the API server treats unlisted fields as unknown
    (refused under strict field validation, pruned otherwise). ``metadata`` is left to the server.
    """

    def strict(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
            if "properties" in node and "additionalProperties" not in node:
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [strict(v) for v in node]
        return node

    strict_root: dict[str, Any] = strict(copy.deepcopy(_schema(path)))
    return strict_root


def _json_type(value: Json) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


# The schema failures after which the API server evaluates no x-kubernetes-validations rule
# (wrong type, enum, required, too long, too many: "some validation rules were not checked because
# the object was invalid"); after the others (pattern, minimum, maximum, format) every rule runs.
_BLOCKING_KEYWORDS: Final = frozenset(
    {"type", "enum", "required", "maxLength", "maxItems", "maxProperties"}
)


def _schema_errors(
    kind: str, strict: Mapping[str, Any], value: Json, blocking: list[bool]
) -> Iterator[tuple[tuple[PathItem, ...], str]]:
    """The schema's errors; appends True to ``blocking`` for each one that stops CEL rules."""
    validator = _Validator(strict, format_checker=_FORMATS)
    for error in validator.iter_errors(value):
        path = tuple(error.absolute_path)
        blocking.append(error.validator in _BLOCKING_KEYWORDS)
        yield from _explain(kind, path, error)


def _explain(
    kind: str, path: tuple[PathItem, ...], error: jsonschema.ValidationError
) -> Iterator[tuple[tuple[PathItem, ...], str]]:
    instance: Any = error.instance
    expected: Any = error.validator_value
    node: Any = error.schema
    keyword = error.validator
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = sorted(node.get("properties", {}))
        for name in sorted(set(instance) - set(known)):
            yield (
                (*path, name),
                f"unknown field; the {kind} schema has no such field here "
                f"(known fields: {', '.join(known)})",
            )
    elif keyword == "required" and isinstance(instance, dict):
        for name in expected:
            if name not in instance:
                yield (*path, name), "required field is missing"
    elif keyword == "type":
        message = f"must be of type {expected}, not {_json_type(instance)} {instance!r}"
        if expected == "string" and _json_type(instance) in ("number", "boolean"):
            message += (
                '; quote the value in YAML (e.g. "012345678901" or "49.99") so it stays text: '
                "YAML reads unquoted digits as a number and drops leading zeros"
            )
        yield path, message
    elif keyword == "enum":
        yield path, f"unsupported value {instance!r}; allowed: {', '.join(map(str, expected))}"
    elif keyword == "pattern":
        hint = _pattern_hint(expected)
        yield path, f"invalid value {instance!r}: must be {hint} (pattern {expected})"
    elif keyword in ("minimum", "maximum"):
        word = "at least" if keyword == "minimum" else "at most"
        yield path, f"{instance!r} is out of range: must be {word} {expected}"
    elif keyword in ("minLength", "maxLength"):
        word = "at least" if keyword == "minLength" else "at most"
        yield path, f"must be {word} {expected} characters long, not {len(instance)}"
    elif keyword in ("minItems", "maxItems"):
        word = "at least" if keyword == "minItems" else "at most"
        yield path, f"must have {word} {expected} items, not {len(instance)}"
    elif keyword in ("minProperties", "maxProperties"):
        word = "at least" if keyword == "minProperties" else "at most"
        yield path, f"must have {word} {expected} entries, not {len(instance)}"
    elif keyword == "format":
        yield path, f"{instance!r} is not a valid {expected} (RFC 3339, e.g. 2025-01-31T12:00:00Z)"
    else:
        yield path, error.message


_MONEY_RE: Final = re.compile(r"\^\[0-9\]\{1,(\d+)\}\(\\\.\[0-9\]\{1,2\}\)\?\$")
_PATTERN_HINTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "^[0-9]{12}$": 'an AWS account ID of exactly 12 digits, quoted in YAML ("012345678901")',
        "^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[\\w+=,.@/-]{1,512}$": (
            "an IAM role ARN: arn:aws:iam::<12-digit account ID>:role/<path and name>"
        ),
        "^[^\\x00-\\x1f\\x7f]*$": "text without control characters (no NUL, newline or tab)",
        "^[!-~]+$": "printable ASCII without spaces",
        "^[A-Za-z][A-Za-z0-9_+/-]{0,63}$": "an IANA time zone name such as Europe/Berlin",
        "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$": (
            "a label value: letters, digits, '-', '_' and '.', starting and ending alphanumeric"
        ),
        "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$": (
            "a label key such as cloudsweep.io/environment"
        ),
    }
)


def _pattern_hint(pattern: str) -> str:
    money = _MONEY_RE.fullmatch(pattern)
    if money:
        return (
            f"an amount of US dollars with at most {money.group(1)} digits before the point and "
            'at most 2 after it, written as a quoted string ("49.99"): never negative'
        )
    if pattern.startswith("^(@(annually"):
        return 'a cron expression of five fields ("0 3 * * *") or a macro such as @daily'
    if pattern.startswith("^[a-z0-9]([-a-z0-9]*[a-z0-9])?"):
        return "a Kubernetes object name: lower-case letters, digits, '-' and '.'"
    return _PATTERN_HINTS.get(pattern, "a string the pattern accepts")


# list types ----------------------------------------------------------------------------------


def _list_type_errors(
    node: Mapping[str, Any], value: Json, path: tuple[PathItem, ...]
) -> Iterator[tuple[tuple[PathItem, ...], str]]:
    for sub, item, sub_path in _children(node, value, path):
        yield from _list_type_errors(sub, item, sub_path)
    if not isinstance(value, list):
        return
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "set":
        seen: list[Json] = []
        for index, item in enumerate(value):
            if item in seen:
                yield (*path, index), f"duplicate value {item!r}"
            seen.append(item)
    elif list_type == "map":
        keys: Sequence[str] = node.get("x-kubernetes-list-map-keys", ())
        seen_keys: set[tuple[str, ...]] = set()
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = tuple(repr(item.get(k)) for k in keys)
            if key in seen_keys:
                named = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
                yield (*path, index), f"duplicate entry: another entry has {named}"
            seen_keys.add(key)


def _children(
    node: Mapping[str, Any], value: Json, path: tuple[PathItem, ...]
) -> Iterator[tuple[Mapping[str, Any], Json, tuple[PathItem, ...]]]:
    """The (schema, value, path) of each child of ``value`` that the schema describes."""
    if isinstance(value, dict):
        properties: Mapping[str, Any] = node.get("properties", {})
        extra = node.get("additionalProperties")
        for name, item in value.items():
            if name in properties:
                yield properties[name], item, (*path, name)
            elif isinstance(extra, Mapping):
                yield extra, item, (*path, name)
    elif isinstance(value, list) and isinstance(node.get("items"), Mapping):
        for index, item in enumerate(value):
            yield node["items"], item, (*path, index)


# CEL -----------------------------------------------------------------------------------------

_MISSING: Final[Any] = object()


def _cel_split(text: celtypes.Value, separator: celtypes.Value) -> celtypes.Value:
    return celtypes.ListType([celtypes.StringType(s) for s in str(text).split(str(separator))])


def _cel_join(items: celtypes.ListType, separator: celtypes.Value | None = None) -> celtypes.Value:
    return celtypes.StringType(str(separator or "").join(str(i) for i in items))


def _cel_lower(text: celtypes.Value) -> celtypes.Value:
    return celtypes.StringType("".join(c.lower() if c.isascii() else c for c in str(text)))


def _cel_upper(text: celtypes.Value) -> celtypes.Value:
    return celtypes.StringType("".join(c.upper() if c.isascii() else c for c in str(text)))


def _cel_trim(text: celtypes.Value) -> celtypes.Value:
    return celtypes.StringType(str(text).strip())


# The Kubernetes CEL string library functions cel-python lacks (only those the CRDs may need).
_CEL_FUNCTIONS: Final[dict[str, Callable[..., celtypes.Value]]] = {
    "split": _cel_split,
    "join": _cel_join,
    "lowerAscii": _cel_lower,
    "upperAscii": _cel_upper,
    "trim": _cel_trim,
}


@functools.cache
def _cel_program(rule: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule), functions=dict(_CEL_FUNCTIONS))


def _cel_errors(
    node: Mapping[str, Any],
    value: Json,
    old: Json,
    path: tuple[PathItem, ...],
) -> Iterator[tuple[tuple[PathItem, ...], str]]:
    for rule in node.get("x-kubernetes-validations", ()):
        yield from _check_rule(rule, value, old, path)
    for sub, item, sub_path in _children(node, value, path):
        key = sub_path[-1]
        old_item = _MISSING
        if isinstance(old, dict) and isinstance(key, str) and isinstance(value, dict):
            old_item = old.get(key, _MISSING)
        yield from _cel_errors(sub, item, old_item, sub_path)


def _check_rule(
    rule: Mapping[str, str], value: Json, old: Json, path: tuple[PathItem, ...]
) -> Iterator[tuple[tuple[PathItem, ...], str]]:
    text = rule["rule"]
    activation: dict[str, Any] = {"self": json_to_cel(value)}
    if "oldSelf" in text:
        if old is _MISSING:
            return  # a transition rule: only on update, and only where the old value exists
        activation["oldSelf"] = json_to_cel(old)
    where = (*path, *[p for p in rule.get("fieldPath", "").split(".") if p])
    try:
        result = _cel_program(text).evaluate(activation)
    except Exception as exc:  # whatever fails, the object is refused: fail closed, never open
        yield where, f"validation rule {text!r} could not be evaluated ({exc}); refused to be safe"
        return
    if isinstance(result, CELEvalError):
        yield (
            where,
            f"validation rule {text!r} could not be evaluated ({result}); refused to be safe",
        )
    elif not (isinstance(result, celtypes.BoolType) and bool(result)):
        yield where, rule.get("message") or f"failed validation rule {text!r}"


# checks a schema cannot express ----------------------------------------------------------------


def _surrogate_errors(
    value: Json, path: tuple[PathItem, ...]
) -> Iterator[tuple[tuple[PathItem, ...], str]]:
    """Lone UTF-16 surrogates anywhere (keys too): not UTF-8, so PostgreSQL cannot store them.

    A real API server never passes one on (Go's JSON decoder turns it into U+FFFD); KMock and
    other Python clients can. NUL and other control characters are the schema's patterns' and
    CEL rules' to refuse, so that the API server refuses them too.
    """
    if isinstance(value, str):
        if any("\ud800" <= c <= "\udfff" for c in value):
            yield path, "contains a lone UTF-16 surrogate, which is not text PostgreSQL can store"
    elif isinstance(value, dict):
        for key, item in value.items():
            if any("\ud800" <= c <= "\udfff" for c in str(key)):
                yield path, f"key {key!r} contains a lone UTF-16 surrogate, which is not text"
            yield from _surrogate_errors(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _surrogate_errors(item, (*path, index))


def _schedule_errors(
    spec: Mapping[str, Json], broken: Sequence[tuple[PathItem, ...]]
) -> Iterator[tuple[tuple[PathItem, ...], str]]:
    schedule = spec.get("schedule")
    if (
        isinstance(schedule, str)
        and ("spec", "schedule") not in broken
        and not croniter.is_valid(schedule)
    ):
        yield (
            ("spec", "schedule"),
            f"{schedule!r} is not a valid cron expression (a field value is out of range or "
            'misspelt); e.g. "0 3 * * *" runs daily at 03:00',
        )
    zone = spec.get("timeZone")
    if isinstance(zone, str) and ("spec", "timeZone") not in broken:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            yield (
                ("spec", "timeZone"),
                f"unknown time zone {zone!r}; use an IANA name such as Etc/UTC or Europe/Berlin",
            )
