"""Helpers for the Helm chart tests: run the real helm binary, render the chart, look at manifests.

The chart is rendered by ``.tools/bin/helm`` (installed by ``scripts/install-helm.sh``). Without it
the tests skip on a workstation and fail in CI (``CI=true``): a chart that was never rendered must not
pass as tested.
"""

from __future__ import annotations

import functools
import os
import re
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


KIND_SCRIPT = REPO / "scripts" / "e2e-kind.sh"

# Stand-ins for scripts/e2e-kind.sh: they record every call in $CALLS and answer its queries.
# KILLED_STATE is what the killed worker's pod reports after the SIGKILL, "<restarts> <exit code>"
# (default "1 137"); WORKER_PID the PID crictl reports; FAIL_RUN a run that does not succeed.
KIND_KUBECTL = r"""#!/usr/bin/env bash
echo "kubectl $*" >> "$CALLS"
case "$*" in
  *"get workflowruns -o jsonpath={.items[*].metadata.name}"*) echo "${RUN_NAMES:-branching-big countdown}";;
  *"get workflowrun countdown -o jsonpath={.status.phase}"*) printf Running;;
  *"get workflowrun countdown -o jsonpath={.status.progress}"*) printf 4/31;;
  *"get pods -l app.kubernetes.io/component=worker"*)
    printf "examples-worker-a countdown-worker-b countdown-worker-c";;
  *"get pod "*"jsonpath={.spec.nodeName}"*) printf floxide-e2e-control-plane;;
  *"get pod "*"jsonpath={.status.containerStatuses[0].containerID}"*) printf containerd://3f2a9c0d1e7b;;
  *"get pod "*"restartCount} {"*) printf '%s' "${KILLED_STATE-1 137}";;
  *"get pod "*"restartCount}"*) printf 0;;
  *"apply -f -"*) cat >> "$APPLIED";;
  *"wait --for=jsonpath"*) [ -z "${FAIL_RUN:-}" ] || case "$*" in *"workflowrun/$FAIL_RUN "*) exit 1;; esac;;
esac
exit 0
"""
KIND_RECORDER = '#!/usr/bin/env bash\necho "{name} $*" >> "$CALLS"\nexit 0\n'
# docker also answers `crictl inspect` on the kind node: the worker container's PID there.
KIND_DOCKER = r"""#!/usr/bin/env bash
echo "docker $*" >> "$CALLS"
case "$*" in
  "exec "*" crictl inspect "*) printf '%s' "${WORKER_PID-4242}";;
esac
exit 0
"""


def run_kind_script(
    tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs scripts/e2e-kind.sh with stand-ins for docker, kind, kubectl and helm on PATH;
    returns the process and the recorded calls (`tool args...`, one per line)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text(KIND_KUBECTL)
    (bin_dir / "docker").write_text(KIND_DOCKER)
    for name in ("kind", "helm"):
        (bin_dir / name).write_text(KIND_RECORDER.format(name=name))
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    calls = tmp_path / "calls.log"
    environment = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CALLS": str(calls),
        "APPLIED": str(tmp_path / "applied.yaml"),
        "HELM": "helm",
        **env,
    }
    proc = subprocess.run(
        ["bash", str(KIND_SCRIPT), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return proc, lines


def documented_keys(text: str) -> set[str]:
    """Dotted paths of the keys in values.yaml that follow a `# --` comment block."""
    documented, stack, pending = set(), [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = True
            continue
        if stripped.startswith("#"):
            continue
        match = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
        if match:
            indent = len(match.group(1))
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, match.group(2))]
            if pending:
                documented.add(".".join(key for _, key in stack))
        pending = False
    return documented
