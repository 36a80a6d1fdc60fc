"""The CustomResourceDefinitions: generated, structural, and refusing bad resources.

Cases:
- the checked-in CRDs are what ``floxide_operator.crds`` renders; the Helm copies are identical;
- ``--check`` names the files that are missing or stale;
- the CRDs are valid ``apiextensions.k8s.io/v1`` objects with structural, described schemas;
- the CEL rules compile and read only fields that CEL can see on a real apiserver;
- names, subresources and printer columns are as documented;
- every example manifest is accepted, and bad resources are refused with a message naming
  the field (schema checked with jsonschema, CEL rules evaluated with cel-python);
- a status built with the models passes the schema with nothing pruned, and parses back;
- ``Condition.new`` and ``merge_condition``.

``refusals`` stands in for the apiserver: it applies the schema defaults, validates against the
schema (refusing unknown fields where the apiserver would prune them), then evaluates the CEL
rules, as an apiserver does on create and update.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml
from celpy.adapter import json_to_cel
from floxide_operator import crds, models, schedule_models

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples" / "k8s").glob("*.yaml"))
CRDS = {
    "Workflow": crds.workflow_crd(),
    "WorkflowRun": crds.workflow_run_crd(),
    "WorkflowSchedule": crds.workflow_schedule_crd(),
}
CEL = celpy.Environment()
ABSENT: Any = object()
"""The value of a field that an object does not have (``oldSelf`` on create)."""

Schema = dict[str, Any]


def version_of(kind: str) -> Schema:
    """The only version entry of the CRD of ``kind``."""
    versions: list[Schema] = CRDS[kind]["spec"]["versions"]
    [version] = versions
    return version


def schema_of(kind: str) -> Schema:
    """The openAPIV3Schema of ``kind``."""
    schema: Schema = version_of(kind)["schema"]["openAPIV3Schema"]
    return schema


def dotted(path: Iterable[str | int]) -> str:
    """A field path in the apiserver's notation: ``spec.env[0].name``."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".") or "<root>"


# A stand-in for the apiserver: defaulting, schema validation, CEL rules.


