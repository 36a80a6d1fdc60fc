"""Helpers of the e2e tier: is a cluster there, helm, and a namespace of a real cluster to work in.

The settings (``FLOXIDE_E2E_*``) are read here, once, and documented in ``conftest.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "floxide"
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
TIMEOUT = float(os.environ.get("FLOXIDE_E2E_TIMEOUT", "300"))
"""Seconds to wait for each step: the chart's install (``helm --wait --timeout``), each run, ..."""
TEST_TIMEOUT = float(os.environ.get("FLOXIDE_E2E_TEST_TIMEOUT", str(5 * TIMEOUT)))
"""pytest-timeout's limit for each e2e test function (not its fixtures: see conftest.py)."""
IMAGE = os.environ.get("FLOXIDE_E2E_IMAGE", "floxide:0.1.0")
EXAMPLES_IMAGE = os.environ.get("FLOXIDE_E2E_EXAMPLES_IMAGE", "floxide-examples:0.1.0")
REDIS_IMAGE = os.environ.get("FLOXIDE_E2E_REDIS_IMAGE", "")
"""The bundled Redis' image; empty: the chart's default (values.yaml, ``redis.image``)."""

DIAGNOSTICS_HEADER = "--- cluster diagnostics ---"
"""Starts every diagnostics text, so that a failure report carries it only once."""
_TAIL = 4000
"""Characters kept of each diagnostics command's output (its end)."""


def cluster_problem() -> str | None:
    """Why the e2e tier cannot run here (None when a cluster answers)."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        return "KUBECONFIG is not set: no cluster to run the e2e tier on"
    if shutil.which("kubectl") is None:
        return "kubectl is not installed"
    try:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/version"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return f"the cluster of KUBECONFIG={kubeconfig} does not answer"
    if result.returncode != 0:
        return f"the cluster of KUBECONFIG={kubeconfig} does not answer: {result.stderr.strip()[:300]}"
    return None


def helm_binary() -> str:
    """``$FLOXIDE_E2E_HELM``, else .tools/bin/helm (installed on demand), else helm on PATH."""
    configured = os.environ.get("FLOXIDE_E2E_HELM")
    if configured:
        return configured
    local = ROOT / ".tools" / "bin" / "helm"
    if local.exists():
        return str(local)
    try:
        installed = subprocess.run(["bash", "scripts/install-helm.sh"], cwd=ROOT, timeout=300).returncode == 0
    except subprocess.TimeoutExpired:
        installed = False
    if installed:
        return str(local)
    found = shutil.which("helm")
    if found is None:
        pytest.fail("helm is needed: scripts/install-helm.sh failed and there is no helm on PATH")
    return found


def split_image(reference: str) -> tuple[str, str, str]:
    """``repository[:tag][@digest]`` as (repository, tag, digest); a registry port is not a tag."""
    name, _, digest = reference.partition("@")
    colon, slash = name.rfind(":"), name.rfind("/")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def image_values(key: str, reference: str) -> list[str]:
    """``--set-string`` flags that point the chart's image ``key`` (e.g. ``redis.image``) at ``reference``.

    ``--set-string``: a tag such as ``7`` must stay a string (the schema says so). A reference with
    neither tag nor digest means ``latest``, as for docker; with a digest only, the chart's tag stays
    (the digest decides what is pulled).
    """
    repository, tag, digest = split_image(reference)
    values = [f"{key}.repository={repository}"]
    if tag or not digest:
        values.append(f"{key}.tag={tag or 'latest'}")
    if digest:
        values.append(f"{key}.digest={digest}")
    flags: list[str] = []
    for value in values:
        flags += ["--set-string", value]
    return flags


def chart_values(
    *, release: str, crds: bool, image: str, examples_image: str, redis_image: str = ""
) -> list[str]:
    """The values an e2e session installs the chart with, as helm flags."""
    flags = [
        "--set", f"fullnameOverride={release}",
        *image_values("image", image),
        *image_values("tests.image", examples_image),
        "--set", "rbac.clusterWide=false",
        "--set", f"crds.enabled={'true' if crds else 'false'}",
        "--set", "crds.keep=false",
        "--set", "redis.enabled=true",
        "--set", "logging.format=text",
    ]  # fmt: skip
    if redis_image:
        flags += image_values("redis.image", redis_image)
    return flags


def _run(command: list[str], *, timeout: float, input: str | None = None) -> tuple[int, str]:
    """Runs ``command``; (exit status, stdout and stderr). A command that overruns ``timeout`` is
    killed and reported with status -1; a missing binary with status 127."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, input=input, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = "".join(
            part.decode(errors="replace") if isinstance(part, bytes) else part
            for part in (exc.stdout, exc.stderr)
            if part
        )
        return -1, f"{output}\n(killed after {timeout:g}s)"
    except OSError as exc:
        return 127, str(exc)
    return result.returncode, result.stdout + result.stderr


