"""Helpers of the e2e tier: is a cluster there, helm, and a namespace of a real cluster to work in."""

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
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
TIMEOUT = float(os.environ.get("FLOXIDE_E2E_TIMEOUT", "300"))
IMAGE = os.environ.get("FLOXIDE_E2E_IMAGE", "floxide:0.1.0")
EXAMPLES_IMAGE = os.environ.get("FLOXIDE_E2E_EXAMPLES_IMAGE", "floxide-examples:0.1.0")


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
    local = ROOT / ".tools" / "bin" / "helm"
    if local.exists() or subprocess.run(["bash", "scripts/install-helm.sh"], cwd=ROOT).returncode == 0:
        return str(local)
    found = shutil.which("helm")
    if found is None:
        pytest.fail("helm is needed: scripts/install-helm.sh failed and there is no helm on PATH")
    return found


@dataclass
class Cluster:
    """A namespace of a real cluster with the chart installed in it."""

    namespace: str
    release: str
    kubeconfig: str
    helm: str

    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120) -> str:
        command = ["kubectl", "--kubeconfig", self.kubeconfig, "--namespace", self.namespace, *args]
        result = subprocess.run(command, capture_output=True, text=True, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

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

    def diagnostics(self) -> str:
        parts = [
            self.kubectl("get", "workflows,workflowruns,deployments,pods", "-o", "wide", check=False),
            self.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False)[-4000:],
            self.operator_log()[-4000:],
        ]
        return "\n".join(parts)


def crds_installed(kubeconfig: str) -> bool:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "crd", "workflows.floxide.io"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode == 0
