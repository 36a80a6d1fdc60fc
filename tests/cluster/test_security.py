"""What creating a WorkflowRun can and cannot do, on a real API server with the chart's RBAC.

* ``spec.inputFrom`` reads only Secrets and ConfigMaps labelled ``floxide.io/run-input: "true"``
  (the operator reads them with its own permissions, so their owners must open them to runs);
* no input value comes back in the run's status or Events, whether it fails the input schema or
  is not even JSON: errors name the object, key and field, and what was expected.
"""

from __future__ import annotations

import json

from tests.cluster.installation import Installation, eventually, workflow, workflow_run
from tests.cluster.kubelet import LocalKubelet

NS = "floxide-system"
SECRET_VALUE = "c2VjcmV0LXRva2VuLWZvci1yZWdpc3RyeQ"
DOCKER_CONFIG = json.dumps({"auths": {"registry.example.com": {"auth": SECRET_VALUE}}})


def _status(floxide: Installation, name: str) -> dict[str, object]:
    return floxide.kube.status("workflowruns", NS, name)


def _everything_said_about(floxide: Installation, name: str) -> str:
    events = floxide.kube.core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items
    return json.dumps(_status(floxide, name)) + " ".join(event.message or "" for event in events)


def test_a_run_reads_no_secret_its_owner_did_not_open_to_runs(
    floxide: Installation, kubelet: LocalKubelet
) -> None:
    kube = floxide.kube
    kube.create(
        "workflows", NS, workflow("guarded", "examples.branching:workflow", scaling={"minWorkers": 1})
    )
    eventually(lambda: kube.status("workflows", NS, "guarded").get("graph"), timeout=60, what="the workers")
    kube.put_secret(NS, "registry-pull", {".dockerconfigjson": DOCKER_CONFIG, "number": "42"})
    source = {"secretKeyRef": {"name": "registry-pull", "key": "number"}}
    kube.create("workflowruns", NS, workflow_run("peek", "guarded", inputFrom=source))

    def refused() -> bool:
        status = _status(floxide, "peek")
        conditions = {c["type"]: c for c in status.get("conditions", [])}  # type: ignore[union-attr]
        return conditions.get("Accepted", {}).get("reason") == "InputNotAllowed"

    eventually(refused, timeout=30, what="the run to be refused its input")
    status = _status(floxide, "peek")
    assert status["phase"] == "Pending" and not status.get("seeded")
    assert "is not labelled floxide.io/run-input=true" in str(status["message"])

    # Its owner opens the Secret to runs: the run goes on by itself.
    kube.put_secret(
        NS, "registry-pull", {".dockerconfigjson": DOCKER_CONFIG, "number": "42"},
        labels={"floxide.io/run-input": "true"},
    )  # fmt: skip
    eventually(lambda: _status(floxide, "peek").get("phase") == "Succeeded", timeout=60, what="the run")
    assert json.loads(str(_status(floxide, "peek")["outputPreview"])) == "BigNode: 84"


def test_no_input_value_is_echoed_into_status_or_events(floxide: Installation, kubelet: LocalKubelet) -> None:
    kube = floxide.kube
    kube.create(
        "workflows", NS, workflow("echoless", "examples.branching:workflow", scaling={"minWorkers": 1})
    )
    eventually(lambda: kube.status("workflows", NS, "echoless").get("graph"), timeout=60, what="the workers")
    opened = {"floxide.io/run-input": "true"}
    kube.put_secret(
        NS, "opened-pull", {".dockerconfigjson": DOCKER_CONFIG, "raw": SECRET_VALUE}, labels=opened
    )
    runs = {
        "wrong-shape": {"secretKeyRef": {"name": "opened-pull", "key": ".dockerconfigjson"}},  # not an int
        "not-json": {"secretKeyRef": {"name": "opened-pull", "key": "raw"}},
    }
    for name, source in runs.items():
        kube.create("workflowruns", NS, workflow_run(name, "echoless", inputFrom=source))
    kube.create("workflowruns", NS, workflow_run("inline-wrong", "echoless", {"token": SECRET_VALUE}))
    for name in (*runs, "inline-wrong"):
        eventually(lambda name=name: _status(floxide, name).get("phase") == "Failed", timeout=60, what=name)
        said = _everything_said_about(floxide, name)
        assert SECRET_VALUE not in said, said
        assert "registry.example.com" not in said
    assert "input: expected type integer" in str(_status(floxide, "wrong-shape")["message"])
    assert "key 'raw' is not JSON" in str(_status(floxide, "not-json")["message"])
