"""The operator image: Dockerfile rules, pinned dependencies, and a real build where a container
engine (Docker or Podman) runs; elsewhere the build tests skip with that reason."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests import containers

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
TEST_ONLY = {"pytest", "mypy", "ruff", "kmock", "hypothesis", "import-linter", "boto3-stubs"}


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)", line.strip())
        assert match, f"constraints.txt: {line!r} is not name==version"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = match.group(2)
    return pins


def test_constraints_pin_every_runtime_dependency_within_its_range() -> None:
    pins = _pins()
    with (REPO / "pyproject.toml").open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    for line in dependencies:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned: python -m tests.deploy.constraints"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement.specifier}"
        )
    assert not {canonicalize_name(n) for n in TEST_ONLY} & set(pins), "test tools pinned"
    assert "cloudsweep" not in pins


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    instructions = _instructions()
    stages = [rest for word, rest in instructions if word == "FROM"]
    assert len(stages) >= 2, "the Dockerfile must be multi-stage"
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.\d+-slim", DOCKERFILE)
    users = [rest for word, rest in instructions if word == "USER"]
    assert users == ["10001:10001"], "the runtime stage runs as the numeric user 10001"
    assert ("ENTRYPOINT", '["cloudsweep"]') in instructions
    assert ("CMD", '["operator"]') in instructions
    (expose,) = [rest for word, rest in instructions if word == "EXPOSE"]
    assert set(expose.split()) == {"8080", "9090", "9443"}
    assert "--constraint constraints.txt" in DOCKERFILE
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE  # read-only root file system
    assert any(word == "HEALTHCHECK" and "/healthz" in rest for word, rest in instructions)


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set(re.findall(r"^COPY (?!--from)(.+?) \S+$", DOCKERFILE, re.MULTILINE))
    sources = {s.rstrip("/") for group in copied for s in group.split()}
    assert sources <= allowed, sources - allowed
    for path in allowed:
        assert (REPO / path).exists(), path


@pytest.mark.slow
def test_image_runs_read_only_as_non_root(container_image: containers.Image) -> None:
    engine, tag = container_image.engine, container_image.tag
    user = engine.run("image", "inspect", "-f", "{{.Config.User}}", tag).stdout.strip()
    assert user == "10001:10001"
    run = ["run", "--rm", *container_image.hardened_run_args()]
    result = engine.run(*run, tag, "--help", timeout=120)
    assert "operator" in result.stdout
    result = engine.run(
        *run,
        "--entrypoint",
        "python",
        tag,
        "-c",
        "import os; from cloudsweep.store import migrate; "
        "print(os.getuid(), migrate.migrations_dir(), os.access('/opt', os.W_OK))",
        timeout=120,
    )
    assert result.stdout.split() == [
        "10001",
        "/opt/cloudsweep/share/cloudsweep/migrations",
        "False",
    ]


@pytest.mark.slow
def test_the_image_leaves_the_demo_out_and_says_so(container_image: containers.Image) -> None:
    """moto's server (flask, cfn-lint, sympy: 190 MB and their CVEs) is the demo's, not the
    operator's: absent from the image, and asking for the demo says how to get it."""
    run = ["run", "--rm", *container_image.hardened_run_args()]
    probe = container_image.engine.run(
        *run,
        "--entrypoint",
        "python",
        container_image.tag,
        "-c",
        "import importlib.util as u; print([m for m in ('moto', 'flask', 'cfnlint') if u.find_spec(m)])",
        timeout=120,
    )
    assert probe.stdout.strip() == "[]"
    result = container_image.engine.run(
        *run, container_image.tag, "scan", "--demo", timeout=120, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pip install 'cloudsweep[demo]'" in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr
