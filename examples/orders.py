"""An order pipeline with fallbacks, a declared retry policy and a merging context.

``validate -> payment -> allocate_stock -> notify``. A failed payment goes to
``payment_failed``, a stock allocation that fails its 3 attempts (linear 50 ms) goes to
``stock_failed``; both continue to ``notify``. Each run ends with ``CustomerNotified``:

* ``Laptop``: every step succeeds;
* ``FailPayment``: payment fails, ``payment_failed`` records it;
* ``RetryStock``: allocation fails 3 times, ``stock_failed`` records it.

The context keeps the last status (last writer wins), an append-only event log and the
number of failed allocation attempts (summed). An order with quantity 0 fails validation,
which has no fallback, so the run fails.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from floxide import (
    BackoffStrategy,
    Failure,
    Merge,
    NodeFailed,
    RetryPolicy,
    Workflow,
    WorkflowCtx,
    edge,
    node,
    on_failure,
)


class Order(BaseModel):
    order_id: str
    item: str
    quantity: int


class OrderStatus(StrEnum):
    VALIDATED = "Validated"
    PAID = "Paid"
    STOCK_ALLOCATED = "StockAllocated"
    FAILED_PAYMENT = "FailedPayment"
    FAILED_STOCK = "FailedStock"
    CUSTOMER_NOTIFIED = "CustomerNotified"


class OrderCtx(BaseModel):
    status: OrderStatus | None = None
    error_message: str | None = None
    stock_allocation_retries: Annotated[int, Merge.sum()] = 0
    events: Annotated[list[str], Merge.append()] = Field(default_factory=list)


Ctx = WorkflowCtx[OrderCtx]


def record(ctx: Ctx, status: OrderStatus, event: str) -> None:
    ctx.store.status = status
    ctx.store.events.append(event)


@node
async def validate(ctx: Ctx, order: Order) -> Order:
    if order.quantity <= 0:
        raise ValueError(f"order {order.order_id}: quantity must be positive, got {order.quantity}")
    record(ctx, OrderStatus.VALIDATED, f"validated {order.order_id}")
    return order


@node
async def payment(ctx: Ctx, order: Order) -> Order:
    if order.item == "FailPayment":
        raise RuntimeError("payment declined")
    record(ctx, OrderStatus.PAID, f"paid {order.order_id}")
    return order


@node
async def allocate_stock(ctx: Ctx, order: Order) -> Order:
    if order.item == "RetryStock":
        raise RuntimeError(f"no stock for {order.item} (attempt {ctx.attempt})")
    record(ctx, OrderStatus.STOCK_ALLOCATED, f"allocated {order.quantity} x {order.item}")
    return order


@node
async def payment_failed(ctx: Ctx, failure: Failure[Order]) -> Order:
    record(ctx, OrderStatus.FAILED_PAYMENT, f"payment failed: {failure.error}")
    ctx.store.error_message = failure.error
    return failure.input


@node
async def stock_failed(ctx: Ctx, failure: Failure[Order]) -> Order:
    record(ctx, OrderStatus.FAILED_STOCK, f"stock failed after {failure.attempts} attempts")
    ctx.store.error_message = failure.error
    ctx.store.stock_allocation_retries += failure.attempts - 1
    return failure.input


@node
async def notify(ctx: Ctx, order: Order) -> OrderStatus:
    record(ctx, OrderStatus.CUSTOMER_NOTIFIED, f"notified the customer of {order.order_id}")
    return OrderStatus.CUSTOMER_NOTIFIED


stock_retry_policy = RetryPolicy(
    max_attempts=3, initial_backoff=0.05, max_backoff=1.0, strategy=BackoffStrategy.LINEAR
)

workflow: Workflow[Order, OrderStatus] = Workflow(
    "orders",
    start=validate,
    context=OrderCtx,
    edges=[
        edge(validate, payment),
        edge(payment, allocate_stock),
        edge(allocate_stock, notify),
        on_failure(payment, payment_failed),
        edge(payment_failed, notify),
        on_failure(allocate_stock, stock_failed),
        edge(stock_failed, notify),
    ],
    retry={allocate_stock: stock_retry_policy},
)


async def demo() -> None:
    print(workflow.to_dot())
    for number, item in enumerate(["Laptop", "FailPayment", "RetryStock"], start=123):
        result = await workflow.execute(Order(order_id=f"ORD-{number}", item=item, quantity=1))
        print(f"{item}: {result.output} ({'; '.join(result.context.events)})")
    try:
        await workflow.run(Order(order_id="ORD-0", item="Laptop", quantity=0))
    except NodeFailed as exc:
        print(f"quantity 0: {exc}")


def main() -> None:
    asyncio.run(demo())


if __name__ == "__main__":
    main()
