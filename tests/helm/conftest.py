"""Fixtures for the Helm chart tests (helpers live in helmchart.py).

Value sets: the chart's defaults plus every ``helm/floxide/ci/*-values.yaml`` file; a test that
takes the ``rendered`` fixture runs once per value set.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.helm.helmchart import CHART, VALUE_SETS, Rendered, render_chart


@pytest.fixture(scope="session")
def values_yaml() -> dict[str, Any]:
    """The chart's default values."""
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


@pytest.fixture(params=list(VALUE_SETS), ids=list(VALUE_SETS))
def value_set(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def rendered(value_set: str) -> Rendered:
    """The chart rendered with one value set."""
    return render_chart(VALUE_SETS[value_set])
