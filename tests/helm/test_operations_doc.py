"""docs/operations.md stays true to the chart and to scripts/e2e-kind.sh.

Cases:
- the configuration reference lists every documented value of values.yaml, with its default;
- every FLOXIDE_ variable the chart sets on the operator is in the environment table;
- the guide has every section an operator needs, none of them a placeholder;
- "Try it on kind" lists exactly the commands the script runs (recorded with stand-ins for docker,
  kind, kubectl and helm), in order, with the defaults filled in (placeholders for the worker pod,
  its container id and its PID).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.helm.helmchart import CHART, REPO, documented_keys, render_chart, run_kind_script

DOC = REPO / "docs" / "operations.md"
SCRIPT = REPO / "scripts" / "e2e-kind.sh"
# What the guide's "Try it on kind" writes for values only known at run time.
PLACEHOLDERS = {
    "COUNTDOWN_WORKER_POD": r"\S*countdown\S*",
    "CONTAINER_ID": r"[0-9a-f]+",
    "WORKER_PID": r"[0-9]+",
}
SECTIONS = (
    "## Install",
    "## Upgrade",
    "## Uninstall",
    "## Configuration reference",
    "## Security model",
    "## Metrics reference",
    "## Troubleshooting",
    "## Try it on kind",
)


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def _section(doc: str, title: str) -> str:
    start = doc.index(title)
    following = [doc.index(other) for other in SECTIONS if other in doc and doc.index(other) > start]
    return doc[start : min(following, default=len(doc))]


def test_every_documented_value_is_in_the_reference(doc: str, values_yaml: dict[str, Any]) -> None:
    reference = _section(doc, "## Configuration reference")
    reference = reference[reference.index("### Helm values") : reference.index("### Environment variables")]
    rows = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\| `([^`]+)` \| ([^|]+) \|", reference, re.M)
    }
    missing = sorted(documented_keys((CHART / "values.yaml").read_text()) - set(rows))
    assert not missing, f"values missing from docs/operations.md: {missing}"
    for key, default in rows.items():
        value: Any = values_yaml
        for part in key.split("."):
            value = value[part]
        if isinstance(value, (str, int)) and not isinstance(value, bool) and "see values.yaml" not in default:
            assert default.strip() == (f"`{value}`" if value != "" else '`""`'), key


def test_every_operator_variable_is_documented(doc: str) -> None:
    container = render_chart().one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    environment = _section(doc, "## Configuration reference")
    for variable in (item["name"] for item in container["env"]):
        assert f"| `{variable}` |" in environment, variable


def test_sections_are_complete(doc: str) -> None:
    for title in SECTIONS:
        assert title in doc, title
        body = _section(doc, title)
        assert len(body.split()) > 60, f"{title} is too thin to help anyone"
    assert not re.search(r"\b(TODO|TBD|FIXME|placeholder)\b", doc, re.I)
    metrics = _section(doc, "## Metrics reference")
    for fact in ("floxide_", "9090", "/metrics", "/healthz", "/readyz", "8080"):
        assert fact in metrics, fact
    troubleshooting = _section(doc, "## Troubleshooting")
    for fact in ("kubectl describe workflowrun", "events", "floxide errors"):
        assert fact in troubleshooting, fact


def _doc_kind_commands(doc: str) -> list[str]:
    section = _section(doc, "## Try it on kind")
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    commands = (" ".join(shlex.split(line, comments=True)) for line in blocks[-1].splitlines())
    return [command for command in commands if command]  # (comment lines are headings)


def test_try_it_on_kind_lists_exactly_the_scripts_commands(doc: str, tmp_path: Path) -> None:
    # the names in examples/k8s/run-*.yaml
    runs = "branching-big branching-small countdown limits-batch limits-urgent order-ord-123"
    proc, calls = run_kind_script(tmp_path, RUN_NAMES=runs)
    assert proc.returncode == 0, proc.stderr
    documented = _doc_kind_commands(doc)
    assert len(documented) == len(calls), "\n".join(calls)
    for written, called in zip(documented, calls, strict=True):
        pattern = re.escape(written)
        for placeholder, value in PLACEHOLDERS.items():
            pattern = pattern.replace(placeholder, value)
        assert re.fullmatch(pattern, called), f"guide: {written}\nscript: {called}"


def test_example_run_names_are_the_ones_in_the_guide() -> None:
    import yaml

    names = sorted(
        yaml.safe_load(path.read_text())["metadata"]["name"]
        for path in (REPO / "examples" / "k8s").glob("run-*.yaml")
    )
    assert names == [
        "branching-big", "branching-small", "countdown", "limits-batch", "limits-urgent", "order-ord-123"
    ]  # fmt: skip
