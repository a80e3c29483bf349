"""Rendering of the kustomizations, shared by the deploy tests."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBECTL = shutil.which("kubectl")


def kustomizations() -> list[Path]:
    """Every folder with a kustomization under deploy/ and crds/, relative to the repository."""
    found = [p.parent for p in (*DEPLOY.rglob("kustomization.yaml"), REPO / "crds" / "x")]
    found = [p for p in found if (p / "kustomization.yaml").is_file()]
    return sorted({p.relative_to(REPO) for p in found})


@functools.cache
def _render(folder: str) -> tuple[dict[str, Any], ...]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (Debian: apt-get install kubernetes-client)")
    result = subprocess.run(
        [KUBECTL, "kustomize", str(REPO / folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def render(folder: str | Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize`` renders from ``folder`` (relative to the repository)."""
    return [dict(d) for d in _render(str(folder))]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]
