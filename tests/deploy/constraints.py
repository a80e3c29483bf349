"""The runtime dependency closure of the installed ``cloudsweep`` package, pinned.

Writes ``constraints.txt``, which the Dockerfile installs the image's dependencies with. Regenerate
it from a virtualenv where ``pip install -e .`` resolved the versions you want to ship::

    python -m tests.deploy.constraints > constraints.txt

Only the runtime closure is written (no test extras): the ``dependencies`` of ``pyproject.toml``
followed through their own requirements, extras included (``psycopg[binary]``,
``moto[server]``), with environment markers evaluated for Linux and the running Python.
``tests/deploy/test_image.py`` checks that the file pins exactly this closure.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _environment(extra: str) -> dict[str, str]:
    env = dict(default_environment())
    env.update(sys_platform="linux", platform_system="Linux", os_name="posix", extra=extra)
    return env


def root_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """The project's runtime ``dependencies`` (read from pyproject.toml, not stale metadata)."""
    with pyproject.open("rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    return dependencies


def closure(pyproject: Path = PYPROJECT) -> dict[str, str]:
    """Canonical name -> installed version of every runtime dependency of the project."""
    pinned: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    queue: list[tuple[str, str]] = []
    _follow(root_requirements(pyproject), "", queue)
    while queue:
        name, extra = queue.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        dist = metadata.distribution(name)
        pinned[name] = dist.version
        _follow(dist.requires or [], extra, queue)
    return pinned


def _follow(requirements: list[str], extra: str, queue: list[tuple[str, str]]) -> None:
    for line in requirements:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is not None and not marker.evaluate(_environment(extra)):
            continue
        dependency = canonicalize_name(requirement.name)
        queue.append((dependency, ""))
        queue.extend((dependency, e) for e in requirement.extras)


def render(pins: dict[str, str]) -> str:
    lines = [
        "# Pinned runtime dependencies of the cloudsweep image (pip install -c constraints.txt).",
        "# Regenerate from a virtualenv with the versions to ship:",
        "#   python -m tests.deploy.constraints > constraints.txt",
    ]
    lines += [f"{name}=={version}" for name, version in sorted(pins.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(closure()))
