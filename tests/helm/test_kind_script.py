"""scripts/e2e-kind.sh, run against stand-ins for docker, kind, kubectl and helm.

No cluster is needed: the stand-ins record every call and answer the few queries the script makes
(the runs' names, the countdown run's phase and progress, the worker pods). The real thing runs
where Docker and kind exist (`scripts/e2e-kind.sh`).

Cases:
- `--help` documents the options; an unknown argument is refused;
- the script creates the cluster, builds and loads both images, installs the chart with the bundled
  Redis, applies examples/k8s/, waits for every run to reach Succeeded, reruns the countdown,
  deletes exactly one of its worker pods once it is Running with progress, waits for Succeeded,
  runs `helm test`, and deletes the cluster it created;
- `--keep` leaves the cluster; KIND_CLUSTER and IMAGE_TAG are honoured, and with a different tag
  the example Workflows are pointed at the freshly built image;
- a run that does not succeed fails the script, with diagnostics.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helm.helmchart import REPO, run_kind_script

SCRIPT = REPO / "scripts" / "e2e-kind.sh"


def _index(lines: list[str], fragment: str) -> int:
    found = [i for i, line in enumerate(lines) if fragment in line]
    assert found, f"no call with {fragment!r} in:\n" + "\n".join(lines)
    return found[0]


def test_help_and_bad_arguments() -> None:
    help_text = subprocess.run(
        ["bash", str(SCRIPT), "--help"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    for word in ("--keep", "KIND_CLUSTER", "IMAGE_TAG", "TIMEOUT"):
        assert word in help_text
    bad = subprocess.run(
        ["bash", str(SCRIPT), "--nope"], capture_output=True, text=True, timeout=30, check=False
    )
    assert bad.returncode == 2 and "unknown argument" in bad.stderr


def test_full_run_in_order(tmp_path: Path) -> None:
    proc, calls = run_kind_script(tmp_path)
    assert proc.returncode == 0, proc.stderr
    order = [
        "kind create cluster --name floxide-e2e",
        "docker build -t floxide:0.1.0 .",
        "docker build -f examples/k8s/Dockerfile --build-arg FLOXIDE_IMAGE=floxide:0.1.0"
        " -t floxide-examples:0.1.0 .",
        "kind load docker-image floxide:0.1.0 floxide-examples:0.1.0 --name floxide-e2e",
        "helm upgrade --install floxide helm/floxide",
        "apply -f examples/k8s/",
        "wait --for=jsonpath={.status.phase}=Succeeded workflowrun/branching-big",
        "wait --for=jsonpath={.status.phase}=Succeeded workflowrun/countdown",
        "delete -f examples/k8s/run-countdown.yaml",
        "apply -f examples/k8s/run-countdown.yaml",
        "delete pod countdown-worker-b --wait=false",
        "helm test floxide",
        "kind delete cluster --name floxide-e2e",
    ]
    positions = [_index(calls, fragment) for fragment in order]
    assert positions == sorted(positions), calls
    install = calls[_index(calls, "helm upgrade --install")]
    assert "--set redis.enabled=true" in install and "--wait" in install
    assert sum("delete pod" in line for line in calls) == 1
    assert sum("workflowrun/countdown" in line and "wait" in line for line in calls) == 2
    assert "end-to-end check passed" in proc.stderr


def test_keep_and_overrides(tmp_path: Path) -> None:
    proc, calls = run_kind_script(tmp_path, "--keep", KIND_CLUSTER="mine", IMAGE_TAG="dev")
    assert proc.returncode == 0, proc.stderr
    assert not any(line.startswith("kind delete") for line in calls)
    _index(calls, "kind create cluster --name mine")
    _index(calls, "docker build -t floxide:dev .")
    _index(calls, "kind load docker-image floxide:dev floxide-examples:dev --name mine")
    _index(calls, "--set image.tag=dev --set tests.image.tag=dev")
    applied = (tmp_path / "applied.yaml").read_text()
    assert "image: floxide-examples:dev" in applied
    assert "image: floxide-examples:0.1.0" not in applied
    assert "cluster kept" in proc.stderr


def test_a_run_that_does_not_succeed_fails_the_script(tmp_path: Path) -> None:
    proc, calls = run_kind_script(tmp_path, FAIL_RUN="branching-big")
    assert proc.returncode != 0
    assert "workflowrun/branching-big did not reach Succeeded" in proc.stderr
    _index(calls, "describe workflowruns")  # diagnostics
    _index(calls, "kind delete cluster --name floxide-e2e")
    assert not any("delete pod" in line for line in calls)


@pytest.mark.parametrize("tool", ["docker", "kind", "kubectl"])
def test_missing_tools_are_named(tmp_path: Path, tool: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "kind", "kubectl", "helm"):
        if name != tool:
            (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
            (bin_dir / name).chmod(0o755)
    for needed in ("bash", "date", "sed", "printf", "dirname"):
        path = subprocess.run(
            ["sh", "-c", f"command -v {needed}"], capture_output=True, text=True, check=False
        )
        if path.stdout.strip().startswith("/"):
            (bin_dir / needed).symlink_to(path.stdout.strip())
    proc = subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT)],
        env={"PATH": str(bin_dir), "HELM": "helm", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert f"{tool} is required" in proc.stderr
