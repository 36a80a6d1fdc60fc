"""The Workflow and WorkflowRun resources as pydantic models.

These models are the single source of the CustomResourceDefinitions (``floxide_operator.crds``
renders them into ``crds/``) and what the operator uses at run time: it parses ``spec`` with them
and builds ``status`` patches from them. Python names are snake_case; the Kubernetes JSON uses
the camelCase aliases. Class docstrings and field descriptions are user-facing: they become the
schema descriptions that ``kubectl explain`` prints.

Schema keywords that only Kubernetes knows ride on the models through ``json_schema_extra``: CEL
rules (``x-kubernetes-validations``), list types, and the few fields that keep unknown content
(``x-kubernetes-preserve-unknown-fields``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "floxide.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
WORKFLOW_PLURAL = "workflows"
WORKFLOW_RUN_PLURAL = "workflowruns"
FINALIZER = "floxide.io/finalizer"
"""kopf's finalizer on Workflows and active WorkflowRuns (their timers need it)."""

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIG_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity: an integer, or a string such as ``500m`` or ``256Mi``."""

AnyJson = Annotated[
    JsonValue,
    WithJsonSchema({"nullable": True, "x-kubernetes-preserve-unknown-fields": True}),
]
"""Any JSON value, kept verbatim by the apiserver."""

OpaqueObject = Annotated[
    dict[str, JsonValue],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A JSON object whose content the schema does not describe and the apiserver never prunes."""


def _cel(*rules: tuple[str, str]) -> dict[str, JsonValue]:
    """Schema extra holding CEL validation rules, each given as ``(rule, message)``."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


def _map_list(*keys: str) -> dict[str, JsonValue]:
    """Schema extra declaring a list as a map keyed by ``keys`` (unique keys, merged per item)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


class KubeModel(BaseModel):
    """Base of every model: camelCase aliases on the wire, snake_case names in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def to_body(self) -> dict[str, Any]:
        """The JSON form for the Kubernetes API: camelCase keys, ``None`` fields left out.

        A status model built with only the fields to change is therefore a merge patch. To
        remove a field, patch it with an explicit ``None`` instead.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# Enumerations


class PullPolicy(enum.StrEnum):
    """When the kubelet pulls the worker image."""

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class ScalingMode(enum.StrEnum):
    """Who sets the number of worker pods."""

    AUTO = "Auto"
    EXTERNAL = "External"


class ShutdownMode(enum.StrEnum):
    """How a run is stopped before it finishes."""

    STOP = "Stop"
    TERMINATE = "Terminate"


