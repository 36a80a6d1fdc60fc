"""Helpers for the Helm chart tests: run the real helm binary, render the chart, look at manifests.

The chart is rendered by ``.tools/bin/helm`` (installed by ``scripts/install-helm.sh``). Without it
the tests skip on a workstation and fail in CI (``CI=true``): a chart that was never rendered must not
pass as tested.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "floxide"
HELM = REPO / ".tools" / "bin" / "helm"
KUBE_VERSION = "1.30.0"
RELEASE = "fx"
NAMESPACE = "floxide-system"

VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    **{path.name.removesuffix("-values.yaml"): path for path in sorted((CHART / "ci").glob("*-values.yaml"))},
}

# Kinds that carry a pod template under spec.template.
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip on a workstation, fail in CI, when a tool the tests need is missing."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing tool is a failure, not a skip)")
    pytest.skip(reason)


class HelmError(Exception):
    """helm exited non-zero; the message is its standard error."""


@dataclass(frozen=True)
class Rendered:
    """The manifests of one `helm template` call, hooks included."""

    docs: tuple[dict[str, Any], ...]

    def kinds(self) -> set[str]:
        return {doc["kind"] for doc in self.docs}

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [doc for doc in self.all(kind) if doc["metadata"]["name"].endswith(name_suffix)]
        names = [doc["metadata"]["name"] for doc in found]
        assert len(found) == 1, f"expected one {kind} named *{name_suffix}, found {names}"
        return found[0]

    def has(self, kind: str, name_suffix: str = "") -> bool:
        return any(doc["metadata"]["name"].endswith(name_suffix) for doc in self.all(kind))

    def pod_specs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(kind/name, pod spec) of every Pod and every pod template."""
        for doc in self.docs:
            label = f"{doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] == "Pod":
                yield label, doc["spec"]
            elif doc["kind"] in POD_TEMPLATE_KINDS:
                yield label, doc["spec"]["template"]["spec"]


def run_helm(*args: str) -> str:
    """Runs helm and returns its standard output; raises HelmError with its message on failure."""
    require(HELM.is_file() and os.access(HELM, os.X_OK), f"{HELM} is missing: run scripts/install-helm.sh")
    proc = subprocess.run(
        [str(HELM), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


def _set_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@functools.cache
def _template(
    values_files: tuple[str, ...], set_values: tuple[tuple[str, str], ...], namespace: str, release: str
) -> Rendered:
    args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION]
    for path in values_files:
        args += ["--values", path]
    for key, value in set_values:
        args += ["--set", f"{key}={value}"]
    docs = tuple(doc for doc in yaml.safe_load_all(run_helm(*args)) if doc)
    return Rendered(docs)


def render_chart(
    *values_files: Path | str | None, namespace: str = NAMESPACE, release: str = RELEASE, **set_values: Any
) -> Rendered:
    """`helm template` of the chart with values files and `--set` values (keys are dotted paths)."""
    files = tuple(str(path) for path in values_files if path is not None)
    sets = tuple(sorted((key, _set_value(value)) for key, value in set_values.items()))
    return _template(files, sets, namespace, release)
