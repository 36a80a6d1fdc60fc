"""The status projection and the patch rule, without a server; and the small pure helpers.

Cases:
- every RunStatus maps to a phase; progress, times, duration and per-node counts come from the
  run's record and metrics; node counts are bounded by the graph (or a cap without one);
- a small output is kept whole, a large one as a preview and the Redis key; an error shows;
- every projected status passes the CRD's status schema (the same contract as test_crds);
- durations read like kubectl's ages;
- the coalescer patches the first change at once, holds later ones for the interval and merges
  them, holds changes of volatile fields longer, and removes fields with None;
- the input check names the field; run ids are stable, unique per uid, and valid in Redis;
- which runs keep a timer (and so a finalizer);
- worker ids are matched to the Deployment whose pods run them.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from floxide_operator import models, projection
from floxide_operator.inputs import input_errors, spec_errors
from floxide_operator.projection import Coalescer, RunView, format_duration, project_run
from floxide_operator.runs import needs_timer, run_id_of
from pydantic import ValidationError

from floxide.distributed.models import NodeMetrics, RunInfo, RunMetrics, RunStatus
from tests.operator.test_crds import refusals
from tests.operator.test_crds import run as run_manifest

START = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def view(status: RunStatus = RunStatus.RUNNING, nodes: tuple[str, ...] = ("a", "b"), **info: Any) -> RunView:
    record = RunInfo(
        run_id="r-1",
        workflow="wf",
        status=status,
        created_at=START,
        started_at=START + timedelta(seconds=1),
        items_total=5,
        items_done=3,
        **info,
    )
    metrics = RunMetrics(
        nodes={
            "a": NodeMetrics(created=1, completed=1),
            "b": NodeMetrics(created=4, completed=2, retries=1),
            "c": NodeMetrics(created=1),
        }
    )
    return RunView(
        run_id="r-1", info=record, metrics=metrics, nodes=nodes, output_key="fx:{wf:ns/wf}:run:r-1:outputs"
    )


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        (RunStatus.PENDING, "Running"),
        (RunStatus.RUNNING, "Running"),
        (RunStatus.PAUSED, "Suspended"),
        (RunStatus.COMPLETED, "Succeeded"),
        (RunStatus.FAILED, "Failed"),
        (RunStatus.CANCELLED, "Cancelled"),
    ],
)
def test_phase_of_every_run_status(status: RunStatus, phase: str) -> None:
    assert projection.phase_of(status).value == phase


def test_running_run() -> None:
    status = project_run(view(), now=START + timedelta(seconds=73))
    assert status.phase is models.Phase.RUNNING
    assert (status.progress, status.completed_items, status.total_items) == ("3/5", 3, 5)
    assert status.started_at == START + timedelta(seconds=1)
    assert status.finished_at is None
    assert status.duration == "1m12s"
    assert status.nodes == {
        "a": models.NodeCounts(completed=1),
        "b": models.NodeCounts(completed=2, retries=1, pending=2),
    }
    assert status.message == "Running b"


def test_node_counts_are_bounded() -> None:
    status = project_run(view(nodes=()), now=START)
    assert set(status.nodes or {}) == {"a", "b", "c"}
    many = view(nodes=())
    many.metrics.nodes.update({f"n{i:04}": NodeMetrics(created=1) for i in range(500)})
    assert len(project_run(many, now=START).nodes or {}) == projection.MAX_NODES


def test_finished_run_with_a_small_output() -> None:
    finished = START + timedelta(seconds=3)
    status = project_run(
        view(RunStatus.COMPLETED, finished_at=finished, output="BigNode: 84", has_output=True), now=START
    )
    assert status.phase is models.Phase.SUCCEEDED
    assert (status.finished_at, status.duration) == (finished, "2s")
    assert status.output == "BigNode: 84"
    assert status.output_preview == '"BigNode: 84"'
    assert status.output_key is None
    assert status.message == "Succeeded after 3 steps"


def test_large_output_stays_in_redis() -> None:
    big = {"rows": ["x" * 100] * 100}
    status = project_run(view(RunStatus.COMPLETED, output=big, has_output=True), now=START)
    assert status.output is None
    assert status.output_key == "fx:{wf:ns/wf}:run:r-1:outputs"
    assert status.output_preview is not None
    assert len(status.output_preview) == projection.PREVIEW_LENGTH
    assert json.dumps(big, separators=(",", ":")).startswith(status.output_preview[:-1])


@pytest.mark.parametrize("odd", [math.nan, math.inf, -math.inf])
def test_an_output_with_nan_or_infinity_is_only_previewed(odd: float) -> None:
    output = {"score": odd, "n": 1}
    status = project_run(view(RunStatus.COMPLETED, output=output, has_output=True), now=START)
    assert status.output is None  # the API server refuses NaN and infinities in JSON
    assert status.output_key == "fx:{wf:ns/wf}:run:r-1:outputs"
    assert status.output_preview == json.dumps(output, separators=(",", ":"))
    json.dumps(status.to_body(), allow_nan=False)


def test_failed_run_shows_its_error() -> None:
    status = project_run(view(RunStatus.FAILED, error="node 'b' failed: ValueError: boom"), now=START)
    assert status.phase is models.Phase.FAILED
    assert status.error == "node 'b' failed: ValueError: boom"
    assert status.message == "node 'b' failed: ValueError: boom"


@pytest.mark.parametrize("status", list(RunStatus))
def test_projected_status_passes_the_crd_schema(status: RunStatus) -> None:
    record = view(status, output={"deep": [1, None, {"x": "y" * 5000}]}, has_output=True, error="e")
    body = project_run(record, now=START).to_body()
    body["conditions"] = [
        projection.condition("Completed", True, "Succeeded", "done", generation=2).to_body()
    ]
    assert refusals({**run_manifest(), "status": body}) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (72, "1m12s"),
        (3600, "1h"),
        (3720, "1h2m"),
        (90000, "1d1h"),
        (86400, "1d"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_coalescer_patches_at_most_once_per_interval() -> None:
    coalescer = Coalescer(min_interval=1.0, refresh_interval=10.0, volatile=frozenset({"duration"}))
    first = {"phase": "Running", "progress": "0/1"}
    assert coalescer.due(first, now=0.0) == first
    coalescer.mark_sent(first, now=0.0)
    assert coalescer.due(first, now=0.1) is None  # nothing changed
    second = {"phase": "Running", "progress": "1/2"}
    assert coalescer.due(second, now=0.5) is None  # too soon: held
    third = {"phase": "Running", "progress": "2/2", "output": "x"}
    assert coalescer.due(third, now=1.0) == {"progress": "2/2", "output": "x"}  # merged
    coalescer.mark_sent(third, now=1.0)
    ticking = {**third, "duration": "5s"}
    assert coalescer.due(ticking, now=3.0) is None  # only a volatile field: waits for the refresh
    assert coalescer.due(ticking, now=11.0) == {"duration": "5s"}
    assert coalescer.due({"phase": "Running"}, now=12.0) == {"progress": None, "output": None}


def test_input_errors_name_the_field() -> None:
    schema = {
        "type": "object",
        "properties": {
            "steps": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["steps"],
    }
    assert input_errors(schema, {"steps": 3}) == []
    # Each names the field and what the schema wanted; none repeats the value (it may be secret).
    assert input_errors(schema, {"steps": "many-secret"}) == ["input.steps: expected type integer"]
    assert input_errors(schema, {"steps": -5}) == ["input.steps: expected a number >= 0"]
    assert input_errors(schema, {"steps": 1, "tags": ["a", 2]}) == ["input.tags[1]: expected type string"]
    assert input_errors(schema, {}) == ["input: missing required field 'steps'"]
    assert input_errors({"type": "integer"}, "x") == ["input: expected type integer"]
    secret = {"auths": {"registry.example": {"auth": "c2VjcmV0LXRva2Vu"}}}
    for other in (
        {"type": "array"},
        {"enum": [1, 2]},
        {"type": "object", "maxProperties": 0},
    ):
        assert "c2VjcmV0LXRva2Vu" not in " ".join(input_errors(other, secret))
    assert input_errors(None, "anything") == []


def test_spec_errors_name_the_field_without_the_value() -> None:
    with pytest.raises(ValidationError) as caught:
        models.WorkflowRunSpec.model_validate({"workflow": "wf", "activeDeadlineSeconds": "c2VjcmV0LXRva2Vu"})
    message = spec_errors(caught.value)
    assert message.startswith("spec.activeDeadlineSeconds: ") and "c2VjcmV0LXRva2Vu" not in message


def test_run_ids() -> None:
    uid = "6f1c2a9e-1111-2222-3333-444455556666"
    assert run_id_of("big", uid) == "big-6f1c2a9e"
    assert run_id_of("big", uid) == run_id_of("big", uid)
    assert run_id_of("big", "0" + uid[1:]) != run_id_of("big", uid)
    long = run_id_of("x" * 253, uid)
    assert len(long) <= 200 and long.endswith("-6f1c2a9e")


@pytest.mark.parametrize(
    ("phase", "ttl", "expected"),
    [
        (None, None, True),
        ("Pending", None, True),
        ("Running", None, True),
        ("Suspended", None, True),
        ("Failed", None, True),  # a Failed run can be retried
        ("Succeeded", None, False),
        ("Cancelled", None, False),
        ("Succeeded", 60, True),  # until its TTL deletes it
    ],
)
def test_which_runs_keep_their_timer(phase: str | None, ttl: int | None, expected: bool) -> None:
    spec = {"workflow": "wf"} if ttl is None else {"workflow": "wf", "ttlSecondsAfterFinished": ttl}
    status = {"phase": phase} if phase else {}
    assert needs_timer(spec=spec, status=status) is expected