def to_json_schema(node: Schema) -> Schema:
    """``node`` as plain JSON Schema: ``x-kubernetes-*`` dropped, ``nullable`` as a null type, and
    unknown fields refused wherever the apiserver would prune them."""
    plain: Schema = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            plain[key] = {name: to_json_schema(field) for name, field in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            plain[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            plain[key] = [to_json_schema(branch) for branch in value]
        else:
            plain[key] = value
    if node.get("nullable") and "type" in node:
        plain["type"] = [node["type"], "null"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        plain["additionalProperties"] = False
    return plain


def apply_defaults(node: Schema, value: Any) -> None:
    """Fill in schema defaults in place, outside in, as the apiserver does before validating."""
    if isinstance(value, dict):
        for name, field in node.get("properties", {}).items():
            if name not in value and "default" in field:
                value[name] = copy.deepcopy(field["default"])
            if name in value:
                apply_defaults(field, value[name])
        if isinstance(node.get("additionalProperties"), dict):
            for item in value.values():
                apply_defaults(node["additionalProperties"], item)
    elif isinstance(value, list) and "items" in node:
        for item in value:
            apply_defaults(node["items"], item)


def cel_failures(node: Schema, value: Any, old: Any, path: list[str | int]) -> list[str]:
    """Messages of the CEL rules that ``value`` breaks; transition rules only when ``old`` exists."""
    failures = []
    for validation in node.get("x-kubernetes-validations", []):
        activation = {"self": value}
        if "oldSelf" in validation["rule"]:
            if old is ABSENT:
                continue
            activation["oldSelf"] = old
        program = CEL.program(CEL.compile(validation["rule"]))
        if not program.evaluate({name: json_to_cel(item) for name, item in activation.items()}):
            failures.append(f"{dotted(path)}: {validation['message']}")
    children: list[tuple[Schema, Any, Any, str | int]] = []
    if isinstance(value, dict):
        olds = old if isinstance(old, dict) else {}
        for name, item in value.items():
            field = node.get("properties", {}).get(name, node.get("additionalProperties"))
            if isinstance(field, dict):
                children.append((field, item, olds.get(name, ABSENT), name))
    elif isinstance(value, list) and "items" in node:
        children = [(node["items"], item, ABSENT, index) for index, item in enumerate(value)]
    for field, item, old_item, key in children:
        failures += cel_failures(field, item, old_item, [*path, key])
    return failures


def refusals(manifest: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Why the apiserver would refuse to store ``manifest`` (an update of ``old`` if given)."""
    schema = schema_of(manifest["kind"])
    body = copy.deepcopy(manifest)
    apply_defaults(schema, body)
    validator = jsonschema.Draft7Validator(
        to_json_schema(schema), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    errors = [f"{dotted(error.absolute_path)}: {error.message}" for error in validator.iter_errors(body)]
    return errors or cel_failures(schema, body, ABSENT if old is None else old, [])


def workflow(**spec: Any) -> dict[str, Any]:
    """A Workflow manifest with a valid spec updated by ``spec``."""
    base = {"image": "floxide-examples:0.1.0", "entrypoint": "examples.branching:workflow"}
    return {
        "apiVersion": models.API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": "examples"},
        "spec": {**base, **spec},
    }


def run(**spec: Any) -> dict[str, Any]:
    """A WorkflowRun manifest with a valid spec updated by ``spec``."""
    return {
        "apiVersion": models.API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": "r1"},
        "spec": {"workflow": "examples", "input": 5, **spec},
    }


# Generated and in sync


def test_checked_in_crds_are_what_the_generator_renders() -> None:
    for path, text in crds.outputs(REPO).items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run python -m floxide_operator.crds"
        )


def test_helm_copies_are_byte_identical() -> None:
    for name in crds.render():
        assert (REPO / "crds" / name).read_bytes() == (REPO / "helm/floxide/files/crds" / name).read_bytes()


def test_check_names_missing_and_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crds.main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.count("out of date:") == 6  # three CRDs, in two folders

    assert crds.main(["--root", str(tmp_path)]) == 0
    assert crds.main(["--check", "--root", str(tmp_path)]) == 0

    stale = tmp_path / "helm/floxide/files/crds/workflowruns.floxide.io.yaml"
    stale.write_text(stale.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    capsys.readouterr()
    assert crds.main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines()[0] == f"out of date: {stale}"


# Valid and structural


@pytest.mark.parametrize("kind", CRDS)
def test_crd_is_a_valid_apiextensions_object(kind: str) -> None:
    kubernetes_validate.validate(CRDS[kind], "1.28.0", strict=True)


JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
NOT_IN_JUNCTORS = {"type", "description", "default", "additionalProperties", "nullable"}


def junctor_violations(node: Schema, path: str) -> list[str]:
    """Where the ``allOf``/``anyOf``/``oneOf``/``not`` of ``node`` go beyond value validation."""
    problems = []
    for junctor in JUNCTORS:
        if junctor not in node:
            continue
        if junctor == "anyOf" and node.get("x-kubernetes-int-or-string") and node[junctor] == INT_OR_STRING:
            continue
        for branch in node[junctor] if isinstance(node[junctor], list) else [node[junctor]]:
            banned = {key for key in branch if key in NOT_IN_JUNCTORS or key.startswith("x-kubernetes-")}
            unknown = set(branch.get("properties", {})) - set(node.get("properties", {}))
            problems += [f"{path}.{junctor}: {key}" for key in sorted(banned | unknown)]
    return problems


def structural_violations(node: Schema, path: str, *, preserved: bool = False) -> list[str]:
    """Where ``node`` breaks the rules of a structural schema (empty if it keeps them all)."""
    problems = [f"{path}: {key}" for key in ("$ref", "$defs", "definitions") if key in node]
    untyped_ok = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    if "type" not in node and not untyped_ok:
        problems.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: both properties and additionalProperties")
    if ("properties" in node or "additionalProperties" in node) and node.get("type") != "object":
        problems.append(f"{path}: fields on a non-object")
    if (node.get("type") == "array") != ("items" in node):
        problems.append(f"{path}: an array needs items, and only an array has them")
    if "default" in node and preserved:
        problems.append(f"{path}: default inside a preserve-unknown-fields subtree")
    problems += junctor_violations(node, path)
    if node.get("x-kubernetes-list-type") == "map":
        items = node["items"]
        for key in node["x-kubernetes-list-map-keys"]:
            if key not in items.get("required", []) and "default" not in items["properties"][key]:
                problems.append(f"{path}: list map key {key} is neither required nor defaulted")
    preserved = preserved or node.get("x-kubernetes-preserve-unknown-fields", False)
    for name, field in node.get("properties", {}).items():
        problems += structural_violations(field, f"{path}.{name}", preserved=preserved)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            problems += structural_violations(node[key], f"{path}[*]", preserved=preserved)
    return problems


@pytest.mark.parametrize("kind", CRDS)
def test_schema_is_structural(kind: str) -> None:
    schema = schema_of(kind)
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert structural_violations(schema, kind) == []


def test_structural_check_finds_violations() -> None:
    bad = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/x"},
            "b": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "c": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"d": {"type": "integer", "default": 1}},
            },
        },
    }
    assert structural_violations(bad, "x") == [
        "x.a: $ref",
        "x.a: no type",
        "x.b: no type",
        "x.b.anyOf: type",
        "x.b.anyOf: type",
        "x.c.d: default inside a preserve-unknown-fields subtree",
    ]


def properties_of(node: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every named field below ``node``, with its dotted path."""
    for name, field in node.get("properties", {}).items():
        yield f"{path}.{name}".lstrip("."), field
        yield from properties_of(field, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from properties_of(node[key], f"{path}[*]")


@pytest.mark.parametrize("kind", CRDS)
def test_every_field_is_described(kind: str) -> None:
    undescribed = [
        path
        for path, field in properties_of(schema_of(kind))
        if path.startswith(("spec", "status")) and not field.get("description")
    ]
    assert undescribed == []


@pytest.mark.parametrize("kind", CRDS)
def test_defaults_are_valid_values(kind: str) -> None:
    defaults = [(path, field) for path, field in properties_of(schema_of(kind)) if "default" in field]
    assert defaults
    for _path, field in defaults:
        jsonschema.validate(field["default"], to_json_schema(field))


# CEL rules


def validations_of(node: Schema, path: str = "") -> Iterator[tuple[str, Schema, Schema]]:
    """Every CEL rule below ``node``: the path, the schema node it sits on, the rule."""
    for validation in node.get("x-kubernetes-validations", []):
        yield path, node, validation
    for name, field in node.get("properties", {}).items():
        yield from validations_of(field, f"{path}.{name}".lstrip("."))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from validations_of(node[key], f"{path}[*]")


def invisible_fields(node: Schema, rule: str) -> list[str]:
    """Fields that ``rule`` reads from ``self`` but CEL cannot see: undeclared, or declared
    without a type (the apiserver exposes only typed fields and int-or-string to CEL)."""
    fields = node.get("properties", {})
    return [
        name
        for name in re.findall(r"\b(?:self|oldSelf)\.(\w+)", rule)
        if name not in fields
        or not ("type" in fields[name] or fields[name].get("x-kubernetes-int-or-string"))
    ]


@pytest.mark.parametrize("kind", ["Workflow", "WorkflowRun"])  # WorkflowSchedule has no CEL rule
def test_cel_rules_compile_and_read_only_visible_fields(kind: str) -> None:
    rules = list(validations_of(schema_of(kind)))
    assert rules
    for path, node, validation in rules:
        CEL.compile(validation["rule"])
        assert validation["message"], path
        assert invisible_fields(node, validation["rule"]) == [], path


def test_visibility_check_finds_untyped_fields() -> None:
    spec = schema_of("WorkflowRun")["properties"]["spec"]
    assert invisible_fields(spec, "!has(self.input) || !has(self.inputFrom) || self.nope") == [
        "input",
        "nope",
    ]


# Names, subresources, printer columns


def test_workflow_names_and_subresources() -> None:
    crd = CRDS["Workflow"]
    assert crd["metadata"]["name"] == "workflows.floxide.io"
    assert crd["spec"]["group"] == "floxide.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {
        "kind": "Workflow",
        "listKind": "WorkflowList",
        "plural": "workflows",
        "singular": "workflow",
        "shortNames": ["fxwf"],
        "categories": ["floxide"],
    }
    version = version_of("Workflow")
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }


def test_workflow_run_names_and_subresources() -> None:
    crd = CRDS["WorkflowRun"]
    assert crd["metadata"]["name"] == "workflowruns.floxide.io"
    assert crd["spec"]["names"]["shortNames"] == ["fxrun"]
    assert crd["spec"]["names"]["categories"] == ["floxide"]
    assert version_of("WorkflowRun")["subresources"] == {"status": {}}


def columns(kind: str) -> list[tuple[str, str, str, int]]:
    """Printer columns as kubectl shows their headers: (HEADER, jsonPath, type, priority)."""
    return [
        (column["name"].upper(), column["jsonPath"], column["type"], column.get("priority", 0))
        for column in version_of(kind)["additionalPrinterColumns"]
    ]


def test_workflow_run_printer_columns() -> None:
    assert columns("WorkflowRun") == [
        ("WORKFLOW", ".spec.workflow", "string", 0),
        ("PHASE", ".status.phase", "string", 0),
        ("PROGRESS", ".status.progress", "string", 0),
        ("AGE", ".metadata.creationTimestamp", "date", 0),
        ("DURATION", ".status.duration", "string", 0),
        ("MESSAGE", ".status.message", "string", 0),
        ("RUN-ID", ".status.runId", "string", 1),
        ("STARTED", ".status.startedAt", "date", 1),
        ("OUTPUT", ".status.outputPreview", "string", 1),
        ("PRIORITY", ".spec.priority", "string", 1),
    ]


def test_workflow_printer_columns() -> None:
    assert columns("Workflow") == [
        ("READY", ".status.ready", "string", 0),
        ("ACTIVE", ".status.activeRuns", "integer", 0),
        ("AGE", ".metadata.creationTimestamp", "date", 0),
        ("IMAGE", ".spec.image", "string", 1),
        ("ENTRYPOINT", ".spec.entrypoint", "string", 1),
        ("BACKLOG", ".status.backlog", "integer", 1),
        ("QUEUED", ".status.queuedRuns", "integer", 1),
    ]


def test_workflow_schedule_printer_columns() -> None:
    assert [name for name, _, _, priority in columns("WorkflowSchedule") if not priority] == [
        "SCHEDULE", "SUSPENDED", "LAST", "NEXT", "ACTIVE", "AGE",
    ]  # fmt: skip


@pytest.mark.parametrize("kind", CRDS)
def test_printer_columns_point_at_declared_fields(kind: str) -> None:
    declared = {f".{path}" for path, _ in properties_of(schema_of(kind))} | {".metadata.creationTimestamp"}
    assert {json_path for _, json_path, _, _ in columns(kind)} <= declared


# Example manifests


def example_resources() -> Iterator[Any]:
    """Every Workflow and WorkflowRun in ``examples/k8s``, tagged with its file name."""
    for path in EXAMPLES:
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") in CRDS:
                yield pytest.param(document, id=f"{path.name}:{document['metadata']['name']}")


@pytest.mark.parametrize("manifest", list(example_resources()))
def test_example_is_accepted_and_parses(manifest: dict[str, Any]) -> None:
    assert manifest["apiVersion"] == models.API_VERSION
    assert "generateName" not in manifest["metadata"]
    assert refusals(manifest) == []
    spec_model = {
        "Workflow": models.WorkflowSpec,
        "WorkflowRun": models.WorkflowRunSpec,
        "WorkflowSchedule": schedule_models.WorkflowScheduleSpec,
    }[manifest["kind"]]
    spec_model.model_validate(manifest["spec"])


def test_example_runs_name_example_workflows() -> None:
    resources = [param.values[0] for param in example_resources()]
    workflows = {item["metadata"]["name"] for item in resources if item["kind"] == "Workflow"}
    runs = {
        item["metadata"]["name"]: item["spec"]["workflow"]
        for item in resources
        if item["kind"] == "WorkflowRun"
    }
    assert len(workflows) == 4
    assert len(runs) == 6
    assert set(runs.values()) <= workflows
    scheduled = [
        item["spec"]["runTemplate"]["workflow"] for item in resources if item["kind"] == "WorkflowSchedule"
    ]
    assert scheduled and set(scheduled) <= workflows


# Refusals


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        pytest.param(run(workflow=None), "spec: 'workflow' is a required property", id="no-workflow"),
        pytest.param(
            run(shutdown="Kill"), "spec.shutdown: 'Kill' is not one of ['Stop', 'Terminate']", id="shutdown"
        ),
        pytest.param(
            run(workflow="Not_A_Name"), "spec.workflow: 'Not_A_Name' does not match", id="workflow-name"
        ),
        pytest.param(
            run(retryGeneration=-1), "spec.retryGeneration: -1 is less than the minimum of 0", id="retry"
        ),
        pytest.param(
            run(activeDeadlineSeconds=0), "spec.activeDeadlineSeconds: 0 is less than", id="deadline"
        ),
        pytest.param(
            run(bogus=1), "spec: Additional properties are not allowed ('bogus'", id="unknown-field"
        ),
        pytest.param(
            run(inputFrom={"configMapKeyRef": {"name": "in", "key": "input.json"}}),
            "spec: {'workflow': 'examples', 'input': 5, 'inputFrom': ",
            id="input-and-inputFrom",
        ),
        pytest.param(
            run(input=None, inputFrom={}),
            "spec.inputFrom: inputFrom needs exactly one of configMapKeyRef or secretKeyRef",
            id="inputFrom-empty",
        ),
        pytest.param(
            run(
                input=None,
                inputFrom={
                    "configMapKeyRef": {"name": "a", "key": "k"},
                    "secretKeyRef": {"name": "b", "key": "k"},
                },
            ),
            "spec.inputFrom: inputFrom needs exactly one of configMapKeyRef or secretKeyRef",
            id="inputFrom-both",
        ),
        pytest.param(
            workflow(scaling={"minWorkers": 5, "maxWorkers": 3}),
            "spec.scaling: scaling.minWorkers must be less than or equal to scaling.maxWorkers",
            id="min-above-max",
        ),
        pytest.param(
            workflow(scaling={"minWorkers": 11}),
            "spec.scaling: scaling.minWorkers must be less than or equal to scaling.maxWorkers",
            id="min-above-default-max",
        ),
        pytest.param(workflow(image=None), "spec: 'image' is a required property", id="no-image"),
        pytest.param(
            workflow(entrypoint="examples.branching"),
            "spec.entrypoint: 'examples.branching' does not match",
            id="entrypoint",
        ),
        pytest.param(
            workflow(imagePullPolicy="Sometimes"),
            "spec.imagePullPolicy: 'Sometimes' is not one of",
            id="pull",
        ),
        pytest.param(
            workflow(concurrency=0), "spec.concurrency: 0 is less than the minimum of 1", id="concurrency"
        ),
        pytest.param(
            workflow(scaling={"maxWorkers": 1001}),
            "spec.scaling.maxWorkers: 1001 is greater than the maximum",
            id="max",
        ),
        pytest.param(
            workflow(resources={"requests": {"cpu": "lots"}}),
            "spec.resources.requests.cpu: 'lots' does not match",
            id="quantity",
        ),
        pytest.param(
            workflow(env=[{"value": "x"}]), "spec.env[0]: 'name' is a required property", id="env-name"
        ),
        pytest.param(
            workflow(redis={"secretRef": {}}),
            "spec.redis.secretRef: 'name' is a required property",
            id="redis",
        ),
    ],
)
def test_bad_resource_is_refused_naming_the_field(manifest: dict[str, Any], message: str) -> None:
    for key in [key for key, value in manifest["spec"].items() if value is None]:
        del manifest["spec"][key]
    assert any(refusal.startswith(message) for refusal in refusals(manifest)), refusals(manifest)


def test_input_and_input_from_are_refused_together_only() -> None:
    from_config_map = {"configMapKeyRef": {"name": "in", "key": "input.json"}}
    both = run(inputFrom=from_config_map)
    [refusal] = refusals(both)
    assert "'required': ['input', 'inputFrom']" in refusal
    del both["spec"]["input"]
    assert refusals(both) == []


def test_workflow_of_a_run_is_immutable() -> None:
    old = run()
    assert refusals(run(suspend=True), old=old) == []
    assert refusals(run(workflow="orders"), old=old) == [
        "spec.workflow: workflow is immutable; create a new WorkflowRun instead"
    ]


def test_good_resources_with_every_spec_field_are_accepted() -> None:
    full_workflow = workflow(
        imagePullPolicy="Always",
        concurrency=256,
        replicas=2,
        scaling={
            "mode": "External",
            "minWorkers": 3,
            "maxWorkers": 3,
            "targetBacklogPerWorker": 1,
            "scaleDownStabilizationSeconds": 0,
            "idleSecondsBeforeScaleToZero": 0,
        },
        resources={
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"cpu": 2, "nvidia.com/gpu": "1"},
        },
        env=[
            {"name": "A", "value": "1"},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        serviceAccountName="workers",
        redis={"secretRef": {"name": "redis", "urlKey": "url", "passwordKey": "password"}},
        maxActiveRuns=2,
    )
    full_run = run(
        input={"nested": [1, None, {"a": True}]},
        suspend=True,
        shutdown="Terminate",
        activeDeadlineSeconds=60,
        ttlSecondsAfterFinished=0,
        retryGeneration=2,
    )
    assert refusals(full_workflow) == []
    assert refusals(full_run) == []
    assert refusals(run(input=None)) == []
    assert set(full_workflow["spec"]) == {field.alias for field in models.WorkflowSpec.model_fields.values()}
    spec = models.WorkflowSpec.model_validate(full_workflow["spec"])
    assert spec.env[1].to_body() == full_workflow["spec"]["env"][1]


def schedule(**spec: Any) -> dict[str, Any]:
    """A WorkflowSchedule manifest with a valid spec updated by ``spec``."""
    return {
        "apiVersion": models.API_VERSION,
        "kind": "WorkflowSchedule",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 2 * * *", "runTemplate": {"workflow": "examples", "input": 5}, **spec},
    }


def test_a_schedule_with_every_field_is_accepted_and_bad_ones_name_the_field() -> None:
    full = schedule(
        timeZone="Europe/Berlin",
        concurrencyPolicy="Replace",
        startingDeadlineSeconds=30,
        catchUp={"policy": "All", "maxRuns": 5},
        suspend=True,
        successfulRunsHistoryLimit=0,
        failedRunsHistoryLimit=2,
        runTemplate={"workflow": "examples", "input": {"a": [1]}, "activeDeadlineSeconds": 60,
                     "ttlSecondsAfterFinished": 0, "priority": "low"},
    )  # fmt: skip
    assert refusals(full) == []
    assert set(full["spec"]) == {f.alias for f in schedule_models.WorkflowScheduleSpec.model_fields.values()}
    assert schedule_models.WorkflowScheduleSpec.model_validate(full["spec"]).to_body() == full["spec"]
    assert refusals(schedule(concurrencyPolicy="Sometimes")) == [
        "spec.concurrencyPolicy: 'Sometimes' is not one of ['Allow', 'Forbid', 'Replace']"
    ]
    assert refusals(schedule(catchUp={"policy": "Latest", "maxRuns": 0})) == [
        "spec.catchUp.maxRuns: 0 is less than the minimum of 1"
    ]
    assert refusals(schedule(runTemplate={"workflow": "examples", "priority": "urgent"})) == [
        "spec.runTemplate.priority: 'urgent' is not one of ['high', 'normal', 'low']"
    ]
    [refused] = refusals(schedule(schedule="hourly"))
    assert refused.startswith("spec.schedule: 'hourly' does not match")


def test_spec_defaults_match_the_models() -> None:
    manifest = workflow()
    apply_defaults(schema_of("Workflow"), manifest)
    parsed = models.WorkflowSpec.model_validate(workflow()["spec"]).to_body()
    assert {**manifest["spec"], "env": []} == parsed  # an absent env parses as no variables


# Status contract: what the operator writes is kept by the apiserver.


NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def ready(generation: int) -> models.Condition:
    """A Ready=True condition observed at ``generation``."""
    return models.Condition(
        type="Ready",
        status=models.ConditionStatus.TRUE,
        reason="WorkersReady",
        message="3/3 workers ready",
        last_transition_time=NOW,
        observed_generation=generation,
    )


def full_workflow_status() -> models.WorkflowStatus:
    """A Workflow status with every field set."""
    return models.WorkflowStatus(
        conditions=[ready(2)],
        observed_generation=2,
        replicas=3,
        selector="floxide.io/workflow=examples",
        desired_workers=3,
        ready_workers=3,
        ready="3/3",
        active_runs=1,
        queued_runs=2,
        backlog=25,
        slots_in_use=3,
        throttled_items=7,
        graph=models.WorkflowGraph(
            nodes=[
                models.GraphNode(name="classify", input="int", output="Size"),
                models.GraphNode(name="small", input="int", output="str"),
            ],
            edges=[
                models.GraphEdge(from_="classify", to="small", kind=models.EdgeKind.ROUTE, label="Small"),
                models.GraphEdge(from_="small", to="classify", kind=models.EdgeKind.FALLBACK),
            ],
            start_node="classify",
            input_schema={"type": "integer", "title": "Input"},
        ),
        kopf={"progress": {"reconcile": {"started": "2026-11-21T12:00:00Z", "retries": 1}}},
    )


def full_run_status() -> models.WorkflowRunStatus:
    """A WorkflowRun status with every field set."""
    return models.WorkflowRunStatus(
        phase=models.Phase.SUCCEEDED,
        run_id="r-0c7a",
        progress="12/12",
        completed_items=12,
        total_items=12,
        nodes={
            "classify": models.NodeCounts(completed=1),
            "small": models.NodeCounts(completed=11, retries=2, throttled=4),
        },
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=72),
        duration="1m12s",
        message="Succeeded after 12 steps",
        error="",
        output={"result": [1, 2.5, None, "x"], "note": None},
        output_preview='{"result": [1, 2.5, null, "x"]}',
        output_key="{wf:default/examples}:run:r-0c7a:output",
        seeded=True,
        observed_retry_generation=0,
        conditions=[ready(1)],
        observed_generation=1,
        kopf={"dummy": "2026-11-21T12:00:00Z"},
    )


