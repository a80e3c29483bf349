"""Kubernetes RBAC for tests: what a recorded API request needs, and whether rules allow it.

Used to check the operator's ClusterRole against the requests the operator really made to the
emulated API server (KMock records every one), not against a list written by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Need:
    """One RBAC permission a request needs: verb on group/resource (optionally one name)."""

    group: str
    resource: str  # with the subresource: "awsaccounts/status"
    verb: str
    name: str | None = None

    def __str__(self) -> str:
        where = f"{self.group or 'core'}/{self.resource}" + (f"/{self.name}" if self.name else "")
        return f"{self.verb} {where}"


def need(method: str, path: str, params: Mapping[str, str]) -> Need | None:
    """The permission an API request needs; None for discovery (allowed to everyone)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None  # /version, /api, /apis, /openapi...
    if not rest:
        return None  # the group version's resource list
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource: RBAC rules do not name the namespace
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2:]
    method = method.upper()
    if method == "GET":
        verb = "get" if name else ("watch" if params.get("watch") in ("true", "1") else "list")
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]
    full = "/".join([resource, *sub])
    return Need(group, full, verb, name if verb not in ("create", "list", "watch") else None)


def permits(rules: Iterable[Mapping[str, Any]], wanted: Need) -> bool:
    for rule in rules:
        if wanted.group not in rule.get("apiGroups", []) and "*" not in rule.get("apiGroups", []):
            continue
        if wanted.resource not in rule.get("resources", []):
            continue
        if wanted.verb not in rule.get("verbs", []):
            continue
        names = rule.get("resourceNames")
        if names and wanted.name not in names:
            continue
        return True
    return False


def grants(rules: Iterable[Mapping[str, Any]]) -> set[Need]:
    """Every (group, resource, verb, name) the rules grant; name None for any object."""
    found = set()
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    for name in rule.get("resourceNames") or [None]:
                        found.add(Need(group, resource, verb, name))
    return found


def unused(rules: Iterable[Mapping[str, Any]], used: Iterable[Need]) -> set[Need]:
    """The grants no request in ``used`` needed."""
    used = list(used)
    return {
        grant
        for grant in grants(rules)
        if not any(
            (u.group, u.resource, u.verb) == (grant.group, grant.resource, grant.verb)
            and grant.name in (None, u.name)
            for u in used
        )
    }
