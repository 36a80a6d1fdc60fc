"""The image's dependency lock (requirements/image.txt): complete, hashed, in sync with pyproject.toml,
and what the Dockerfile installs.

Cases:
- every dependency the image's extras declare (base, the extras scripts/lock-image.sh compiles, the
  extras they name, and the build requirements) is pinned to one version that fits its specifier;
  every pin carries sha256 hashes; floxide itself, local paths and index options are not in it;
- the Dockerfile installs the lock with --require-hashes and --no-deps, installs floxide with
  --no-deps from the locked build tools, and builds both stages FROM ${BASE_IMAGE} (so a digest can
  pin it, as its header shows); the build context admits the lock;
- (slow, PyPI) the Dockerfile's install steps in a fresh virtual environment: the lock installs with
  hashes checked, `pip check` finds nothing missing, and every module of the three packages imports;
- (slow, PyPI) scripts/lock-image.sh reproduces the committed lock exactly: a dependency added to
  pyproject.toml without regenerating the lock fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "image.txt"
SCRIPT = ROOT / "scripts" / "lock-image.sh"
DOCKERFILE = ROOT / "Dockerfile"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
MARKER_ENVIRONMENT = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux"}


def locked() -> dict[str, tuple[str, list[str]]]:
    """Each pinned package (canonical name) -> (version, its hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            current = []
            pins[canonicalize_name(match.group(1))] = (match.group(2), current)
        elif line.strip().startswith("--hash=") and current is not None:
            current.append(line.strip().removeprefix("--hash=").rstrip(" \\"))
    return pins


def image_extras() -> list[str]:
    return re.findall(r"--extra (\w+)", SCRIPT.read_text(encoding="utf-8"))


def declared() -> list[Requirement]:
    """What the image needs: base dependencies, the locked extras (following floxide[...] within
    them), and the build requirements."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = project["project"]["optional-dependencies"]
    found = [Requirement(text) for text in project["project"]["dependencies"]]
    found += [Requirement(text) for text in project["build-system"]["requires"]]
    todo, seen = list(image_extras()), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in map(Requirement, extras[extra]):
            if canonicalize_name(requirement.name) == "floxide":
                todo += sorted(requirement.extras)
            else:
                found.append(requirement)
    return found


def test_every_dependency_of_the_image_is_pinned_with_hashes() -> None:
    # what the image serves: operator, workers, ui, and their traces
    assert image_extras() == ["operator", "ui", "otel"]
    pins = locked()
    assert len(pins) > 20
    for requirement in declared():
        if requirement.marker is not None and not requirement.marker.evaluate(MARKER_ENVIRONMENT):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {LOCK.name}: run scripts/lock-image.sh"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {name}=={version}, outside {requirement}: run scripts/lock-image.sh"
        )
    for name, (version, hashes) in pins.items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), (name, version)
    assert "floxide" not in pins
    text = LOCK.read_text(encoding="utf-8")
    for stray in ("--find-links", "--index-url", "--extra-index-url", "file://", "/work/", "/tmp/", "-e "):
        assert stray not in text, stray
    assert "#    scripts/lock-image.sh\n" in text  # the header names the command that regenerates it


def test_the_dockerfile_installs_only_the_lock() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    installs = re.findall(r"pip install [^\n]*", text)
    assert installs == [
        "pip install --require-hashes --no-deps -r requirements/image.txt",
        "pip install --no-deps --no-build-isolation . \\",
    ]
    assert "COPY requirements/image.txt ./requirements/image.txt" in text
    assert "pip uninstall --yes setuptools wheel" in text and "pip check" in text
    assert re.findall(r"^FROM .*$", text, flags=re.M) == [
        "FROM ${BASE_IMAGE} AS builder",
        "FROM ${BASE_IMAGE}",
    ]
    assert "--build-arg BASE_IMAGE=python:3.11-slim@sha256:<digest>" in text
    assert "!requirements/image.txt" in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()


def _run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=900, check=False, env=env
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _no_local_wheels() -> dict[str, str]:
    """This environment without pip options that would add packages from elsewhere than the index."""
    drop = ("PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_CONSTRAINT", "PIP_REQUIRE_VIRTUALENV")
    return {key: value for key, value in os.environ.items() if key not in drop}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_dockerfile_steps_install_a_working_image(tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = str(environment / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check"]  # (the image adds --no-cache-dir)
    env = _no_local_wheels()
    source = tmp_path / "src"  # a copy, as the image's /src: the build writes build/ and egg-info
    for part in ("floxide", "operator", "worker"):
        shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / part, source / part)
    _run(
        [*pip, "install", "--quiet", "--require-hashes", "--no-deps", "-r", str(LOCK)], cwd=tmp_path, env=env
    )
    _run([*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", "."], cwd=source, env=env)
    _run([*pip, "uninstall", "--quiet", "--yes", "setuptools", "wheel"], cwd=tmp_path, env=env)
    assert _run([*pip, "check"], cwd=tmp_path, env=env).startswith("No broken requirements")
    _run([python, "-m", "floxide.importcheck", "floxide", "floxide_operator", "floxide_worker"], cwd=tmp_path)
    installed = _run([*pip, "list", "--format=freeze"], cwd=tmp_path, env=env)
    pairs = [line.split("==", 1) for line in installed.splitlines() if "==" in line]
    versions = {canonicalize_name(name): version for name, version in pairs}
    for name, (version, _) in locked().items():
        if name not in ("setuptools", "wheel"):  # build tools, removed from the image
            assert versions.get(name) == version, (name, versions.get(name), version)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_script_reproduces_the_lock(tmp_path: Path) -> None:
    compiler = ROOT / ".venv" / "bin" / "pip-compile"
    found = shutil.which("pip-compile")
    path = str(compiler) if compiler.exists() else found
    assert path, "pip-compile is missing: install the dev extra (pip install -e '.[dev]')"
    copy = tmp_path / "image.txt"
    shutil.copy(LOCK, copy)
    env = {**_no_local_wheels(), "LOCK_FILE": str(copy), "LOCK_COMPILER": path}
    _run(["bash", str(SCRIPT)], cwd=ROOT, env=env)
    assert copy.read_text(encoding="utf-8") == LOCK.read_text(encoding="utf-8"), (
        "requirements/image.txt is out of date: run scripts/lock-image.sh and commit the result"
    )


def test_the_lock_is_for_the_python_of_the_image() -> None:
    assert "autogenerated by pip-compile with Python 3.11" in LOCK.read_text(encoding="utf-8")
    assert sys.version_info[:2] >= (3, 11)
