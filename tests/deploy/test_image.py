"""The operator image: Dockerfile rules, pinned dependencies, and a real build where Docker is."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def _docker_engine() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    result = subprocess.run([docker, "info"], capture_output=True, timeout=60, check=False)
    return docker if result.returncode == 0 else None


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[str, str]]:
    docker = _docker_engine()
    if docker is None:
        pytest.skip("no Docker engine on this machine")
    tag = f"cloudsweep-test:{uuid.uuid4().hex[:12]}"
    subprocess.run([docker, "build", "-t", tag, str(REPO)], check=True, timeout=1800)
    try:
        yield docker, tag
    finally:
        subprocess.run([docker, "rmi", "-f", tag], check=False, timeout=120)


@pytest.mark.slow
def test_image_runs_read_only_as_non_root(image: tuple[str, str]) -> None:
    docker, tag = image
    user = subprocess.run(
        [docker, "image", "inspect", "-f", "{{.Config.User}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert user == "10001:10001"
    run = [docker, "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    run += ["--security-opt", "no-new-privileges", tag]
    result = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "operator" in result.stdout
    result = subprocess.run(
        [
            *run[:-1],
            "--entrypoint",
            "python",
            tag,
            "-c",
            "from cloudsweep.store import migrate; print(migrate.migrations_dir())",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/opt/cloudsweep/share/cloudsweep/migrations"
