"""WorkflowSchedules and run limits on a real API server, with the chart's operator and RBAC.

Real time here (schedules with a seconds field fire every few seconds; the KMock tier moves a
clock instead):

* ``kubectl get workflowschedules`` shows SCHEDULE, SUSPENDED, LAST, NEXT, ACTIVE;
* the operator stopped across several fire times: catchUp None starts none of the missed ones,
  Latest at most one, All (bound above the count) every one of them;
* Forbid creates no run while a long run is active; Replace cancels the active run for the new
  one; deleting a schedule deletes its runs (owner references, the garbage collector);
* a Workflow's spec.maxActiveRuns: at most that many runs Running at once, the others show phase
  Queued, and they start in creation order.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from tests.cluster.controlplane import ControlPlane
from tests.cluster.installation import Installation, eventually, workflow, workflow_run
from tests.cluster.kubelet import LocalKubelet

NS = "floxide-system"
SCHEDULES = "workflowschedules"


def schedule(name: str, cron: str, workflow_name: str, input: Any, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "floxide.io/v1alpha1",
        "kind": "WorkflowSchedule",
        "metadata": {"name": name},
        "spec": {"schedule": cron, "runTemplate": {"workflow": workflow_name, "input": input}, **spec},
    }


def runs_of(floxide: Installation, name: str) -> list[dict[str, Any]]:
    found = floxide.kube.custom.list_namespaced_custom_object(
        "floxide.io", "v1alpha1", NS, "workflowruns", label_selector=f"floxide.io/schedule={name}"
    )["items"]
    return sorted(found, key=lambda r: r["metadata"]["name"])


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fire_times(floxide: Installation, name: str) -> list[float]:
    return [float(r["metadata"]["name"].rpartition("-")[2]) for r in runs_of(floxide, name)]


def test_catch_up_after_the_operator_was_down_and_kubectl_columns(
    floxide: Installation, kubelet: LocalKubelet, control_plane: ControlPlane
) -> None:
    kube = floxide.kube
    kube.create("workflows", NS, workflow("ticks", "examples.branching:workflow", scaling={"minWorkers": 1}))
    policies = {"ticks-none": "None", "ticks-latest": "Latest", "ticks-all": "All"}
    for name, policy in policies.items():
        body = schedule(name, "*/2 * * * * *", "ticks", 1, catchUp={"policy": policy, "maxRuns": 50},
                        successfulRunsHistoryLimit=50)  # fmt: skip
        kube.create(SCHEDULES, NS, body)
    for name in policies:
        eventually(lambda n=name: len(runs_of(floxide, n)) >= 1, timeout=60, what=f"{name}'s first run")

    table = control_plane.kubectl("get", SCHEDULES, "-n", NS).stdout
    header = table.splitlines()[0].split()
    assert header == ["NAME", "SCHEDULE", "SUSPENDED", "LAST", "NEXT", "ACTIVE", "AGE"], table
    row = next(line for line in table.splitlines() if line.startswith("ticks-all "))
    assert "*/2 * * * * *   false" in row, table

    assert floxide.operator is not None
    floxide.operator.stop()
    down_from = time.time()
    time.sleep(9.0)  # four or five fire times pass
    down_until = time.time()
    floxide.operator.start()
    eventually(lambda: all(max(fire_times(floxide, n)) > down_until + 2 for n in policies), timeout=60,
               what="the schedules running again")  # fmt: skip
    missed = {n: [t for t in fire_times(floxide, n) if down_from + 0.5 < t < down_until] for n in policies}
    expected = [t for t in range(int(down_from) + 1, int(down_until) + 1) if t % 2 == 0
                and down_from + 0.5 < t < down_until]  # fmt: skip
    assert len(expected) >= 3
    assert missed["ticks-none"] == []
    assert len(missed["ticks-latest"]) <= 1
    assert missed["ticks-all"] == expected, (missed, expected)
    skipped = kube.status(SCHEDULES, NS, "ticks-none")["skippedRuns"]
    assert skipped >= len(expected)
    for name in policies:
        kube.patch(SCHEDULES, NS, name, {"spec": {"suspend": True}})
    kube.delete(SCHEDULES, NS, "ticks-none")
    eventually(lambda: runs_of(floxide, "ticks-none") == [], timeout=60, what="the garbage collector")


def test_forbid_and_replace_with_long_runs(floxide: Installation, kubelet: LocalKubelet) -> None:
    kube = floxide.kube
    kube.create("workflows", NS, workflow("slow", "examples.countdown:workflow", scaling={"minWorkers": 1},
                                          concurrency=8))  # fmt: skip
    long = {"steps": 16, "delay": 0.5}
    kube.create(
        SCHEDULES, NS, schedule("slow-forbid", "*/2 * * * * *", "slow", long, concurrencyPolicy="Forbid")
    )
    kube.create(
        SCHEDULES, NS, schedule("slow-replace", "*/3 * * * * *", "slow", long, concurrencyPolicy="Replace")
    )
    first = eventually(lambda: runs_of(floxide, "slow-forbid"), timeout=60, what="the first Forbid run")
    name = first[0]["metadata"]["name"]
    eventually(lambda: kube.status("workflowruns", NS, name).get("phase") == "Running", timeout=60)
    eventually(lambda: kube.status(SCHEDULES, NS, "slow-forbid").get("skippedRuns", 0) >= 2, timeout=30,
               what="Forbid skipping while the run is active")  # fmt: skip
    assert [r["metadata"]["name"] for r in runs_of(floxide, "slow-forbid")] == [name]
    status = kube.status(SCHEDULES, NS, "slow-forbid")
    assert (status["activeRuns"], status["active"][0]["name"]) == (1, name)

    replaced = eventually(
        lambda: len(found := runs_of(floxide, "slow-replace")) >= 2 and found,
        timeout=60,
        what="a replacement",
    )
    old = replaced[0]["metadata"]["name"]
    eventually(lambda: kube.status("workflowruns", NS, old).get("phase") == "Cancelled", timeout=60,
               what="the replaced run cancelled")  # fmt: skip
    assert kube.get("workflowruns", NS, old)["spec"]["shutdown"] == "Terminate"  # type: ignore[index]
    for each in ("slow-forbid", "slow-replace"):
        kube.patch(SCHEDULES, NS, each, {"spec": {"suspend": True}})
    eventually(lambda: kube.status("workflowruns", NS, name).get("phase") == "Succeeded", timeout=90)
    eventually(lambda: kube.status(SCHEDULES, NS, "slow-forbid").get("lastSuccessfulTime"), timeout=30,
               what="the last successful time")  # fmt: skip


def test_max_active_runs_queues_in_order(floxide: Installation, kubelet: LocalKubelet) -> None:
    kube = floxide.kube
    kube.create("workflows", NS, workflow("one-at-a-time", "examples.countdown:workflow", maxActiveRuns=1,
                                          scaling={"minWorkers": 1}, concurrency=8))  # fmt: skip
    eventually(lambda: kube.status("workflows", NS, "one-at-a-time").get("graph"), timeout=60, what="workers")
    names = [f"queued-{i}" for i in range(3)]
    for name in names:
        kube.create("workflowruns", NS, workflow_run(name, "one-at-a-time", {"steps": 6, "delay": 0.3}))
        time.sleep(1.1)  # creation order = admission order (creationTimestamp has whole seconds)
    seen_queued = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        phases = [kube.status("workflowruns", NS, name).get("phase") for name in names]
        seen_queued |= "Queued" in phases
        if phases == ["Succeeded"] * 3:
            break
        time.sleep(0.2)
    assert phases == ["Succeeded"] * 3, phases
    assert seen_queued
    # one at a time: each run started after the one before finished (by the times Redis recorded;
    # two phases can read Running together for a moment, as each resource's status follows on its
    # own tick)
    started = [moment(kube.status("workflowruns", NS, n)["startedAt"]) for n in names]
    finished = [moment(kube.status("workflowruns", NS, n)["finishedAt"]) for n in names]
    assert started == sorted(started) and all(finished[i] <= started[i + 1] for i in range(2)), (
        started,
        finished,
    )
    assert kube.status("workflows", NS, "one-at-a-time").get("queuedRuns") == 0
