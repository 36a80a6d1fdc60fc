"""Every example does what its docstring (and Floxide's example) says.

Cases:
* each example module has a docstring, a module-level ``Workflow`` and a ``main()``;
* the fast examples' ``main()`` runs and prints;
* terminal_node 7 -> 21; node_config 3 -> 12 (and prints the product);
* branching 5 -> "SmallNode: 5 <= 10", 42 -> "BigNode: 84" on the same workflow;
* split 10 -> outputs [9, 10, 11], output 9; merge 10 -> [9, 10, 11];
* batch [1..5] -> [2, 4, 6, 8, 10] via ``large``, a small batch goes to ``small``;
* error_fallback -> "recovered";
* retry: succeeds on the 3rd attempt after 100 + 200 ms; retry_declared -> "success";
* orders: three runs end CustomerNotified with the right history; quantity 0 fails;
* checkpoint: fails, resumes to 5, then AlreadyCompleted (and the recorded 5 again);
* cancellation -> Cancelled and timeout -> Timeout, both promptly;
* nested 5 -> 20; generics 123 -> 6; timer_source 0..9 -> 0, 2, ..., 18;
* dot_export: DOT edges of every kind, and its runs through route, join and fallback;
* article: deterministic offline text, and a pluggable generator;
* countdown: counts its steps, validates its input;
* sum_branches: N concurrent increments sum to N;
* limits: 2 calls at once per customer at most, 20 a second after a burst of 5.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import time
from types import ModuleType

import pytest

import examples
from examples import (
    article,
    batch,
    branching,
    cancellation,
    checkpoint,
    countdown,
    dot_export,
    error_fallback,
    generics,
    limits,
    merge,
    nested,
    node_config,
    orders,
    retry,
    retry_declared,
    split,
    sum_branches,
    terminal_node,
    timeout,
    timer_source,
)
from floxide import AlreadyCompleted, InMemoryCheckpointStore, InputError, NodeFailed, Workflow

NAMES = sorted(m.name for m in pkgutil.iter_modules(examples.__path__) if not m.ispkg)
SLOW_MAINS = {"cancellation", "timeout", "timer_source", "retry", "countdown"}


def test_every_floxide_example_is_ported() -> None:
    expected = {
        "terminal_node", "node_config", "branching", "split", "merge", "batch", "error_fallback", "retry",
        "retry_declared", "orders", "checkpoint", "cancellation", "timeout", "nested", "generics",
        "timer_source", "dot_export", "article", "countdown", "sum_branches",
    }  # fmt: skip
    assert expected <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_example_module_shape(name: str) -> None:
    module: ModuleType = importlib.import_module(f"examples.{name}")
    assert module.__doc__ and len(module.__doc__.strip()) > 40
    assert isinstance(module.workflow, Workflow)
    assert callable(module.main)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in SLOW_MAINS])
def test_example_main_prints(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    importlib.import_module(f"examples.{name}").main()
    assert capsys.readouterr().out.strip()


async def test_terminal_node() -> None:
    assert await terminal_node.workflow.run(7) == 21


async def test_node_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert await node_config.workflow.run(3) == 12
    out = capsys.readouterr().out
    assert "3 * 4 = 12" in out
    assert "final output = 12" in out


async def test_branching_reuses_one_workflow() -> None:
    assert await branching.workflow.run(5) == "SmallNode: 5 <= 10"
    assert await branching.workflow.run(42) == "BigNode: 84"
    assert await branching.workflow.run(10) == "SmallNode: 10 <= 10"


async def test_split_runs_every_branch() -> None:
    result = await split.workflow.execute(10)
    assert result.outputs == [9, 10, 11]
    assert result.output == 9


async def test_merge_joins_the_split() -> None:
    assert await merge.workflow.run(10) == [9, 10, 11]


async def test_batch_large_and_small(capsys: pytest.CaptureFixture[str]) -> None:
    assert await batch.workflow.run([1, 2, 3, 4, 5]) == [2, 4, 6, 8, 10]
    assert "large batch, sum 30" in capsys.readouterr().out
    assert await batch.workflow.run([1, 2]) == [2, 4]
    assert "small batch, sum 6" in capsys.readouterr().out


async def test_error_fallback() -> None:
    assert await error_fallback.workflow.run(None) == "recovered"


async def test_retry_succeeds_on_the_third_attempt(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    assert await retry.workflow.run("call") == "call succeeded on attempt 3"
    assert time.monotonic() - started >= 0.3  # waits of 100 ms, then 200 ms
    assert capsys.readouterr().out.count("failing") == 2


async def test_retry_declared() -> None:
    started = time.monotonic()
    assert await retry_declared.workflow.run(None) == "success"
    assert time.monotonic() - started >= 0.05


async def test_orders_every_run_notifies_the_customer() -> None:
    def order(item: str, quantity: int = 1) -> orders.Order:
        return orders.Order(order_id=f"ORD-{item}", item=item, quantity=quantity)

    ok = await orders.workflow.execute(order("Laptop"))
    assert ok.output is orders.OrderStatus.CUSTOMER_NOTIFIED
    assert ok.context.status is orders.OrderStatus.CUSTOMER_NOTIFIED
    assert [e.split()[0] for e in ok.context.events] == ["validated", "paid", "allocated", "notified"]
    assert ok.context.error_message is None

    payment = await orders.workflow.execute(order("FailPayment"))
    assert payment.output is orders.OrderStatus.CUSTOMER_NOTIFIED
    assert payment.context.error_message == "payment declined"
    assert "payment failed: payment declined" in payment.context.events

    started = time.monotonic()
    stock = await orders.workflow.execute(order("RetryStock"))
    assert time.monotonic() - started >= 0.15  # 50 ms, then 100 ms
    assert stock.output is orders.OrderStatus.CUSTOMER_NOTIFIED
    assert stock.context.stock_allocation_retries == 2
    assert "stock failed after 3 attempts" in stock.context.events

    with pytest.raises(NodeFailed, match=r"node 'validate' failed: ValueError: .*quantity must be positive"):
        await orders.workflow.run(order("Laptop", quantity=0))


async def test_checkpoint_fail_resume_completed() -> None:
    workflow = checkpoint.make_workflow()
    store = InMemoryCheckpointStore()
    with pytest.raises(NodeFailed, match="test error at 2"):
        await workflow.run_with_checkpoint(0, store=store, run_id="job1")
    saved = await store.load("job1")
    assert saved is not None and [(i.node, i.payload) for i in saved.items] == [("counter", 2)]
    assert await workflow.resume(store=store, run_id="job1") == 5
    with pytest.raises(AlreadyCompleted):
        await workflow.resume(store=store, run_id="job1")
    assert await workflow.run_with_checkpoint(0, store=store, run_id="job1") == 5


async def test_cancellation_example() -> None:
    started = time.monotonic()
    assert await cancellation.run_and_cancel(after=0.05) is True
    assert time.monotonic() - started < 1.0


async def test_timeout_example() -> None:
    started = time.monotonic()
    assert await timeout.run_with_deadline(0.05) is True
    assert time.monotonic() - started < 1.0


async def test_nested() -> None:
    assert await nested.workflow.run(5) == 20


async def test_generics() -> None:
    assert await generics.workflow.run(123) == 6


async def test_timer_source() -> None:
    assert await timer_source.run(count=10, interval=0.001) == list(range(0, 20, 2))


async def test_dot_export() -> None:
    dot = dot_export.workflow.to_dot()
    assert '"task_a" -> "fallback_a" [style="dotted" color="red" label="fallback"];' in dot
    assert '"task_b" -> "task_c" [label="Branch"];' in dot
    assert '"task_b" -> "end_node" [label="Skip"];' in dot
    assert '"task_c" -> "join_point" [style="bold" label="join"];' in dot
    assert await dot_export.workflow.run(2) == 330  # 3 is odd: Branch -> 30 + 300, joined
    assert await dot_export.workflow.run(3) == 4  # 4 is even: Skip
    assert await dot_export.workflow.run(-1) == 0  # task_a fails: fallback


async def test_article_is_deterministic_and_pluggable() -> None:
    first = await article.workflow.run("Rust")
    assert first == await article.workflow.run("Rust")
    assert first.topic == "Rust"
    assert first.text.count("\n\n") == 2
    assert "Rust" in first.review

    class Upper:
        async def generate(self, prompt: str) -> str:
            return prompt.upper()

    custom = await article.make_workflow(Upper()).run("go")
    assert custom.review == "REVIEW: GO"
    assert custom.text.startswith("PARAGRAPH: OUTLINE: GO")


async def test_countdown() -> None:
    workflow = countdown.workflow
    assert await workflow.run(workflow.validate_input({"steps": 3, "delay": 0})) == 3
    assert await workflow.run(countdown.Countdown(steps=0)) == 0
    result = await workflow.execute(countdown.Countdown(steps=4, delay=0))
    assert result.steps == 4
    with pytest.raises(InputError, match="steps"):
        workflow.validate_input({"steps": -1})


async def test_sum_branches() -> None:
    assert await sum_branches.workflow.run(100) == 100
    result = await sum_branches.workflow.execute(1000)
    assert result.output == 1000
    assert result.context.total == 1000
    with pytest.raises(InputError, match="greater than or equal to 1"):
        sum_branches.workflow.validate_input(0)


def test_cancellation_really_interrupts_the_slow_node() -> None:
    started = time.monotonic()
    assert asyncio.run(cancellation.run_and_cancel(after=0.02))
    assert time.monotonic() - started < 1.0


async def test_limits_hold_per_customer_and_in_rate() -> None:
    limits.peak.clear()  # other tests run the example in this process too
    started = time.monotonic()
    result = await limits.workflow.execute(limits.sample(15))
    seconds = time.monotonic() - started
    assert len(result.outputs) == 15
    assert limits.peak == {"acme": 2, "globex": 2, "initech": 2}  # per customer
    assert seconds >= (15 - 5) / 20 - 0.05  # 20 calls a second after a burst of 5