class ConditionStatus(enum.StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class EdgeKind(enum.StrEnum):
    """How an edge of the workflow graph is taken."""

    SEQUENCE = "sequence"
    ROUTE = "route"
    FALLBACK = "fallback"
    JOIN = "join"


class Phase(enum.StrEnum):
    """Where a run is in its life cycle."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


# Shared parts


class Condition(KubeModel):
    """One observation of the resource's state, in the Kubernetes condition format."""

    type: str = Field(
        max_length=316,
        pattern=CONDITION_TYPE_PATTERN,
        description="Type of the condition in CamelCase, such as Ready; unique within the list.",
    )
    status: ConditionStatus = Field(description="Whether the condition holds: True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="Machine-readable CamelCase reason for the last transition, such as WorkersReady.",
    )
    message: str = Field(
        "", max_length=32768, description="Human-readable details about the last transition."
    )
    last_transition_time: datetime = Field(
        description="When the status last changed (RFC 3339 date-time, UTC, whole seconds)."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation of the resource this condition was computed from."
    )

    @classmethod
    def new(
        cls,
        *,
        type: str,
        status: ConditionStatus,
        reason: str,
        message: str = "",
        observed_generation: int | None = None,
    ) -> Condition:
        """A condition whose ``lastTransitionTime`` is now, to whole seconds as Kubernetes stores it."""
        return cls(
            type=type,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=datetime.now(UTC).replace(microsecond=0),
            observed_generation=observed_generation,
        )


def merge_condition(conditions: Iterable[Condition] | None, new: Condition) -> list[Condition]:
    """``conditions`` with ``new`` in place of the condition of its type, or appended.

    When the status did not change, the old ``lastTransitionTime`` is kept: it records when
    the status last changed, not when the condition was last written. Order is preserved.
    """
    merged: list[Condition] = []
    found = False
    for old in conditions or ():
        if old.type != new.type:
            merged.append(old)
            continue
        found = True
        if old.status == new.status:
            merged.append(new.model_copy(update={"last_transition_time": old.last_transition_time}))
        else:
            merged.append(new)
    if not found:
        merged.append(new)
    return merged


_CONDITIONS_DESCRIPTION = "Current conditions of the resource, at most one per type."
_OBSERVED_GENERATION_DESCRIPTION = "metadata.generation of the spec the operator last acted on."
_KOPF_DESCRIPTION = "Internal state of the operator framework (kopf); never edit or remove it."


# Workflow


class ScalingSpec(KubeModel):
    """How many worker pods run the workflow's steps."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "self.minWorkers <= self.maxWorkers",
                "scaling.minWorkers must be less than or equal to scaling.maxWorkers",
            )
        )
    )

    mode: ScalingMode = Field(
        ScalingMode.AUTO,
        description=(
            "Auto: the operator sizes the worker Deployment from the backlog, within minWorkers and "
            "maxWorkers. External: spec.replicas (the scale subresource, for an HPA or KEDA) sets it."
        ),
    )
    min_workers: int = Field(
        0, ge=0, description="Fewest worker pods in Auto mode (pods); 0 lets an idle workflow scale to zero."
    )
    max_workers: int = Field(10, ge=1, le=1000, description="Most worker pods in Auto mode (pods).")
    target_backlog_per_worker: int = Field(
        10,
        ge=1,
        description=(
            "Backlog one worker pod should carry (work items, lag plus pending); the desired worker "
            "count is the backlog divided by this, rounded up."
        ),
    )
    scale_down_stabilization_seconds: int = Field(
        60, ge=0, description="How long a lower worker count must persist before scaling down (seconds)."
    )
    idle_seconds_before_scale_to_zero: int = Field(
        300,
        ge=0,
        description="How long the workflow must have no backlog before scaling to zero workers (seconds).",
    )


class ResourceRequirements(KubeModel):
    """Compute resources of each worker container (the Kubernetes ResourceRequirements shape)."""

    requests: dict[str, Quantity] | None = Field(
        None,
        description=(
            "Resources reserved per worker container, by resource name: cpu in cores (0.5 as '500m'), "
            "memory in bytes (such as '256Mi')."
        ),
    )
    limits: dict[str, Quantity] | None = Field(
        None,
        description="Most resources a worker container may use, by resource name, in the units of requests.",
    )


class EnvVar(KubeModel):
    """An environment variable of the worker containers (a Kubernetes EnvVar); other fields, such
    as valueFrom, pass to the pods unchanged."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, description="Name of the environment variable.")
    value: str | None = Field(None, description="Literal value; use valueFrom to read it from elsewhere.")


class RedisSecretRef(KubeModel):
    """A Secret in the Workflow's namespace holding the Redis connection."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Name of the Secret."
    )
    url_key: str = Field(
        "redis-url",
        max_length=253,
        pattern=CONFIG_KEY_PATTERN,
        description="Key of the Secret entry holding the Redis URL (redis:// or rediss://).",
    )
    password_key: str = Field(
        "redis-password",
        max_length=253,
        pattern=CONFIG_KEY_PATTERN,
        description="Key of the Secret entry holding the Redis password, used when the URL carries none.",
    )


class RedisConnection(KubeModel):
    """The Redis that holds this workflow's queue and run state."""

    secret_ref: RedisSecretRef = Field(description="The Secret with the Redis URL and password.")


class WorkflowSpec(KubeModel):
    """The desired state of a Workflow: its code and the worker pods that run it."""

    image: str = Field(min_length=1, description="Container image holding the workflow code.")
    image_pull_policy: PullPolicy = Field(
        PullPolicy.IF_NOT_PRESENT, description="When to pull the image: Always, IfNotPresent or Never."
    )
    entrypoint: str = Field(
        max_length=512,
        pattern=ENTRYPOINT_PATTERN,
        description="Import path of the workflow object, package.module:attribute.",
    )
    concurrency: int = Field(
        4, ge=1, le=256, description="Steps each worker process runs at the same time (steps)."
    )
    replicas: int | None = Field(
        None,
        ge=0,
        description=(
            "Worker pods wanted when scaling.mode is External (pods); written through the scale "
            "subresource by an HPA or KEDA, ignored in Auto mode."
        ),
    )
    scaling: ScalingSpec = Field(
        default_factory=ScalingSpec,
        json_schema_extra={"default": {}},
        description="How the number of worker pods is chosen.",
    )
    resources: ResourceRequirements | None = Field(
        None, description="Compute resources of each worker container."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        json_schema_extra=_map_list("name"),
        description="Extra environment variables of the worker containers, unique by name.",
    )
    service_account_name: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="ServiceAccount of the worker pods; by default they get no Kubernetes API token.",
    )
    redis: RedisConnection | None = Field(
        None, description="Redis connection from a Secret; when absent, the operator's own Redis settings."
    )
    max_active_runs: int | None = Field(
        None,
        ge=1,
        description="Most WorkflowRuns of this Workflow active at once (runs); further runs wait in phase "
        "Queued and start in creation order as runs finish. Absent: no limit.",
    )