@dataclass
class Cluster:
    """A namespace of a real cluster, with the chart installed in it by :meth:`install`."""

    namespace: str
    release: str
    kubeconfig: str
    helm: str
    crds: bool = False
    """Whether this session installs the CRDs (no one had yet); they go with the release then."""

    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120) -> str:
        command = ["kubectl", "--kubeconfig", self.kubeconfig, "--namespace", self.namespace, *args]
        result = subprocess.run(command, capture_output=True, text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _kubectl(self, *args: str, timeout: float = 60, namespaced: bool = True) -> tuple[int, str]:
        """kubectl that never raises (for diagnostics and cleanup): (status, output)."""
        scope = ["--namespace", self.namespace] if namespaced else []
        return _run(["kubectl", "--kubeconfig", self.kubeconfig, *scope, *args], timeout=timeout)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        output = self.kubectl("get", kind, name, "-o", "json", "--ignore-not-found")
        return json.loads(output) if output.strip() else None

    def wait_for(self, check: Callable[[], Any], *, what: str, timeout: float = TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {what}:\n{self.diagnostics()}"
                )
            time.sleep(2)

    def operator_log(self) -> str:
        return self.kubectl("logs", f"deployment/{self.release}-operator", "--tail=-1", check=False)

    # -- install and remove ----------------------------------------------------------------------

    def install_command(self) -> list[str]:
        """``helm upgrade --install --wait``: the chart, the images under test, the bundled Redis.

        Not ``--atomic``: its rollback would delete the pods before :meth:`install` could read what
        went wrong; :meth:`remove` uninstalls a failed release instead.
        """
        return [
            self.helm, "upgrade", "--install", self.release, str(CHART),
            "--kubeconfig", self.kubeconfig, "--namespace", self.namespace, "--create-namespace",
            *chart_values(
                release=self.release, crds=self.crds, image=IMAGE, examples_image=EXAMPLES_IMAGE,
                redis_image=REDIS_IMAGE,
            ),
            "--wait", "--timeout", f"{int(TIMEOUT)}s",
        ]  # fmt: skip

    def install(self) -> str | None:
        """Installs the chart; None, or why it failed: helm's output and the cluster's diagnostics
        (read now, before :meth:`remove` takes the pods away)."""
        # helm stops waiting after TIMEOUT seconds; the extra minute is for its own calls.
        status, output = _run(self.install_command(), timeout=TIMEOUT + 60)
        if status == 0:
            return None
        return (
            f"helm upgrade --install of release {self.release} in namespace {self.namespace} failed "
            f"(exit status {status}):\n{output.strip()}\n{self.diagnostics()}"
        )

    def remove(self) -> list[str]:
        """Removes everything the session made, whatever state it is in; what could not be removed.

        Runs and Workflows first, while the operator may still remove their finalizers; whatever
        is left then loses its finalizers (a crash-looping or never-started operator cannot remove
        them, and they would hold the namespace in Terminating forever). Then the release (a failed
        one too), the release's cluster-scoped objects should helm have left any, and the namespace.
        """
        problems: list[str] = []
        if self.crds_exist():
            self._kubectl("delete", "workflowruns,workflows", "--all", "--timeout=120s", timeout=180)
            _, left = self._kubectl("get", "workflowruns,workflows", "-o", "name", timeout=60)
            for name in left.split():
                if "/" not in name:
                    continue
                status, output = self._kubectl(
                    "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', timeout=60
                )
                if status != 0 and "NotFound" not in output and "not found" not in output:
                    problems.append(f"could not remove the finalizers of {name}: {output.strip()}")
        status, output = _run(
            [self.helm, "uninstall", self.release, "--kubeconfig", self.kubeconfig,
             "--namespace", self.namespace, "--wait", "--timeout", "300s"],
            timeout=360,
        )  # fmt: skip
        if status != 0 and "not found" not in output:
            problems.append(f"helm uninstall {self.release} failed: {output.strip()}")
        kinds = "clusterroles,clusterrolebindings" + (",customresourcedefinitions" if self.crds else "")
        selector = f"app.kubernetes.io/instance={self.release},app.kubernetes.io/part-of=floxide"
        status, output = self._kubectl(
            "delete", kinds, "-l", selector, "--ignore-not-found", "--timeout=120s",
            namespaced=False, timeout=180,
        )  # fmt: skip
        if status != 0:
            problems.append(f"cluster-scoped objects of {self.release} were not deleted: {output.strip()}")
        status, output = self._kubectl(
            "delete", "namespace", self.namespace, "--ignore-not-found", "--timeout=180s",
            namespaced=False, timeout=240,
        )  # fmt: skip
        if status != 0:
            problems.append(f"namespace {self.namespace} was not deleted: {output.strip()}")
        return problems

    def crds_exist(self) -> bool:
        return crds_installed(self.kubeconfig)

    # -- diagnostics -------------------------------------------------------------------------------

    def diagnostics(self) -> str:
        """What the namespace looks like: pods, events, the operator's and Redis' logs.

        Each part is its own command, so that one that fails (no CRDs yet, no operator pod) does not
        hide the others.
        """
        operator = f"deployment/{self.release}-operator"
        commands = [
            ("get", "workflows,workflowruns", "-o", "wide"),
            ("get", "deployments,statefulsets,pods,pvc", "-o", "wide"),
            ("get", "events", "--sort-by=.lastTimestamp"),
            ("describe", "pods"),
            ("logs", operator, "--all-containers", "--tail=200"),
            ("logs", operator, "--all-containers", "--previous", "--tail=200"),
            ("logs", f"statefulset/{self.release}-redis", "--tail=50"),
        ]
        parts = [DIAGNOSTICS_HEADER]
        for args in commands:
            status, output = self._kubectl(*args, timeout=60)
            text = output.strip() or "(nothing)"
            if len(text) > _TAIL:
                text = "..." + text[-_TAIL:]
            suffix = f" (exit status {status})" if status != 0 else ""
            parts.append(f"$ kubectl --namespace {self.namespace} {' '.join(args)}{suffix}\n{text}")
        return "\n".join(parts)


def crds_installed(kubeconfig: str) -> bool:
    command = ["kubectl", "--kubeconfig", kubeconfig, "get", "crd", "workflows.floxide.io"]
    status, _ = _run(command, timeout=60)
    return status == 0
