"""scripts/e2e-kind.sh, run against stand-ins for docker, kind, kubectl and helm.

No cluster is needed: the stand-ins record every call and answer the few queries the script makes
(the runs' names, the countdown run's phase and progress, the worker pods). The real thing runs
where Docker and kind exist (`scripts/e2e-kind.sh`).

Cases:
- `--help` documents the options; an unknown argument is refused;
- the script creates the cluster, builds and loads both images, installs the chart with the bundled
  Redis in namespace floxide-system, applies examples/k8s/, waits for every run to reach Succeeded,
  then runs two drills on a rerun of the countdown, each once it is Running with progress, each
  followed by a wait for Succeeded: a crash (the process of exactly one countdown worker is killed
  with SIGKILL from its kind node, at the PID crictl reports for the pod's container, and the pod
  must report a restart after exit code 137) and a graceful drain (exactly one countdown worker pod
  is deleted); then it runs `helm test` and deletes the cluster it created;
- the crash drill never signals from inside the pod (`kubectl exec ... kill` cannot kill PID 1);
- the crash drill fails the script when the worker is not restarted, when it ended with another
  exit code than 137, or when crictl reports no PID (then nothing is killed);
- `--keep` leaves the cluster; KIND_CLUSTER, NAMESPACE and IMAGE_TAG are honoured, and with a
  different tag the example Workflows are pointed at the freshly built image;
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
        # crash drill
        "get pod countdown-worker-b -o jsonpath={.spec.nodeName}",
        "get pod countdown-worker-b -o jsonpath={.status.containerStatuses[0].containerID}",
        "docker exec floxide-e2e-control-plane crictl inspect --output go-template --template {{.info.pid}}"
        " 3f2a9c0d1e7b",
        "docker exec floxide-e2e-control-plane sh -c kill -9 4242",
        "get pod countdown-worker-b -o jsonpath={.status.containerStatuses[0].restartCount}"
        " {.status.containerStatuses[0].lastState.terminated.exitCode}",
        "wait --for=jsonpath={.status.phase}=Succeeded workflowrun/countdown",
        # drain drill
        "delete -f examples/k8s/run-countdown.yaml",
        "apply -f examples/k8s/run-countdown.yaml",
        "delete pod countdown-worker-b --wait=false",
        "wait --for=jsonpath={.status.phase}=Succeeded workflowrun/countdown",
        "helm test floxide",
        "kind delete cluster --name floxide-e2e",
    ]
    start = 0
    for fragment in order:  # each one after the previous one (some occur more than once)
        start += _index(calls[start:], fragment) + 1
    install = calls[_index(calls, "helm upgrade --install")]
    assert "--set redis.enabled=true" in install and "--wait" in install
    assert "--namespace floxide-system" in install
    namespaced = [line for line in calls if line.startswith("kubectl ") and "crd/" not in line]
    assert all("--namespace floxide-system" in line for line in namespaced), namespaced
    assert sum("delete pod" in line for line in calls) == 1
    assert sum("kill" in line for line in calls) == 1
    assert sum("delete -f examples/k8s/run-countdown.yaml" in line for line in calls) == 2
    assert sum("workflowrun/countdown" in line and "wait" in line for line in calls) == 3
    assert not any(line.startswith("kubectl") and " exec " in line for line in calls)
    assert "killing the worker process of pod countdown-worker-b with SIGKILL (PID 4242" in proc.stderr
    assert "end-to-end check passed" in proc.stderr


def test_keep_and_overrides(tmp_path: Path) -> None:
    proc, calls = run_kind_script(tmp_path, "--keep", KIND_CLUSTER="mine", IMAGE_TAG="dev", NAMESPACE="work")
    assert proc.returncode == 0, proc.stderr
    _index(calls, "helm upgrade --install floxide helm/floxide --kube-context kind-mine --namespace work")
    _index(calls, "kubectl --context kind-mine --namespace work delete pod countdown-worker-b")
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
    assert not any("delete pod" in line or "kill" in line for line in calls)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KILLED_STATE": "0 ", "TIMEOUT": "2"}, "was not restarted within 2s after SIGKILL"),
        ({"KILLED_STATE": "1 0"}, "ended with exit code '0', not 137 (SIGKILL)"),
    ],
    ids=["not-restarted", "graceful-exit"],
)
def test_a_worker_that_was_not_killed_fails_the_crash_drill(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    proc, calls = run_kind_script(tmp_path, **env)
    assert proc.returncode != 0
    assert message in proc.stderr
    _index(calls, "sh -c kill -9 4242")
    _index(calls, "describe workflowruns")  # diagnostics
    assert not any("delete pod" in line for line in calls)  # no drain drill after a failed crash drill


def test_no_pid_no_kill(tmp_path: Path) -> None:
    proc, calls = run_kind_script(tmp_path, WORKER_PID="")
    assert proc.returncode != 0
    assert "no host PID for container 3f2a9c0d1e7b of pod countdown-worker-b" in proc.stderr
    assert not any("kill" in line for line in calls)


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
