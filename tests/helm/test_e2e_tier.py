"""tests/e2e without a cluster: its settings, its install values, and its fixture's failure paths.

The tier itself needs a real cluster. Here it runs in a child pytest against stand-ins for kubectl
and helm that record every call (kubectl answers as a cluster whose operator crash-loops), so that
what the tier does when things go wrong is checked on every machine.

Cases:
- every ``FLOXIDE_E2E_*`` variable the tier reads is documented in tests/e2e/conftest.py;
- image references split into repository, tag and digest (a registry port is not a tag); the
  values the session installs the chart with render (the real helm, the chart's schema), with
  ``FLOXIDE_E2E_REDIS_IMAGE`` reaching the Redis StatefulSet and the default leaving the chart's;
- a failed ``helm upgrade --install`` that takes longer than the suite's pytest timeout fails the
  tier with helm's message, the pods, events and operator logs, then uninstalls the release and
  deletes the namespace (and no pytest timeout interrupts it);
- a test that overruns ``FLOXIDE_E2E_TEST_TIMEOUT`` fails with a timeout, its report carries the
  diagnostics, and the cleanup still runs: runs and Workflows deleted, leftovers' finalizers
  removed, release uninstalled, namespace deleted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.kubecluster import chart_values, image_values, split_image
from tests.helm.helmchart import CHART, REPO, render_chart, run_helm

E2E = REPO / "tests" / "e2e"

KUBECTL = r"""#!/usr/bin/env bash
echo "kubectl $*" >> "$CALLS"
case "$*" in
  *"get --raw /version"*) echo '{"major": "1", "minor": "30"}';;
  # No CRDs until the chart is installed: the session installs them.
  *"get crd workflows.floxide.io"*) grep -q "^helm upgrade" "$CALLS" || { echo "NotFound" >&2; exit 1; };;
  *"get workflowruns,workflows -o name"*) echo "workflowrun.floxide.io/stuck";;
  *"get workflows,workflowruns"*) echo "error: the server doesn't have a resource type" >&2; exit 1;;
  *"get deployments,statefulsets,pods,pvc"*) echo "pod/fx-operator-5d9   0/1   CrashLoopBackOff   4";;
  *"get events"*) echo "Warning   BackOff   pod/fx-operator-5d9   Back-off restarting failed container";;
  *"logs deployment/"*"--previous"*) echo "previous operator: Redis refused the connection";;
  *"logs deployment/"*) echo "operator: starting";;
  *" apply "*) sleep "${APPLY_SLEEP:-0}";;
esac
exit 0
"""

HELM = r"""#!/usr/bin/env bash
echo "helm $*" >> "$CALLS"
case "$1" in
  upgrade)
    sleep "${HELM_SLEEP:-0}"
    if [ -n "${HELM_FAIL:-}" ]; then
      echo "Error: INSTALLATION FAILED: timed out waiting for the condition" >&2
      exit 1
    fi;;
esac
exit 0
"""


def run_tier(
    tmp_path: Path, *pytest_args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs pytest on tests/e2e with the stand-ins; the process and the recorded calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(KUBECTL)
    (bin_dir / "helm").write_text(HELM)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    calls = tmp_path / "calls.log"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("FLOXIDE_E2E_", "PYTEST_"))
    }
    environment.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        CALLS=str(calls),
        KUBECONFIG=str(kubeconfig),
        FLOXIDE_E2E_HELM=str(bin_dir / "helm"),
        CI="",
        **env,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(E2E), "-p", "no:cacheprovider", "-rA", *pytest_args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return proc, (calls.read_text().splitlines() if calls.exists() else [])


def _count(calls: list[str], fragment: str) -> int:
    return sum(fragment in line for line in calls)


def _first(calls: list[str], fragment: str) -> int:
    found = [i for i, line in enumerate(calls) if fragment in line]
    assert found, f"no call with {fragment!r} in:\n" + "\n".join(calls)
    return found[0]


def test_every_setting_is_documented() -> None:
    docstring = (E2E / "conftest.py").read_text().split('"""')[1]
    read = {
        name for path in E2E.glob("*.py") for name in re.findall(r"FLOXIDE_E2E_[A-Z_]+", path.read_text())
    }
    assert {"FLOXIDE_E2E_REDIS_IMAGE", "FLOXIDE_E2E_TIMEOUT", "FLOXIDE_E2E_TEST_TIMEOUT"} <= read
    for name in sorted(read):
        assert f"``{name}`` —" in docstring, f"{name} is not documented in tests/e2e/conftest.py"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("redis:7.2-alpine", ("redis", "7.2-alpine", "")),
        ("floxide", ("floxide", "", "")),
        ("mirror.example:5000/library/redis", ("mirror.example:5000/library/redis", "", "")),
        ("mirror.example:5000/library/redis:7", ("mirror.example:5000/library/redis", "7", "")),
        ("redis@sha256:" + "a" * 64, ("redis", "", "sha256:" + "a" * 64)),
        ("redis:7.2@sha256:" + "b" * 64, ("redis", "7.2", "sha256:" + "b" * 64)),
    ],
)
def test_image_references_split(reference: str, expected: tuple[str, str, str]) -> None:
    assert split_image(reference) == expected


