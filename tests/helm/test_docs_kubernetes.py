"""The Kubernetes instructions of README.md, examples/k8s/README.md and docs/operations.md agree with
each other, with the chart and with the operator.

Cases:
- one namespace: every `kubectl` command of a shell block that acts on namespaced objects names
  `floxide-system` (`-n`, `--namespace`, or the `k` alias of examples/k8s/README.md); none names
  another namespace; every `helm` command that installs, upgrades, tests or uninstalls the release
  does it in `floxide-system`;
- `helm install` is `--atomic` (the kind script's listing, `helm upgrade --install --wait`, aside);
- README.md and examples/k8s/README.md build both images and load them into kind before the first
  `helm install`;
- the files the commands apply exist, and the objects they name exist in the chart rendered as the
  docs install it (release `floxide`, namespace `floxide-system`);
- each document says that a Workflow has its own queue (`FLOXIDE_WORKER_SERVE_AS`, keys
  `{wf:<namespace>/<Workflow name>}`) and that worker pods roll with the Redis connection
  (the annotation the operator sets).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.helm.helmchart import REPO, render_chart

DOCS = {
    "README.md": REPO / "README.md",
    "examples/k8s/README.md": REPO / "examples" / "k8s" / "README.md",
    "docs/operations.md": REPO / "docs" / "operations.md",
}
NAMESPACE = "floxide-system"
# kubectl commands on cluster-scoped objects (or on every namespace) need no namespace.
CLUSTER_SCOPED = {"crd", "clusterkopfpeering", "namespace", "--all-namespaces", "--raw"}
HELM_RELEASE_VERBS = ("install", "upgrade", "uninstall", "test", "status")


def shell_commands(path: Path) -> list[list[str]]:
    """The commands of the ```sh blocks, as words: continuation lines joined, prompts and comments
    dropped, pipelines and lists split into their commands."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", path.read_text(), re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            lexer = shlex.shlex(line.strip().removeprefix("$ "), posix=True, punctuation_chars=True)
            lexer.commenters = "#"
            lexer.wordchars += "{}[]@:,%+"
            words: list[str] = []
            for token in lexer:
                if token and set(token) <= set("|&;()<>"):
                    commands.append(words)
                    words = []
                else:
                    words.append(token)
            commands.append(words)
    return [words for words in commands if words]


def _namespace(words: list[str]) -> str | None:
    for i, word in enumerate(words):
        if word in ("-n", "--namespace") and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--namespace="):
            return word.split("=", 1)[1]
    return None


def _is_cluster_scoped(words: list[str]) -> bool:
    return any(word in CLUSTER_SCOPED or word.startswith("crd/") for word in words)


@pytest.mark.parametrize("name", list(DOCS))
def test_one_namespace(name: str) -> None:
    for words in shell_commands(DOCS[name]):
        command = " ".join(words)
        if words[0] == "k":  # alias k='kubectl --namespace floxide-system'
            assert "alias k='kubectl --namespace floxide-system'" in DOCS[name].read_text()
            assert _namespace(words) is None, command
            continue
        if words[0] == "kubectl" and not _is_cluster_scoped(words):
            assert _namespace(words) == NAMESPACE, f"{name}: {command}"
        if words[0] == "helm" and len(words) > 1 and words[1] in HELM_RELEASE_VERBS:
            assert _namespace(words) == NAMESPACE, f"{name}: {command}"
        if words[0] in ("kubectl", "helm") and _namespace(words) is not None:
            assert _namespace(words) == NAMESPACE, f"{name}: {command}"


@pytest.mark.parametrize("name", list(DOCS))
def test_helm_install_is_atomic(name: str) -> None:
    installs = [words for words in shell_commands(DOCS[name]) if words[:2] == ["helm", "install"]]
    assert installs, f"{name} has no helm install"
    for words in installs:
        assert "--atomic" in words, f"{name}: {' '.join(words)}"


@pytest.mark.parametrize("name", ["README.md", "examples/k8s/README.md"])
def test_images_are_built_and_loaded_before_the_install(name: str) -> None:
    commands = [" ".join(words) for words in shell_commands(DOCS[name])]

    def first(prefix: str) -> int:
        found = [i for i, command in enumerate(commands) if command.startswith(prefix)]
        assert found, f"{name}: no {prefix!r}"
        return found[0]

    install = first("helm install ")
    assert first("docker build -t floxide:0.1.0 .") < install
    assert first("docker build -t floxide-examples:0.1.0 -f examples/k8s/Dockerfile .") < install
    assert first("kind load docker-image floxide:0.1.0 floxide-examples:0.1.0") < install


def test_what_the_commands_name_exists() -> None:
    rendered = render_chart(release="floxide", namespace=NAMESPACE)
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered.docs}
    objects = {
        "deployment/floxide-operator": ("Deployment", "floxide-operator"),
        "service/floxide-operator-metrics": ("Service", "floxide-operator-metrics"),
    }
    for path in DOCS.values():
        text = path.read_text()
        for reference, key in objects.items():
            if reference in text:
                assert key in names, f"{path.name}: {reference} is not in the chart"
        for manifest in re.findall(r"examples/k8s/[\w.-]+\.yaml", text):
            assert (REPO / manifest).is_file(), f"{path}: {manifest} does not exist"
    # The worker ServiceAccount the examples' Workflows need is in floxide-system.
    assert ("ServiceAccount", "floxide-worker") in names
    assert all(
        doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        for doc in rendered.docs
        if doc["kind"] == "ServiceAccount"
    )


@pytest.mark.parametrize("name", list(DOCS))
def test_queues_and_rolling_are_documented(name: str) -> None:
    from floxide_operator import deployment

    text = " ".join(DOCS[name].read_text().split())
    assert "FLOXIDE_WORKER_SERVE_AS" in deployment.RESERVED_ENV
    assert "FLOXIDE_WORKER_SERVE_AS" in text, name
    assert re.search(r"\{wf:(<namespace>|floxide-system)/(<Workflow name>|examples)\}", text), name
    assert deployment.REDIS_HASH_ANNOTATION in text, name
