"""The operator under load on a real API server: many WorkflowRuns created at once by parallel clients.

The cluster test tier's set-up (tests/cluster): etcd, kube-apiserver and kube-controller-manager
on loopback, the chart installed by Helm, ``floxide operator`` with the chart's environment and a
token of its ServiceAccount, worker pods run as local processes, a private redis-server.

Figures, from one run:

* time from the first create to the last run showing ``Succeeded``, and runs per minute;
* the operator's API writes per run (creates, patches, deletes of WorkflowRuns, and every
  Event), from the API server's audit log, by resource and verb; all its writes (the Workflow's
  status, Deployment and Secret too, which do not grow with the runs); its 409/422 answers;
* the operator process's CPU time (user + system), in all and per run.

Targets: every run Succeeded; at most 4 API writes per run; no 422.

    python benchmarks/operator_load.py --real             # 500 runs of the branching example
    python benchmarks/operator_load_real.py --runs 50     # the same, a quicker look
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for the cluster tier's harness

from tests.cluster.controlplane import ControlPlane, binaries  # noqa: E402
from tests.cluster.installation import Installation, workflow, workflow_run  # noqa: E402
from tests.cluster.kubelet import LocalKubelet  # noqa: E402
from tests.redis.conftest import RedisServer  # noqa: E402

NS = "floxide-system"
WRITES = ("create", "patch", "update", "delete")
TARGET_WRITES = 4.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _phases(installation: Installation) -> Counter[str]:
    listed = installation.kube.custom.list_namespaced_custom_object(
        "floxide.io", "v1alpha1", NS, "workflowruns"
    )
    return Counter(str((item.get("status") or {}).get("phase") or "-") for item in listed["items"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="WorkflowRuns to create at once (default 500)")
    parser.add_argument("--clients", type=int, default=8, help="parallel creating clients (default 8)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for them (default 900)")
    parser.add_argument("--keep", type=Path, help="keep the logs (API server audit log, operator, pods) here")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        directory = args.keep or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="floxide-load-"))
        )
        plane = ControlPlane(binaries(), directory / "control-plane")
        redis = RedisServer(directory / "redis", args=["--save", "", "--appendonly", "no"], password="load")
        plane.start()
        redis.start()
        kubelet = LocalKubelet(plane, directory / "pods")
        kubelet.start()
        operator = None
        try:
            (directory / "operator").mkdir()
            installation = Installation.create(
                plane, namespace=NS, release="floxide", redis_url=redis.url, redis_password="load",
                directory=directory / "operator",
            )  # fmt: skip
            operator = installation.start_operator()
            spec = workflow("branching", "examples.branching:workflow", concurrency=16)
            spec["spec"]["scaling"] = {"minWorkers": 2, "maxWorkers": 2}
            installation.kube.create("workflows", NS, spec)
            while not installation.kube.status("workflows", NS, "branching").get("graph"):
                time.sleep(0.5)  # the workers are up and have published the graph
            assert operator.process is not None
            cpu_before, audit_before = _cpu_seconds(operator.process.pid), len(plane.audit())

            started = time.monotonic()
            names = [f"load-{i:04d}" for i in range(args.runs)]
            with ThreadPoolExecutor(args.clients) as pool:
                list(
                    pool.map(
                        lambda n: installation.kube.create(
                            "workflowruns", NS, workflow_run(n, "branching", 42)
                        ),
                        names,
                    )
                )
            created = time.monotonic() - started
            phases: Counter[str] = Counter()
            while time.monotonic() - started < args.timeout:
                phases = _phases(installation)
                if phases["Succeeded"] + phases["Failed"] + phases["Cancelled"] >= args.runs:
                    break
                time.sleep(1.0)
            elapsed = time.monotonic() - started
            time.sleep(3.0)  # the last status patches and Events land in the audit log
            cpu = _cpu_seconds(operator.process.pid) - cpu_before
            calls = [e for e in plane.audit()[audit_before:] if e.user == operator.user]
        finally:
            if operator is not None:
                operator.stop()
            kubelet.stop()
            redis.stop()
            plane.stop()

    writes = [e for e in calls if e.verb in WRITES]
    by_kind = Counter(f"{e.verb} {e.resource}{'/' + e.subresource if e.subresource else ''}" for e in writes)
    codes = Counter(e.code for e in calls if e.code >= 400)
    # Writes that grow with the runs: to WorkflowRuns, and Events about them. The Workflow's status,
    # Deployment, Secret and Events are written at most once a second, whatever the load.
    per_run = (
        sum(
            1
            for e in writes
            if e.resource == "workflowruns" or (e.resource == "events" and e.about == "WorkflowRun")
        )
        / args.runs
    )
    print(f"runs: {args.runs} (created by {args.clients} clients in {created:.1f} s); phases: {dict(phases)}")
    print(f"all Succeeded after: {elapsed:.1f} s ({args.runs / elapsed * 60:.0f} runs/min)")
    print(
        f"operator API writes per run: {per_run:.3f} "
        f"(target <= {TARGET_WRITES:g}; to WorkflowRuns, their Events)"
    )
    print(f"operator API writes in all: {len(writes)} ({len(writes) / args.runs:.2f} per run)")
    for kind, count in by_kind.most_common():
        print(f"  {kind}: {count / args.runs:.2f} per run ({count})")
    print(f"operator error answers: {dict(codes) or 'none'} (target: no 422)")
    print(f"operator CPU time: {cpu:.1f} s ({cpu / args.runs * 1000:.0f} ms per run)")
    met = phases["Succeeded"] == args.runs and per_run <= TARGET_WRITES and not codes.get(422)
    print("target met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
