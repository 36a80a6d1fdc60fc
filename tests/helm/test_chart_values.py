"""values.yaml and values.schema.json stay in sync, and the schema refuses bad values clearly.

Cases:
- every key of values.yaml is in the schema, and every schema property is in values.yaml
  (free-form maps such as annotations or resources are leaves on both sides);
- every value is documented inline with a `# --` comment (on itself or on the map it belongs to),
  and the schema describes every documented value;
- the defaults and every ci/*-values.yaml (merged over the defaults) validate against the schema;
- helm refuses wrong types, out-of-range numbers, unknown enum values and malformed URLs, and its
  message names the value and what is expected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helm.helmchart import CHART, VALUE_SETS, HelmError, documented_keys, render_chart

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _walk(values: dict[str, Any], schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, value or None, schema or None) of every key on either side."""
    properties = schema.get("properties", {})
    for key in sorted({*values, *properties}):
        dotted = f"{path}{key}"
        value, sub_schema = values.get(key), properties.get(key)
        yield dotted, (key in values and value), sub_schema
        if isinstance(value, dict) and sub_schema and "properties" in sub_schema:
            yield from _walk(value, sub_schema, f"{dotted}.")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def test_values_and_schema_have_the_same_keys(values_yaml: dict[str, Any]) -> None:
    only_in_values = [path for path, _, schema in _walk(values_yaml, SCHEMA) if schema is None]
    only_in_schema = [
        path
        for path, _, schema in _walk(values_yaml, SCHEMA)
        if schema is not None and path not in _all_value_paths(values_yaml)
    ]
    assert not only_in_values, f"keys missing from values.schema.json: {only_in_values}"
    assert not only_in_schema, f"schema properties missing from values.yaml: {only_in_schema}"


def _all_value_paths(values: dict[str, Any], path: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        paths.add(f"{path}{key}")
        if isinstance(value, dict):
            paths |= _all_value_paths(value, f"{path}{key}.")
    return paths


def test_every_value_is_documented_inline(values_yaml: dict[str, Any]) -> None:
    documented = documented_keys((CHART / "values.yaml").read_text())
    leaves = [path for path, _, schema in _walk(values_yaml, SCHEMA) if schema and "properties" not in schema]
    assert leaves

    def covered(path: str) -> bool:  # the key itself, or the map it belongs to (resources.limits)
        parts = path.split(".")
        return any(".".join(parts[:end]) in documented for end in range(len(parts), 0, -1))

    undocumented = [path for path in leaves if not covered(path)]
    assert not undocumented, f"values without a `# --` comment: {undocumented}"


def test_every_documented_value_has_a_schema_description(values_yaml: dict[str, Any]) -> None:
    documented = documented_keys((CHART / "values.yaml").read_text())
    schemas = {path: schema for path, _, schema in _walk(values_yaml, SCHEMA)}
    for path in sorted(documented):
        assert path in schemas, path
        assert schemas[path].get("description", "").strip(), (
            f"{path} has no description in values.schema.json"
        )


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_value_sets_validate_against_the_schema(values_yaml: dict[str, Any], value_set: str) -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    values = values_yaml
    values_file = VALUE_SETS[value_set]
    if values_file is not None:
        values = _merge(values_yaml, yaml.safe_load(values_file.read_text()))
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(values), key=str)
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "operator.replicaCount",
            "two",
            "operator.replicaCount: Invalid type. Expected: integer, given: string",
        ),
        ("operator.replicaCount", "2", "operator.replicaCount: Must be less than or equal to 1"),
        (
            "logging.format",
            "xml",
            'logging.format: logging.format must be one of the following: "json", "text"',
        ),
        ("image.pullPolicy", "Sometimes", "image.pullPolicy: image.pullPolicy must be one of the following"),
        ("redis.external.url", "http://redis:6379", "redis.external.url: Does not match pattern"),
        ("redis.service.port", "70000", "redis.service.port: Must be less than or equal to 65535"),
        ("crds.keep", "yes-please", "crds.keep: Invalid type. Expected: boolean, given: string"),
        (
            "metrics.serviceMonitor.interval",
            "thirty",
            "metrics.serviceMonitor.interval: Does not match pattern",
        ),
    ],
)
def test_schema_refuses_bad_values_with_a_clear_message(key: str, value: str, message: str) -> None:
    with pytest.raises(HelmError) as refused:
        render_chart(**{key: value})
    assert "values don't meet the specifications of the schema" in str(refused.value)
    assert message in str(refused.value)
