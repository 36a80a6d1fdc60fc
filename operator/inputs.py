"""A WorkflowRun's input: inline, or from a Secret or ConfigMap key its owner opened to runs.

Creating a WorkflowRun must not be a way to read what its creator could not read: the operator
reads Secrets and ConfigMaps with its own permissions, so it reads ``spec.inputFrom`` only from
objects labelled :data:`INPUT_LABEL` ``"true"`` by whoever may label them. Errors name the object,
the key and the field with what was expected, and never carry a value of the input.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from pydantic import ValidationError

from . import models
from .kube import Kube, KubeError

__all__ = ["INPUT_LABEL", "InputRefused", "input_errors", "read_input", "spec_errors"]

INPUT_LABEL = "floxide.io/run-input"
"""The label (value ``"true"``) that opens a Secret or ConfigMap to ``spec.inputFrom``."""

MAX_ERRORS = 3


class InputRefused(Exception):
    """The input cannot be had: for now (``final=False``: a missing or unlabelled object), or ever."""

    def __init__(self, reason: str, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.final = final


async def read_input(kube: Kube, spec: models.WorkflowRunSpec, namespace: str) -> Any:
    """The run's input value; :class:`InputRefused` says why it cannot be read."""
    source = spec.input_from
    if source is None:
        return spec.input
    ref = source.config_map_key_ref or source.secret_key_ref
    assert ref is not None  # the CRD requires one of them
    kind = "ConfigMap" if source.config_map_key_ref is not None else "Secret"
    read = kube.config_map if kind == "ConfigMap" else kube.secret
    try:
        found = await read(namespace, ref.name)
    except KubeError as exc:
        raise InputRefused("InputNotFound", str(exc), final=False) from exc
    if found is None:
        raise InputRefused("InputNotFound", f"{kind} {namespace}/{ref.name} does not exist", final=False)
    labels, data = found
    if labels.get(INPUT_LABEL) != "true":
        raise InputRefused(
            "InputNotAllowed",
            f"{kind} {namespace}/{ref.name} is not labelled {INPUT_LABEL}=true: runs read input only "
            "from objects their owner opened to them",
            final=False,
        )
    if ref.key not in data:
        raise InputRefused(
            "InputNotFound", f"{kind} {namespace}/{ref.name} has no key '{ref.key}'", final=False
        )
    try:
        return json.loads(data[ref.key])
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"  # the position only: the text may be secret
        raise InputRefused(
            "InvalidInput",
            f"{kind} {ref.name} key '{ref.key}' is not JSON ({exc.msg} at {where})",
            final=True,
        ) from exc


def _path(parts: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


_EXPECTED = {
    "type": "expected type {}",
    "minimum": "expected a number >= {}",
    "maximum": "expected a number <= {}",
    "exclusiveMinimum": "expected a number > {}",
    "exclusiveMaximum": "expected a number < {}",
    "minLength": "expected at least {} characters",
    "maxLength": "expected at most {} characters",
    "minItems": "expected at least {} items",
    "maxItems": "expected at most {} items",
    "pattern": "expected text matching '{}'",
    "format": "expected the format {}",
}
"""What each schema rule wanted, said from the schema's own value."""


def _expected(error: jsonschema.ValidationError) -> str:
    """What the schema wanted, from the schema alone (never the value that failed)."""
    rule, wanted = str(error.validator), error.validator_value
    if rule == "required" and isinstance(wanted, list):
        given = error.instance if isinstance(error.instance, dict) else {}
        missing = [str(name) for name in wanted if name not in given]
        return f"missing required field {', '.join(map(repr, missing)) or '(unknown)'}"
    if rule in ("enum", "const"):
        return f"expected {'one of ' if rule == 'enum' else ''}{json.dumps(wanted)[:120]}"
    if rule == "additionalProperties":
        return "has fields the schema does not allow"
    if rule in _EXPECTED:
        return _EXPECTED[rule].format(wanted)
    return f"does not satisfy the schema's '{rule}' rule"


def input_errors(schema: dict[str, Any] | None, value: Any) -> list[str]:
    """Why ``value`` does not fit the input schema: each names the field and what was expected."""
    if not schema:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda error: list(map(str, error.absolute_path)))
    return [f"input{_path(error.absolute_path)}: {_expected(error)}" for error in errors[:MAX_ERRORS]]


def spec_errors(exc: ValidationError) -> str:
    """A spec's validation errors, each with its field and message, without the values given."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:MAX_ERRORS]:
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"spec.{where}: {error['msg']}" if where else f"spec: {error['msg']}")
    return "; ".join(parts)
