"""Context merge strategies (``floxide.merge``) and the laws its docstring states.

Cases:
* each strategy's delta and merge: replace, sum, max, min, append, union (set and list),
  update (set and delete keys), fixed (refused), custom (three-way);
* steps that break a strategy's rule raise ``MergeError`` naming the field;
* strategies are read from ``Annotated``; the default is replace; misfits are ``GraphError``;
* ``apply`` returns a new model and leaves the current one alone;
* ``apply_json`` (for out-of-process stores) gives the same result as ``apply``;
* laws (hypothesis): an unchanged field has no delta; applying a step's delta to the state
  it started from gives the state it ended with; the deltas of sum, max, min, union and
  of update on distinct keys commute (append keeps every item, in either order).
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from floxide import GraphError, Merge, MergeError
from floxide.merge import FieldChange, apply, apply_json, diff, strategies


def three_way_sum(current: int, before: int, after: int) -> int:
    return current + (after - before)


class Model(BaseModel):
    name: str = ""
    total: Annotated[int, Merge.sum()] = 0
    ratio: Annotated[float, Merge.sum()] = 0.0
    high: Annotated[int, Merge.max()] = 0
    low: Annotated[int, Merge.min()] = 0
    log: Annotated[list[int], Merge.append()] = Field(default_factory=list)
    tags: Annotated[set[int], Merge.union()] = Field(default_factory=set)
    seen: Annotated[list[int], Merge.union()] = Field(default_factory=list)
    data: Annotated[dict[str, int], Merge.update()] = Field(default_factory=dict)
    custom: Annotated[int, Merge.custom(three_way_sum)] = 0


class Config(BaseModel):
    limit: Annotated[int, Merge.fixed()] = 3


def changed(before: Model, **fields: Any) -> Model:
    after = before.model_copy(deep=True)
    for key, value in fields.items():
        setattr(after, key, value)
    return after


def test_strategies_from_annotations() -> None:
    kinds = {name: merge.kind for name, merge in strategies(Model).items()}
    assert kinds == {
        "name": "replace", "total": "sum", "ratio": "sum", "high": "max", "low": "min", "log": "append",
        "tags": "union", "seen": "union", "data": "update", "custom": "custom",
    }  # fmt: skip


def test_each_strategy_merges_its_delta_into_the_current_value() -> None:
    base = Model(
        name="a", total=10, high=5, low=5, log=[1], tags={1}, seen=[1], data={"k": 1, "x": 0}, custom=3
    )
    step = changed(
        base,
        name="b",
        total=13,
        high=9,
        low=2,
        log=[1, 2],
        tags={1, 2},
        seen=[1, 2],
        data={"k": 2, "n": 1},
        custom=4,
    )
    current = base.model_copy(update={"total": 100, "high": 20, "low": 0, "log": [1, 7], "tags": {1, 7}})
    merged = apply(current, diff(base, step))
    assert merged.name == "b"  # replace: the step's value wins
    assert merged.total == 103  # sum: +3 on top of the current 100
    assert merged.high == 20  # max: 9 < 20
    assert merged.low == 0  # min: 2 > 0
    assert merged.log == [1, 7, 2]  # append: the appended items
    assert merged.tags == {1, 2, 7}
    assert merged.seen == [1, 2]
    assert merged.data == {"k": 2, "n": 1}  # update: 'x' deleted, 'k' changed, 'n' added
    assert merged.custom == 4
    assert current.total == 100  # apply builds a new model


def test_deltas_are_small() -> None:
    base = Model(total=10, log=[1, 2], tags={1}, data={"a": 1, "b": 2})
    step = changed(base, total=11, log=[1, 2, 3], tags={1, 5}, data={"a": 1, "b": 3})
    deltas = {c.field: c.value for c in diff(base, step)}
    assert deltas == {"total": 1, "log": [3], "tags": [5], "data": {"set": {"b": 3}, "delete": []}}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"log": [2]}, "context field 'Model.log' uses Merge.append(): a step may only append to it"),
        (
            {"tags": set()},
            "context field 'Model.tags' uses Merge.union(): a step may only add to it (removed [1])",
        ),
        ({"data": None}, "context field 'Model.data' uses Merge.update(): it must stay a dict"),
    ],
)
def test_broken_rules_raise_merge_error(fields: dict[str, Any], message: str) -> None:
    base = Model(log=[1], tags={1}, data={"a": 1})
    after = base.model_copy(update=fields)
    with pytest.raises(MergeError) as info:
        diff(base, after)
    assert str(info.value) == message


def test_fixed_field_cannot_change() -> None:
    with pytest.raises(MergeError) as info:
        diff(Config(), Config(limit=4))
    assert str(info.value) == (
        "context field 'Config.limit' is Merge.fixed(): "
        "it is set when the run starts and steps cannot change it"
    )
    assert diff(Config(), Config()) == []


def test_misfitting_strategies_are_graph_errors() -> None:
    class Bad(BaseModel):
        name: Annotated[str, Merge.sum()] = ""

    class Flag(BaseModel):
        on: Annotated[bool, Merge.max()] = False

    class Twice(BaseModel):
        n: Annotated[int, Merge.sum(), Merge.max()] = 0

    messages = []
    for model in (Bad, Flag, Twice):
        with pytest.raises(GraphError) as info:
            strategies(model)
        messages.append(str(info.value))
    assert messages == [
        "context field 'Bad.name' uses Merge.sum(), which needs a int or float field, not str",
        "context field 'Flag.on' uses Merge.max(), which needs a int or float field, not bool",
        "context field 'Twice.n' declares 2 merge strategies",
    ]


def test_optional_numbers_can_be_summed() -> None:
    class Maybe(BaseModel):
        n: Annotated[int | None, Merge.sum()] = None

    assert apply(Maybe(), [FieldChange("n", "sum", 2)]).n == 2


# -- laws ------------------------------------------------------------------------------------

small = st.integers(-1000, 1000)
keys = st.sampled_from("abcdef")


@st.composite
def models(draw: st.DrawFn) -> Model:
    return Model(
        name=draw(st.text(max_size=3)),
        total=draw(small),
        ratio=draw(st.floats(-1e6, 1e6, allow_nan=False)),
        high=draw(small),
        low=draw(small),
        log=draw(st.lists(small, max_size=4)),
        tags=draw(st.sets(st.integers(0, 30), max_size=4)),
        seen=draw(st.lists(st.integers(0, 30), max_size=4, unique=True)),
        data=draw(st.dictionaries(keys, small, max_size=4)),
        custom=draw(small),
    )


@st.composite
def steps(draw: st.DrawFn, before: Model, *, data_keys: st.SearchStrategy[str] = keys) -> Model:
    """What one step may do to ``before``, as each field's strategy allows."""
    after = before.model_copy(deep=True)
    after.name = draw(st.sampled_from([before.name, "x", "y"]))
    after.total += draw(small)
    after.ratio += draw(st.floats(-1e3, 1e3, allow_nan=False))
    after.high += draw(st.integers(0, 100))  # a max field only usefully grows
    after.low -= draw(st.integers(0, 100))
    after.log += draw(st.lists(small, max_size=3))
    after.tags |= draw(st.sets(st.integers(0, 40), max_size=3))
    after.seen += [
        x for x in draw(st.lists(st.integers(0, 40), max_size=3, unique=True)) if x not in before.seen
    ]
    for key in draw(st.lists(data_keys, max_size=3)):
        if draw(st.booleans()):
            after.data[key] = draw(small)
        else:
            after.data.pop(key, None)
    after.custom += draw(small)
    return after


