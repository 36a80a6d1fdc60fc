"""Concurrency and rate limits on nodes: charge orders through a payment API with a quota.

``split_orders`` fans a batch out into one branch per order; ``charge`` calls the (simulated)
payment API, which allows at most 2 calls at once per customer and 20 calls a second in all
(bursts of 5); ``receipt`` ends each branch. The limits are declared next to the graph::

    limits={
        charge: [
            ConcurrencyLimit(max=2, key=lambda order: order.customer),  # per customer
            RateLimit(per_second=20, burst=5),                          # the API's quota
        ]
    }

Locally (``python examples/limits.py``) a step waits for its slot and its token. Run by
workers (``floxide worker examples.limits:workflow`` on several machines), the limits hold
across all of them: a semaphore and a token bucket in Redis; an order that cannot be charged
yet is set aside ("throttled", not a failure) and the worker goes on with other orders.
``floxide limits limits`` shows the slots in use and the orders waiting.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from floxide import ConcurrencyLimit, NextAll, RateLimit, Workflow, edge, node


class Order(BaseModel):
    order_id: str
    customer: str
    amount: float


class Batch(BaseModel):
    orders: list[Order]


_calls: dict[str, int] = {}
"""Calls to the payment API in flight per customer now."""

peak: dict[str, int] = {}
"""The most calls in flight at once per customer (in this process): the limit at work."""


@node
async def split_orders(batch: Batch) -> NextAll[Order]:
    return NextAll(batch.orders)


@node
async def charge(order: Order) -> str:
    _calls[order.customer] = _calls.get(order.customer, 0) + 1
    peak[order.customer] = max(peak.get(order.customer, 0), _calls[order.customer])
    await asyncio.sleep(0.05)  # the payment API at work
    _calls[order.customer] -= 1
    return f"{order.order_id}: charged {order.amount:.2f} to {order.customer}"


@node
async def receipt(line: str) -> str:
    print(line)
    return line


workflow: Workflow[Batch, str] = Workflow(
    "limits",
    start=split_orders,
    edges=[edge(split_orders, charge), edge(charge, receipt)],
    limits={
        charge: [
            ConcurrencyLimit(max=2, key=lambda order: order.customer),
            RateLimit(per_second=20, burst=5),
        ]
    },
)


def sample(count: int = 12) -> Batch:
    customers = ("acme", "globex", "initech")
    return Batch(
        orders=[Order(order_id=f"ORD-{n}", customer=customers[n % 3], amount=10.0 + n) for n in range(count)]
    )


def main() -> None:
    started = time.monotonic()
    result = asyncio.run(workflow.execute(sample()))
    seconds = time.monotonic() - started
    print(f"{len(result.outputs)} orders charged in {seconds:.2f}s (20/s after a burst of 5)")
    print(f"most calls at once per customer: {peak}")


if __name__ == "__main__":
    main()