def test_image_values() -> None:
    assert image_values("redis.image", "mirror:5000/redis") == [
        "--set-string", "redis.image.repository=mirror:5000/redis", "--set-string", "redis.image.tag=latest",
    ]  # fmt: skip
    digest = "sha256:" + "c" * 64
    assert image_values("redis.image", f"redis@{digest}") == [
        "--set-string", "redis.image.repository=redis", "--set-string", f"redis.image.digest={digest}",
    ]  # fmt: skip


def _template(flags: list[str]) -> list[dict[str, object]]:
    import yaml

    output = run_helm("template", "fxabc", str(CHART), "--namespace", "floxide-e2e-abc", *flags)
    return [doc for doc in yaml.safe_load_all(output) if doc]


def _image(docs: list[dict[str, object]], kind: str, name: str) -> str:
    for doc in docs:
        metadata = doc["metadata"]
        assert isinstance(metadata, dict)
        if doc["kind"] == kind and metadata["name"] == name:
            spec = doc["spec"]
            assert isinstance(spec, dict)
            pod = spec["template"]["spec"] if kind != "Pod" else spec
            return str(pod["containers"][0]["image"])
    raise AssertionError(f"no {kind}/{name}")


def test_the_install_values_render() -> None:
    render_chart()  # skips (or fails in CI) without .tools/bin/helm
    flags = chart_values(
        release="fxabc", crds=True, image="floxide:dev", examples_image="floxide-examples:7",
        redis_image="mirror.example:5000/library/redis:7",
    )  # fmt: skip
    docs = _template(flags)
    assert _image(docs, "StatefulSet", "fxabc-redis") == "mirror.example:5000/library/redis:7"
    assert _image(docs, "Deployment", "fxabc-operator") == "floxide:dev"
    assert _image(docs, "Pod", "fxabc-test") == "floxide-examples:7"

    default = _template(
        chart_values(release="fxabc", crds=False, image="floxide:0.1.0", examples_image="floxide-examples:1")
    )
    assert _image(default, "StatefulSet", "fxabc-redis") == "redis:7.2-alpine"
    assert not any(doc["kind"] == "CustomResourceDefinition" for doc in default)


def test_a_failed_install_fails_the_tier_with_diagnostics_and_is_removed(tmp_path: Path) -> None:
    # helm takes 3 s to fail; the suite's pytest timeout is set to 1 s: it must not interrupt the fixture.
    proc, calls = run_tier(tmp_path, "-o", "timeout=1", HELM_FAIL="1", HELM_SLEEP="3")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "2 errors" in output, output
    assert "Timeout" not in output, output
    for fact in (
        "INSTALLATION FAILED: timed out waiting for the condition",
        "CrashLoopBackOff",
        "Back-off restarting failed container",
        "previous operator: Redis refused the connection",
    ):
        assert fact in output, fact
    install = calls[_first(calls, "helm upgrade --install")]
    assert "--wait --timeout 300s" in install
    assert "--set crds.enabled=true" in install
    assert "redis.image" not in install  # the chart's default
    assert _count(calls, "helm upgrade") == 1  # the session fixture is set up once
    diagnosed = _first(calls, "logs deployment/")
    assert diagnosed < _first(calls, "helm uninstall") < _first(calls, "delete namespace floxide-e2e-")
    assert _count(calls, "helm uninstall") == 1
    assert _count(calls, "delete namespace") == 1


def test_a_test_that_overruns_its_timeout_fails_and_the_cleanup_runs(tmp_path: Path) -> None:
    proc, calls = run_tier(
        tmp_path, "-k", "test_examples_succeed",
        FLOXIDE_E2E_TEST_TIMEOUT="3", FLOXIDE_E2E_TIMEOUT="2", APPLY_SLEEP="30",
        FLOXIDE_E2E_REDIS_IMAGE="mirror.example/redis:7.2",
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "1 failed" in output and "Timeout (>3.0s)" in output, output
    assert "cluster diagnostics" in output and "CrashLoopBackOff" in output, output
    install = calls[_first(calls, "helm upgrade --install")]
    assert "--set-string redis.image.repository=mirror.example/redis" in install
    assert "--set-string redis.image.tag=7.2" in install
    # The cleanup, in order: runs and Workflows, finalizers of what is left, release, namespace.
    order = [
        "delete workflowruns,workflows --all",
        "patch workflowrun.floxide.io/stuck --type=merge",
        "helm uninstall fx",
        "delete clusterroles,clusterrolebindings,customresourcedefinitions -l app.kubernetes.io/instance=fx",
        "delete namespace floxide-e2e-",
    ]
    positions = [_first(calls, fragment) for fragment in order]
    assert positions == sorted(positions), calls


def test_the_test_timeout_must_exceed_the_step_timeout(tmp_path: Path) -> None:
    proc, calls = run_tier(tmp_path, FLOXIDE_E2E_TEST_TIMEOUT="60", FLOXIDE_E2E_TIMEOUT="300")
    assert proc.returncode != 0
    assert "FLOXIDE_E2E_TEST_TIMEOUT (60) must be larger than FLOXIDE_E2E_TIMEOUT (300)" in proc.stderr
    assert calls == []