def same(a: Model, b: Model) -> bool:
    return a.model_dump(exclude={"ratio"}) == b.model_dump(exclude={"ratio"}) and a.ratio == pytest.approx(
        b.ratio
    )


@given(models())
def test_law_unchanged_fields_have_no_delta(state: Model) -> None:
    assert diff(state, state.model_copy(deep=True)) == []


@given(st.data(), models())
def test_law_delta_replays_the_step(data: st.DataObject, before: Model) -> None:
    after = data.draw(steps(before))
    assert same(apply(before, diff(before, after)), after)


@given(st.data(), models())
def test_law_json_apply_matches_apply(data: st.DataObject, before: Model) -> None:
    changes = diff(before, data.draw(steps(before)))
    as_json = apply_json(Model, before.model_dump(mode="json"), [c.to_json() for c in changes])
    assert same(Model.model_validate(as_json), apply(before, changes))


@given(st.data(), models())
def test_law_deltas_commute(data: st.DataObject, base: Model) -> None:
    first = diff(base, data.draw(steps(base, data_keys=st.sampled_from("abc"))))
    second = diff(base, data.draw(steps(base, data_keys=st.sampled_from("def"))))
    one_way = apply(apply(base, first), second)
    other_way = apply(apply(base, second), first)
    for field in ("total", "high", "low", "tags", "data", "custom"):
        assert getattr(one_way, field) == getattr(other_way, field), field
    assert one_way.ratio == pytest.approx(other_way.ratio)
    assert set(one_way.seen) == set(other_way.seen)
    assert Counter(one_way.log) == Counter(other_way.log)  # no append is lost, whatever the order


@given(base=st.integers(-100, 100), increments=st.lists(st.integers(-10, 10), max_size=30))
def test_law_concurrent_sums_never_lose_or_double_count(base: int, increments: list[int]) -> None:
    start = Model(total=base)
    deltas = [diff(start, start.model_copy(update={"total": base + inc})) for inc in increments]
    current = start
    for delta in deltas:
        current = apply(current, delta)
    assert current.total == base + sum(increments)