class GraphNode(KubeModel):
    """A node of the workflow graph."""

    name: str = Field(description="Name of the node, unique within the workflow.")
    input: str = Field(description="Name of the node's input type.")
    output: str = Field(description="Name of the node's output type.")


class GraphEdge(KubeModel):
    """An edge of the workflow graph."""

    from_: str = Field(alias="from", description="Name of the node the edge leaves.")
    to: str = Field(description="Name of the node the edge enters.")
    kind: EdgeKind = Field(description="How the edge is taken: sequence, route, fallback or join.")
    label: str | None = Field(None, description="Route variant or predicate that selects the edge.")


class WorkflowGraph(KubeModel):
    """The workflow graph, as published by the workers."""

    name: str | None = Field(
        None, description="Name of the workflow in its code; the workers keep its data in Redis under it."
    )
    nodes: list[GraphNode] = Field(
        default_factory=list, json_schema_extra=_map_list("name"), description="The nodes, unique by name."
    )
    edges: list[GraphEdge] = Field(default_factory=list, description="The edges between nodes.")
    start_node: str = Field(description="Name of the node that receives the run's input.")
    input_schema: OpaqueObject | None = Field(
        None, description="JSON Schema of the run input, the start node's input type."
    )


class WorkflowStatus(KubeModel):
    """The observed state of a Workflow, written by the operator."""

    conditions: list[Condition] | None = Field(
        None, json_schema_extra=_map_list("type"), description=_CONDITIONS_DESCRIPTION
    )
    observed_generation: int | None = Field(None, ge=0, description=_OBSERVED_GENERATION_DESCRIPTION)
    replicas: int | None = Field(
        None, ge=0, description="Worker pods that exist now (pods); the scale subresource reads it."
    )
    selector: str | None = Field(
        None, description="Label selector of the worker pods, for the scale subresource."
    )
    desired_workers: int | None = Field(None, ge=0, description="Worker pods the operator wants (pods).")
    ready_workers: int | None = Field(None, ge=0, description="Worker pods that are ready (pods).")
    ready: str | None = Field(None, description="Ready and desired worker pods as 'ready/desired'.")
    active_runs: int | None = Field(None, ge=0, description="WorkflowRuns of this workflow now running.")
    queued_runs: int | None = Field(
        None, ge=0, description="Runs waiting for a slot under spec.maxActiveRuns (runs)."
    )
    backlog: int | None = Field(
        None, ge=0, description="Work items in the queue not yet done (lag plus pending; work items)."
    )
    slots_in_use: int | None = Field(None, ge=0, description="Node concurrency-limit slots held now (slots).")
    throttled_items: int | None = Field(
        None, ge=0, description="Work items waiting for a node limit's slot or rate token now (work items)."
    )
    graph: WorkflowGraph | None = Field(None, description="The workflow graph, as published by the workers.")
    kopf: OpaqueObject | None = Field(None, description=_KOPF_DESCRIPTION)


# WorkflowRun