@pytest.mark.parametrize(
    ("kind", "status"),
    [("Workflow", full_workflow_status()), ("WorkflowRun", full_run_status())],
    ids=["Workflow", "WorkflowRun"],
)
def test_status_from_the_models_is_kept_whole(kind: str, status: models.KubeModel) -> None:
    assert status.model_fields_set == set(type(status).model_fields), "set every field"
    body = status.to_body()
    manifest = workflow() if kind == "Workflow" else run()
    assert refusals({**manifest, "status": body}) == []
    assert type(status).model_validate(body) == status


def test_status_contract_catches_fields_the_apiserver_would_prune() -> None:
    body = full_run_status().to_body()
    body["nodes"]["small"]["skipped"] = 1
    assert refusals({**run(), "status": body}) == [
        "status.nodes.small: Additional properties are not allowed ('skipped' was unexpected)"
    ]


def test_status_patch_from_a_partial_model_holds_only_what_was_set() -> None:
    patch = models.WorkflowRunStatus(phase=models.Phase.RUNNING, progress="3/10").to_body()
    assert patch == {"phase": "Running", "progress": "3/10"}


def test_graph_edge_uses_from_on_the_wire() -> None:
    edge = models.GraphEdge.model_validate({"from": "a", "to": "b", "kind": "join"})
    assert (edge.from_, edge.kind) == ("a", models.EdgeKind.JOIN)
    assert edge.to_body() == {"from": "a", "to": "b", "kind": "join"}


