"""Group commit: the steps a worker finished together are committed in one ``commit.lua`` call.

A step's commit is queued; if no commit call of this backend is under way, one is sent at
once (a lone step waits for nothing); while one is under way, the steps finishing meanwhile
queue up and go together in the next call, up to :data:`GROUP_LIMIT` steps. One call
acknowledges every step, applies each, and claims as many new entries for the worker as the
group's steps ask for (the hand-off), so a worker with N steps in flight makes about one
round trip per N steps. The call's argument is one JSON document (decoded in Lua by
``cjson``): the client encodes one string, not some 50 arguments per step; the successors'
item JSON follow it as arguments of their own (not escaped into the document, nor decoded by
the script). A claimed item of a run in the group comes with its run's state and context as
the group left them, so the step needs no read of its own; and once a call's results are in,
the next call waits one turn of the event loop, so that the steps they woke (the hand-off's)
commit together again.

A step whose context change is a custom merge (compare-and-set) is committed alone, retried
on a conflict with the value read again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from pydantic_core import to_json
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ReadOnlyError, ResponseError

from floxide.distributed.models import Claim, RunStatus
from floxide.distributed.protocols import Commit, Handoff, StepInput
from floxide.errors import FloxideError
from floxide.redis.keys import GROUP, RunKeys
from floxide.workitem import WorkItem

if TYPE_CHECKING:
    from floxide.redis.backend import RedisBackend

__all__ = ["GROUP_LIMIT", "GroupCommit"]

log = logging.getLogger(__name__)

GROUP_LIMIT = 64
"""Steps committed in one call at most (bounds the script's run time and its reply)."""

_CAS_RETRIES = 20


def _json(value: Any) -> bytes:
    """``value`` (JSON data) as compact JSON; NaN and infinities as ``json`` writes them."""
    return to_json(value, inf_nan_mode="constants")


@dataclass
class _Pending:
    claim: Claim
    commit: Commit
    handoff: Handoff | None
    future: asyncio.Future[str]
    ops: list[tuple[str, str, str | None, list[str]]] = field(default_factory=list)


class _Group:
    """The KEYS and the JSON document of one ``commit.lua`` call."""

    def __init__(self, backend: RedisBackend, fixed: dict[str, list[bytes]]) -> None:
        self.b = backend
        self.fixed = fixed
        self.keys: list[str | bytes] = [backend.keys.stream]
        self.runs: list[dict[str, Any]] = []
        self.index: dict[str, int] = {}  # run id -> position in runs
        self.extra: dict[str, dict[str, int]] = {}  # run id -> key -> KEYS index (inboxes, context)
        self.run_keys: list[RunKeys] = []  # the keys of each run, by position
        self.steps: list[dict[str, Any]] = []
        self.successors: list[bytes] = []  # the item JSON of every step's successors, in order

    def _run(self, run_id: str) -> int:
        position = self.index.get(run_id)
        if position is None:
            keys = self.b.run_keys(run_id)
            position = self.index[run_id] = len(self.runs)
            first = len(self.keys) + 1
            fixed = self.fixed.get(run_id)
            if fixed is None:  # encoded once per run (redis-py sends bytes as they are)
                if len(self.fixed) >= 1024:
                    self.fixed.clear()
                fixed = self.fixed[run_id] = [
                    key.encode() for key in (
                        keys.info, keys.done, keys.items, keys.frames, keys.fparent, keys.fscope,
                        keys.outputs, keys.metrics, keys.parked, keys.ctx, keys.errors, keys.failed,
                        keys.fjoins,
                    )
                ]  # fmt: skip
            self.keys += fixed
            self.extra[run_id] = {}
            self.run_keys.append(keys)
            run: dict[str, Any] = {"id": run_id, "k": first, "x": [], "ib": {}}
            self.runs.append(run)
            separate = [(kind, self._key(run_id, key)) for _, kind, key in self.b.layout.separate_keys(keys)]
            if self.b.layout.model is not None:
                run["cx"] = separate
        return position

    def _key(self, run_id: str, key: str) -> int:
        """The KEYS index of one of the run's keys beyond its 13 fixed ones."""
        known = self.extra[run_id]
        index = known.get(key)
        if index is None:
            index = known[key] = len(self.keys) + 1
            self.keys.append(key)
            self.runs[self.index[run_id]]["x"].append(index)
        return index

    def add(self, pending: _Pending) -> None:
        commit, item = pending.commit, pending.commit.item
        position = self._run(item.run_id)
        run, keys = self.runs[position], self.run_keys[position]
        inbox = run["ib"]
        for f in ("", *(f for f, _ in item.scope), *((commit.opened,) if commit.opened else ())):
            if f not in inbox:
                inbox[f] = self._key(item.run_id, keys.inbox(f))
        ops = []
        for kind, name, separate, values in pending.ops:
            index = self._key(item.run_id, keys.ctx_field(separate, name)) if separate is not None else 0
            ops.append((kind, name, index, values))
        step: dict[str, Any] = {
            "r": position + 1, "d": pending.claim.delivery, "i": item.item_id, "nd": item.node,
            "a": item.attempt, "t": commit.seconds,
        }  # fmt: skip
        # the rest only when not empty (the script reads a missing one as empty)
        if item.scope:
            step["f"], step["x"] = item.scope[-1]
        if commit.opened:
            step["o"], step["sc"] = commit.opened, _json(item.scope)
            if commit.frame_joins:
                step["j"] = ",".join(commit.frame_joins)
        if commit.children:
            step["ch"] = len(commit.children)
            successors = _successors(commit)
            step["su"] = [(node, item_id) for node, item_id, _ in successors]
            self.successors += [json for _, _, json in successors]
        if commit.arrivals:
            step["ar"] = [(node, _json(value)) for node, value in commit.arrivals]
        if commit.outputs:
            step["ou"] = [_json(value) for value in commit.outputs]
        if ops:
            step["op"] = ops
        if commit.trace:  # tracing: the step span's context, for the joins the step may fire
            step["tc"] = commit.trace
        self.steps.append(step)

    def context(self, run_id: str, replies: list[Any]) -> dict[str, Any] | None:
        """A run of the group's context from commit.lua's reads of it: its ``ctx`` hash, then one
        reply per key of ``cx`` (hashes as Lua passes them, flat lists)."""
        position = self.index[run_id]
        kinds = ["map", *(kind for kind, _ in self.runs[position]["cx"])]
        shaped = [_pairs(r) if kind == "map" else r for kind, r in zip(kinds, replies, strict=True)]
        return self.b.layout.assemble(self.run_keys[position], shaped)

    def document(self, consumer: str, claims: int, want_state: bool) -> bytes:
        return to_json({
            "g": GROUP, "now": datetime.now(UTC).isoformat(), "ttl": self.b.ttl, "wf": self.b.workflow,
            "c": consumer, "n": claims, "st": want_state, "runs": self.runs, "s": self.steps,
        })  # fmt: skip


class GroupCommit:
    """Commits of one backend, grouped (see the module docstring)."""

    def __init__(self, backend: RedisBackend) -> None:
        self.b = backend
        self._queue: list[_Pending] = []
        self._fixed: dict[str, list[bytes]] = {}  # run id -> its 13 fixed keys, encoded
        self._connection: Any = None  # the connection commits are sent on (see _call)
        self._busy = False
        self._dropping: set[asyncio.Future[None]] = set()
        self._sender: asyncio.Task[None] | None = None

    async def commit(self, claim: Claim, commit: Commit, handoff: Handoff | None) -> str:
        if self.b.layout.model is not None and self.b.layout.custom_fields(commit.changes):
            return await self._alone(claim, commit, handoff)
        pending = _Pending(claim, commit, handoff, asyncio.get_running_loop().create_future())
        if commit.changes:
            pending.ops = self.b.layout.delta_ops(commit.changes, {})
        self._queue.append(pending)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all())
        # a step cancelled meanwhile cancels only its wait: the call goes on, and its outcome is
        # unknown to the step, as with any command cut off mid-way (a re-delivery finds the item
        # committed)
        return await pending.future

    async def _send_all(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue[:GROUP_LIMIT], self._queue[GROUP_LIMIT:]
                try:
                    results = await self._send(group)
                except BaseException as exc:
                    for pending in group:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for pending, result in zip(group, results, strict=True):
                    if not pending.future.done():
                        pending.future.set_result(result)
                # the steps these results wake run their next items (the hand-off) up to their
                # commits before the next call goes: they join its group instead of following
                # it one call later (else the calls alternate, a full group and a straggler)
                await asyncio.sleep(0)
        finally:
            self._sender = None
            for pending in self._queue:  # cancelled while steps were queued: they fail, not hang
                if not pending.future.done():
                    pending.future.set_exception(FloxideError("the commit was cut off"))
            self._queue = []

    async def _send(self, pending: Sequence[_Pending]) -> list[str]:
        group = _Group(self.b, self._fixed)
        for p in pending:
            group.add(p)
        handoffs = [
            p.handoff
            for p in pending
            if p.handoff is not None and not p.handoff.withdrawn and not p.future.cancelled()
        ]
        consumer = handoffs[0].consumer if handoffs else ""
        want_state = any(h.want_state for h in handoffs)
        document = group.document(consumer, len(handoffs), want_state)
        reply = cast(list[Any], await self._call(group.keys, [document, *group.successors]))
        results = [str(r) for r in reply[0]]
        contexts = {str(c[0]): group.context(str(c[0]), c[1:]) for c in reply[1]}
        for handoff, entry in zip(handoffs, reply[2:], strict=False):
            _hand_off(handoff, entry, self.b.keys.priority, contexts)
        # a step cancelled while the call ran takes no next item: handed back at once (released,
        # not left to look like a crash when its lease runs out)
        orphans = [h.claim for p in pending if p.future.cancelled() and (h := p.handoff) and h.claim]
        if orphans:
            await self.b.queue.release(consumer, orphans)
        return results

    async def _call(self, keys: list[str | bytes], args: list[bytes]) -> Any:
        """``commit.lua`` on this backend's own connection when it can (a plain client, no
        replica wait): a command sent and its reply read, without the client's pool, retries
        and timers (about half of redis-py's CPU per call); else, or after any trouble on that
        connection, through the client as usual."""
        script = self.b.scripts.commit
        direct = type(script) is AsyncScript and isinstance(self.b.client, Redis) and not self._busy
        if not direct:
            return await script(keys=keys, args=args)
        self._busy = True
        try:
            if self._connection is None:
                self._connection = await self.b.client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            connection = self._connection
            command = connection.pack_command("EVALSHA", script.sha, len(keys), *keys, *args)
            try:
                await connection.send_packed_command(command, check_health=False)
                return await connection.read_response()
            except NoScriptError:
                pass  # the server lost its scripts (restarted): the client loads it again below
            except ReadOnlyError:  # a primary turned replica (failover): the client finds the new one
                self._connection = None
                await self._drop(connection)
            except ResponseError:
                raise  # the script failed: the connection is fine
            except asyncio.CancelledError:
                self._connection = None  # cut off mid-call: its reply may still come; closed
                self._dropping.add(task := asyncio.ensure_future(self._drop(connection)))
                task.add_done_callback(self._dropping.discard)
                raise
            except Exception:  # connection trouble: the client's own path retries
                self._connection = None
                await self._drop(connection)
            return await script(keys=keys, args=args)
        finally:
            self._busy = False

    async def _drop(self, connection: Any) -> None:
        try:
            await connection.disconnect()
        except Exception:
            log.debug("closing a commit connection failed", exc_info=True)
        finally:
            await self.b.client.connection_pool.release(connection)

    async def _alone(self, claim: Claim, commit: Commit, handoff: Handoff | None) -> str:
        """A commit with custom-merged fields: compare-and-set, retried on a conflict."""
        keys = self.b.run_keys(commit.item.run_id)
        custom = self.b.layout.custom_fields(commit.changes)
        for _ in range(_CAS_RETRIES):
            stored = cast(list[str | None], await self.b.client.hmget(keys.ctx, custom))
            ops = self.b.layout.delta_ops(commit.changes, dict(zip(custom, stored, strict=True)))
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            result = (await self._send([_Pending(claim, commit, handoff, future, ops)]))[0]
            if not result.startswith("conflict:"):
                return result
            await asyncio.sleep(random.uniform(0, 0.01))
        raise FloxideError(f"context field of run '{commit.item.run_id}' kept changing; commit gave up")


def _successors(commit: Commit) -> list[tuple[str, str, bytes]]:
    """``(node, item id, item JSON)`` of each child of ``commit``: the JSON of
    ``commit.child_items()``, made from the parts the children share, encoded once."""
    item = commit.item
    head = b'{"run_id":' + to_json(item.run_id) + b',"item_id":'
    scope = to_json(item.scope)
    shared = b',"trace":' + to_json(commit.trace) + b',"payload":'
    opened = commit.opened
    frame = None if opened is None else scope[:-1] + (b",[" if item.scope else b"[") + to_json(opened)
    nodes: dict[str, bytes] = {}
    successors = []
    for child in commit.children:
        node = nodes.get(child.node)
        if node is None:
            node = nodes[child.node] = b',"node":' + to_json(child.node) + b',"attempt":1,"scope":'
        where = scope if frame is None or child.index is None else b"%b,%d]]" % (frame, child.index)
        payload = to_json(child.payload, inf_nan_mode="constants")  # as WorkItem writes it
        json = head + to_json(child.item_id) + node + where + shared + payload + b"}"
        successors.append((child.node, child.item_id, json))
    return successors


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    """A hash as Lua returns it (field, value, field, value...) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _hand_off(
    handoff: Handoff, entry: list[Any], priority: str, contexts: dict[str, dict[str, Any] | None]
) -> None:
    """Fill ``handoff`` from one claimed entry of commit.lua's reply (and its run's state, if told,
    with the run's context from ``contexts``); the entry is of class ``priority`` (the stream the
    commit read)."""
    item = WorkItem.model_validate_json(entry[1])
    handoff.claim = Claim(item=item, delivery=entry[0], priority=priority)
    if len(entry) == 5 and entry[2]:
        status, deadline, interrupt = entry[2:]
        moment = datetime.fromisoformat(deadline).timestamp() if deadline else None
        handoff.state = StepInput(RunStatus(status), contexts.get(item.run_id), moment, interrupt == "1")
