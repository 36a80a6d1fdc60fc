"""Secure defaults on every pod the chart renders, for every value set.

Cases, for each Pod and pod template:
- the pod runs as non-root with the RuntimeDefault seccomp profile;
- every container: no privilege escalation, not privileged, all capabilities dropped, read-only
  root filesystem, and a writable emptyDir at /tmp;
- only the operator mounts a Kubernetes API token; Redis and the test Pod do not;
- the worker ServiceAccount never automounts a token;
- no `imagePullPolicy: Always`, and every image has a pinned tag (no `latest`, no missing tag);
- no container puts a secret on its command line, and service links are off (they would inject
  FLOXIDE_REDIS_* variables into the settings namespace).
"""

from __future__ import annotations

from typing import Any

from tests.helm.helmchart import Rendered, render_chart

NEEDS_API_TOKEN = {"Deployment/fx-floxide-operator"}


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_pods_run_as_non_root_with_runtime_default_seccomp(rendered: Rendered) -> None:
    specs = list(rendered.pod_specs())
    assert specs
    for label, spec in specs:
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, label
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, label
        assert pod.get("runAsUser", 0) != 0, label


def test_containers_are_locked_down(rendered: Rendered) -> None:
    for label, spec in rendered.pod_specs():
        for container in _containers(spec):
            where = f"{label}/{container['name']}"
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("privileged", False) is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("capabilities", {}).get("add"), where
            assert context.get("runAsUser", 1) != 0, where


def test_every_container_has_a_writable_tmp(rendered: Rendered) -> None:
    for label, spec in rendered.pod_specs():
        empty_dirs = {volume["name"] for volume in spec.get("volumes", []) if "emptyDir" in volume}
        for container in _containers(spec):
            mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in empty_dirs, f"{label}/{container['name']} has no emptyDir at /tmp"


def test_only_the_operator_mounts_an_api_token(rendered: Rendered) -> None:
    for label, spec in rendered.pod_specs():
        if label in NEEDS_API_TOKEN:
            assert spec.get("automountServiceAccountToken") is True, label
        else:
            assert spec.get("automountServiceAccountToken") is False, label


def test_worker_service_accounts_never_automount_a_token(rendered: Rendered) -> None:
    workers = [sa for sa in rendered.all("ServiceAccount") if sa["metadata"]["name"].endswith("-worker")]
    assert workers
    for account in workers:
        assert account["automountServiceAccountToken"] is False, account["metadata"]


def test_images_are_pinned_and_never_pulled_always(rendered: Rendered) -> None:
    for label, spec in rendered.pod_specs():
        for container in _containers(spec):
            image = container["image"]
            name, _, tag = image.split("@")[0].rpartition(":")
            assert name and tag and "/" not in tag, f"{label}: {image} has no tag"
            assert tag != "latest", f"{label}: {image}"
            assert container.get("imagePullPolicy") == "IfNotPresent", label


def test_no_secret_on_a_command_line_and_no_service_links(rendered: Rendered) -> None:
    for label, spec in rendered.pod_specs():
        assert spec.get("enableServiceLinks") is False, label
        for container in _containers(spec):
            words = " ".join([*container.get("command", []), *container.get("args", [])])
            assert "--requirepass" not in words, label
            assert "-a " not in words and "--pass" not in words, label
            for env in container.get("env", []):
                if "PASSWORD" in env["name"]:
                    assert "secretKeyRef" in env.get("valueFrom", {}), (
                        f"{label}: {env['name']} is not from a Secret"
                    )


def test_digest_pins_the_operator_image() -> None:
    rendered = render_chart(**{"image.digest": "sha256:" + "ab" * 32})
    container = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "floxide:0.1.0@sha256:" + "ab" * 32