# Conditions


def test_condition_new_stamps_the_transition_time() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    condition = models.Condition.new(
        type="Ready", status=models.ConditionStatus.FALSE, reason="NoWorkers", observed_generation=4
    )
    assert before <= condition.last_transition_time <= datetime.now(UTC)
    assert condition.last_transition_time.microsecond == 0
    body = condition.to_body()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["lastTransitionTime"])
    assert body == {
        "type": "Ready",
        "status": "False",
        "reason": "NoWorkers",
        "message": "",
        "lastTransitionTime": body["lastTransitionTime"],
        "observedGeneration": 4,
    }


def test_merge_condition_keeps_the_time_when_the_status_holds() -> None:
    old = [ready(1), ready(1).model_copy(update={"type": "Scaled"})]
    new = models.Condition.new(
        type="Ready", status=models.ConditionStatus.TRUE, reason="Scaled", observed_generation=2
    )
    merged = models.merge_condition(old, new)
    assert [condition.type for condition in merged] == ["Ready", "Scaled"]
    assert merged[0].last_transition_time == NOW
    assert (merged[0].reason, merged[0].observed_generation) == ("Scaled", 2)
    assert merged[1] is old[1]


def test_merge_condition_takes_the_new_time_when_the_status_changes() -> None:
    new = models.Condition.new(type="Ready", status=models.ConditionStatus.FALSE, reason="NoWorkers")
    assert models.merge_condition([ready(1)], new) == [new]


def test_merge_condition_appends_a_new_type() -> None:
    new = models.Condition.new(type="Suspended", status=models.ConditionStatus.TRUE, reason="Requested")
    assert models.merge_condition([ready(1)], new) == [ready(1), new]
    assert models.merge_condition(None, new) == [new]