class KeyRef(KubeModel):
    """A key of a ConfigMap or Secret in the run's namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN, description="Name of the object."
    )
    key: str = Field(
        min_length=1, max_length=253, pattern=CONFIG_KEY_PATTERN, description="Key of the entry to read."
    )


class InputSource(KubeModel):
    """Where to read a large run input from: exactly one of configMapKeyRef or secretKeyRef."""

    model_config = ConfigDict(
        json_schema_extra=_cel(
            (
                "has(self.configMapKeyRef) != has(self.secretKeyRef)",
                "inputFrom needs exactly one of configMapKeyRef or secretKeyRef",
            )
        )
    )

    config_map_key_ref: KeyRef | None = Field(None, description="A ConfigMap key holding the input as JSON.")
    secret_key_ref: KeyRef | None = Field(None, description="A Secret key holding the input as JSON.")


class WorkflowRunSpec(KubeModel):
    """The desired state of a WorkflowRun: one run of a Workflow on one input, set inline in input
    or read through inputFrom, not both."""

    # "Not both" cannot be a CEL rule: CEL sees no untyped field such as input (the apiserver
    # refuses the CRD with "undefined field"), so it is a structural value validation instead.
    model_config = ConfigDict(json_schema_extra={"not": {"required": ["input", "inputFrom"]}})

    workflow: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        json_schema_extra=_cel(
            ("self == oldSelf", "workflow is immutable; create a new WorkflowRun instead")
        ),
        description="Name of the Workflow to run, in the same namespace.",
    )
    input: AnyJson = Field(None, description="Input of the start node, any JSON value.")
    input_from: InputSource | None = Field(
        None, description="Reads the input from a ConfigMap or Secret key instead (for large inputs)."
    )
    suspend: bool = Field(
        False, description="Pauses the run while true: queued steps wait; running steps finish."
    )
    shutdown: ShutdownMode | None = Field(
        None,
        description=(
            "Ends the run early as Cancelled. Stop: running steps finish and no new step starts. "
            "Terminate: running steps are cancelled too."
        ),
    )
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Fails the run if it is not finished this long after it started (seconds)."
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Deletes the WorkflowRun this long after it finished (seconds)."
    )
    retry_generation: int = Field(
        0, ge=0, description="Raising it retries a Failed run from the steps that failed."
    )
    priority: Literal["high", "normal", "low"] = Field(
        "normal",
        json_schema_extra=_cel(("self == oldSelf", "priority is immutable")),
        description="Workers take a higher class's work items first; low still gets about one claim in ten.",
    )


class NodeCounts(KubeModel):
    """Work items of one node in a run."""

    completed: int = Field(0, ge=0, description="Work items the node finished (work items).")
    failed: int = Field(0, ge=0, description="Work items that failed for good (work items).")
    retries: int = Field(0, ge=0, description="Attempts retried after a failure (attempts).")
    pending: int = Field(0, ge=0, description="Work items queued or in progress (work items).")
    throttled: int = Field(0, ge=0, description="Times an item waited for a node limit, no failure (times).")


class WorkflowRunStatus(KubeModel):
    """The observed state of a WorkflowRun, written by the operator."""

    phase: Phase | None = Field(
        None, description="Pending, Queued, Running, Suspended, Succeeded, Failed or Cancelled."
    )
    run_id: str | None = Field(None, description="Id of the run in Redis.")
    progress: str | None = Field(None, description="Work items done and known as 'done/total'.")
    completed_items: int | None = Field(None, ge=0, description="Work items done (work items).")
    total_items: int | None = Field(None, ge=0, description="Work items created so far (work items).")
    nodes: dict[str, NodeCounts] | None = Field(
        None, description="Work item counts by node name; one entry per graph node, never per work item."
    )
    started_at: datetime | None = Field(None, description="When the run started (RFC 3339 date-time).")
    finished_at: datetime | None = Field(None, description="When the run finished (RFC 3339 date-time).")
    duration: str | None = Field(None, description="Run time so far or in total, such as '1m12s'.")
    message: str | None = Field(None, description="Human-readable summary of the run's state.")
    error: str | None = Field(None, description="Why the run failed.")
    output: AnyJson = Field(None, description="Output of the run, when it is small enough to store here.")
    output_preview: str | None = Field(None, description="Start of the output as JSON, truncated.")
    output_key: str | None = Field(None, description="Redis key holding the full output.")
    seeded: bool | None = Field(None, description="Whether the run's input has been queued in Redis.")
    observed_retry_generation: int | None = Field(
        None, ge=0, description="spec.retryGeneration the operator last acted on."
    )
    conditions: list[Condition] | None = Field(
        None, json_schema_extra=_map_list("type"), description=_CONDITIONS_DESCRIPTION
    )
    observed_generation: int | None = Field(None, ge=0, description=_OBSERVED_GENERATION_DESCRIPTION)
    kopf: OpaqueObject | None = Field(None, description=_KOPF_DESCRIPTION)
