"""Which AWS API operations the package's source calls, found by reading it (AST), not running it.

Used by ``test_iam.py``. A module's calls are attributed to the AWS services named in that
module, or in a package module it imports names from (``elastic_ip`` uses ``ebs_volume.call``,
which talks to EC2): string constants equal to a botocore service name (``"ec2"``,
``_ELBV2 = "elbv2"``).
An operation of such a service counts as called where the module has

- a method call of its Python name on anything (``client.get_metric_statistics(...)``),
- a string constant equal to its Python name (``get_paginator("describe_snapshots")``,
  ``self._call("elbv2", "describe_target_health")``) or to its API name (``call(ctx,
  "CreateSnapshot")``), as the code's dynamic dispatch passes them,
- a string constant naming a waiter of the service (``"snapshot_completed"``): the operation the
  waiter polls.

That over-approximates (an operation named in an error message counts), which is the safe side
for "every called operation is allowed"; the policies' extras are then checked against the
documented implied actions.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name

# IAM's service prefix where it differs from the model's signingName.
_IAM_PREFIX = {"monitoring": "cloudwatch"}
# IAM action names that differ from the operation's name ("Actions, resources, and condition keys
# for Amazon S3"): DeleteBucketLifecycle is authorised by s3:PutLifecycleConfiguration.
IAM_ACTION_OF: dict[tuple[str, str], str] = {
    ("s3", "ListBuckets"): "s3:ListAllMyBuckets",
    ("s3", "GetBucketLifecycleConfiguration"): "s3:GetLifecycleConfiguration",
    ("s3", "PutBucketLifecycleConfiguration"): "s3:PutLifecycleConfiguration",
    ("s3", "DeleteBucketLifecycle"): "s3:PutLifecycleConfiguration",
    ("s3", "ListMultipartUploads"): "s3:ListBucketMultipartUploads",
    ("s3", "ListParts"): "s3:ListMultipartUploadParts",
}

# Modules that never call a scanned account or the operator's AWS account: the demo world
# (cloudsweep/demo/, a package prefix) builds its emulated accounts on a local moto server.
EXCLUDED_MODULES = frozenset({"cloudsweep/aws/emulator.py", "cloudsweep/demo/"})


@dataclass(frozen=True, order=True)
class Call:
    service: str  # botocore service name (elbv2)
    operation: str  # API name (DescribeLoadBalancers)
    module: str

    @property
    def action(self) -> str:
        named = IAM_ACTION_OF.get((self.service, self.operation))
        return named or f"{iam_prefix(self.service)}:{self.operation}"


@functools.cache
def _session() -> Any:
    return botocore.session.get_session()


@functools.cache
def services() -> frozenset[str]:
    return frozenset(_session().get_available_services())


@functools.cache
def iam_prefix(service: str) -> str:
    metadata = _session().get_service_model(service).metadata
    prefix = metadata.get("signingName") or metadata["endpointPrefix"]
    return _IAM_PREFIX.get(prefix, prefix)


@functools.cache
def operations(service: str) -> dict[str, str]:
    """Python name and API name -> API name, for every operation of ``service``."""
    model = _session().get_service_model(service)
    names: dict[str, str] = {}
    for operation in model.operation_names:
        names[xform_name(operation)] = operation
        names[operation] = operation
    return names


@functools.cache
def waiters(service: str) -> dict[str, str]:
    """Python waiter name -> the API name of the operation it polls."""
    try:
        model = _session().get_waiter_model(service)
    except Exception:  # botocore raises DataNotFoundError for services without waiters
        return {}
    return {xform_name(name): model.get_waiter(name).operation for name in model.waiter_names}


def _strings(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _method_calls(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node.func.attr


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _named_services(tree: ast.AST) -> set[str]:
    return {s for s in _strings(tree) if s in services()}


def _imported_modules(tree: ast.AST, root: Path) -> Iterator[Path]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            path = root.joinpath(*node.module.split(".")).with_suffix(".py")
            if node.module.startswith("cloudsweep.") and path.is_file():
                yield path


def module_calls(path: Path, name: str, root: Path | None = None) -> set[Call]:
    tree = _parse(path)
    strings = set(_strings(tree))
    scope = _named_services(tree)
    for imported in _imported_modules(tree, root or path.parent):
        scope |= _named_services(_parse(imported))
    in_scope = sorted(scope)
    methods = set(_method_calls(tree))
    found: set[Call] = set()
    for service in in_scope:
        ops = operations(service)
        for word in strings | methods:
            if word in ops and (word in methods or word in strings):
                # A PascalCase API name only counts as a string; a Python name either way.
                if word[0].isupper() and word not in strings:
                    continue
                found.add(Call(service, ops[word], name))
        for word, operation in waiters(service).items():
            if word in strings:
                found.add(Call(service, operation, name))
    return found


def package_calls(root: Path, exclude: Iterable[str] = EXCLUDED_MODULES) -> set[Call]:
    """Every AWS operation the package under ``root`` (``operator/``) calls."""
    skipped = set(exclude)
    calls: set[Call] = set()
    for path in sorted((root / "cloudsweep").rglob("*.py")):
        name = path.relative_to(root).as_posix()
        if name not in skipped and not any(
            prefix.endswith("/") and name.startswith(prefix) for prefix in skipped
        ):
            calls |= module_calls(path, name, root)
    return calls
