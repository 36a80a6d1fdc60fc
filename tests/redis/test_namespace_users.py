"""Per-namespace Redis users (the operator's ``FLOXIDE_OPERATOR_REDIS_ACL``) on a real redis-server.

* a namespace's user cannot read, write or list another namespace's keys, not through a script
  either, and cannot run FLUSHALL, CONFIG, ACL, EVAL, KEYS or SCAN; the admin sees everything;
* real worker processes logged in as a namespace's user (``FLOXIDE_REDIS_USERNAME``) run
  workflows with retries, fan-outs, joins, context merges and fallbacks to the end, and Redis
  refuses none of their commands (its ACL log stays empty);
* :class:`NamespaceUsers` keeps the password in a Secret: it re-creates a user Redis lost (a
  restart without persistence), rotates with a grace period for the previous password, revokes
  at once when the Secret is deleted, and deleting a user closes its connections; the sweep
  deletes users of namespaces without Workflows; on a Redis Cluster every node gets the user.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from floxide_operator import tenancy
from floxide_operator.redis_users import (
    ROTATE_ANNOTATION,
    NamespaceUser,
    NamespaceUsers,
    RedisUserRefused,
    acl_rules,
    secret_name,
    username,
)
from floxide_operator.runtime import Runtime
from floxide_operator.settings import OperatorSettings
from floxide_operator.store import Redises
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from floxide.cli import load_workflow
from floxide.distributed import start_run
from floxide.distributed.models import RunStatus
from floxide.redis import RedisBackend, RedisSettings
from floxide.redis.keys import KeySpace, NamespaceKeys
from tests.redis.conftest import RedisServer, Workers
from tests.redis.topologies import ClusterServers

OURS, THEIRS = "tenant-a", "tenant-b"
REFUSED = (NoPermissionError, ResponseError)


async def _set_user(admin: Redis, user: NamespaceUser) -> None:
    await admin.execute_command("ACL", "SETUSER", user.name, *acl_rules(user))


def _as(server: RedisServer, user: NamespaceUser, password: str | None = None) -> Redis:
    return Redis(
        host="127.0.0.1",
        port=server.port,
        username=user.name,
        password=password or user.password,
        decode_responses=True,
    )


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    await client.acl_log_reset()
    yield client
    for name in await client.acl_users():
        if name != "default":
            await client.acl_deluser(name)
    await client.aclose()


async def _seed(admin: Redis, namespace: str, target: str, payload: Any) -> tuple[RedisBackend, str]:
    flow = load_workflow(target)
    backend = RedisBackend(admin, flow.name, namespace=namespace, context_type=flow.context_type)
    return backend, await start_run(flow, backend, payload, run_id=f"{namespace}-run")


async def test_a_namespace_user_cannot_read_write_or_list_another_namespace(
    admin: Redis, redis_server: RedisServer
) -> None:
    ours, theirs = NamespaceUser(OURS, "pw-a"), NamespaceUser(THEIRS, "pw-b")
    await _set_user(admin, ours)
    await _set_user(admin, theirs)
    _, run_b = await _seed(admin, THEIRS, "examples.merge:workflow", 5)
    their_keys = KeySpace(THEIRS, "merge")
    run_info, stream = their_keys.run(run_b).info, their_keys.stream
    assert await admin.exists(run_info, stream) == 2
    client = _as(redis_server, ours)
    try:
        # its own namespace: everything a worker does
        backend = RedisBackend(client, "merge", namespace=OURS, context_type=load_workflow(
            "examples.merge:workflow").context_type)  # fmt: skip
        await start_run(load_workflow("examples.merge:workflow"), backend, 1, run_id="mine")
        assert (await backend.runs.get("mine")).status is RunStatus.PENDING  # type: ignore[union-attr]

        reads: list[Callable[[], Any]] = [
            lambda: client.hgetall(run_info),
            lambda: client.xrange(stream),
            lambda: client.smembers(NamespaceKeys(THEIRS).workflows),
            lambda: client.exists(run_info),
        ]
        writes: list[Callable[[], Any]] = [
            lambda: client.hset(run_info, "status", "Cancelled"),
            lambda: client.delete(run_info),
            lambda: client.xadd(stream, {"x": "1"}),
            lambda: client.set(f"fx:{{wf:{THEIRS}/merge}}:planted", "1"),
        ]
        listings: list[Callable[[], Any]] = [
            lambda: client.keys("*"),
            lambda: client.scan(0, match="*"),
            lambda: client.randomkey(),
            lambda: client.execute_command("OBJECT", "ENCODING", run_info),
        ]
        server_wide: list[Callable[[], Any]] = [
            lambda: client.flushall(),
            lambda: client.flushdb(),
            lambda: client.config_get("requirepass"),
            lambda: client.config_set("requirepass", "mine"),
            lambda: client.acl_list(),
            lambda: client.execute_command("ACL", "SETUSER", ours.name, "+@all", "~*"),
            lambda: client.execute_command("ACL", "WHOAMI"),
            lambda: client.client_list(),
            lambda: client.eval("return redis.call('GET', KEYS[1])", 1, run_info),
            lambda: client.execute_command("SHUTDOWN", "NOSAVE"),
            lambda: client.publish("anything", "x"),
        ]
        for attempt in (*reads, *writes, *listings, *server_wide):
            with pytest.raises(REFUSED, match=r"no permissions|NOPERM"):
                await attempt()
        # a script of its own, loaded by hash, is checked like its own commands
        peek = await client.script_load("return redis.call('HGETALL', KEYS[1])")
        with pytest.raises(REFUSED, match=r"no permissions|NOPERM"):
            await client.evalsha(peek, 1, run_info)
        sneak = await client.script_load(f"return redis.call('HGETALL', '{run_info}')")
        with pytest.raises(REFUSED, match=r"can't access|no permissions|NOPERM"):
            await client.evalsha(sneak, 0)
        flush = await client.script_load("return redis.call('FLUSHALL')")
        with pytest.raises(REFUSED, match=r"can't run this command"):
            await client.evalsha(flush, 0)
    finally:
        await client.aclose()

    # nothing of theirs changed, and the admin (the operator) sees both namespaces
    assert (await admin.hget(run_info, "status")) == "Pending"
    assert await admin.xlen(stream) == 1
    assert not await admin.exists(f"fx:{{wf:{THEIRS}/merge}}:planted")
    assert await admin.exists(KeySpace(OURS, "merge").run("mine").info)
    assert {entry["username"] for entry in await admin.acl_log(count=100)} == {ours.name}


TARGETS = {
    "examples.merge:workflow": (5, [4, 5, 6]),
    "examples.retry:workflow": ("x", "x succeeded on attempt 3"),
    "examples.sum_branches:workflow": (4, None),
    "examples.split:workflow": (3, None),
    "examples.error_fallback:workflow": (None, "recovered"),
    "examples.nested:workflow": (2, None),
}


@pytest.mark.timeout(240)
async def test_workers_run_workflows_to_the_end_as_a_namespace_user(
    admin: Redis, redis_server: RedisServer, workers: Workers
) -> None:
    user = NamespaceUser(OURS, "worker-password")
    await _set_user(admin, user)
    env = {"FLOXIDE_REDIS_USERNAME": user.name, "FLOXIDE_REDIS_PASSWORD": user.password}
    for target in TARGETS:
        await workers.start(
            target, count=1, url=redis_server.url, namespace=OURS, env=env,
            client=lambda: _as(redis_server, user),
        )  # fmt: skip
    client = _as(redis_server, user)  # `floxide submit` in the namespace, as its user
    try:
        runs = {}
        for target, (payload, _) in TARGETS.items():
            flow = load_workflow(target)
            backend = RedisBackend(client, flow.name, namespace=OURS, context_type=flow.context_type)
            runs[target] = (backend, await start_run(flow, backend, payload))
        for target, (backend, run_id) in runs.items():
            info = None
            for _ in range(600):
                info = await backend.runs.get(run_id)
                if info is not None and info.status in (RunStatus.COMPLETED, RunStatus.FAILED):
                    break
                await asyncio.sleep(0.1)
            assert info is not None and info.status is RunStatus.COMPLETED, (target, info)
            expected = TARGETS[target][1]
            if expected is not None:
                assert info.output == expected, target
    finally:
        await client.aclose()
    assert await admin.acl_log(count=100) == [], "Redis refused a command of the workers"
    assert all(worker.alive() for worker in workers.started)
    logs = workers.logs()
    assert "NOPERM" not in logs and "no permissions" not in logs


# -- the keeper of the users (with a stand-in for the Kubernetes Secrets) ---------------------------


class SecretsStandIn:
    """The three Secret calls of :class:`~floxide_operator.kube.Kube` that NamespaceUsers makes."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}

    async def secret_object(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        found = self.secrets.get((namespace, name))
        if found is None:
            return None
        data = {k: base64.b64decode(v).decode() for k, v in found["data"].items()}
        return dict(found["metadata"].get("annotations") or {}), data

    async def apply_secret(self, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        current = self.secrets.setdefault(key, {"metadata": {"annotations": {}}, "data": {}})
        current["metadata"]["annotations"].update(body["metadata"].get("annotations") or {})
        for field, value in body["data"].items():
            if value is None:
                current["data"].pop(field, None)
            else:
                current["data"][field] = value

    async def delete_secret(self, namespace: str, name: str) -> None:
        self.secrets.pop((namespace, name), None)

    def annotate(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        self.secrets[(namespace, name)]["metadata"]["annotations"].update(annotations)


@pytest.fixture
def stand_in() -> Iterator[SecretsStandIn]:
    yield SecretsStandIn()


@pytest.fixture
async def redises(admin: Redis, redis_server: RedisServer) -> AsyncIterator[Redises]:
    """The operator's clients, as the operator makes them (its admin connection: the default user)."""
    made = Redises(RedisSettings(url=redis_server.url), ttl=60)
    yield made
    await made.close()


def _keeper(redises: Redises, kube: SecretsStandIn, *, grace: float = 600.0) -> NamespaceUsers:
    return NamespaceUsers(
        admin=redises.everywhere, kube=lambda: kube,  # type: ignore[arg-type,return-value]
        own_namespace="floxide-system", check_interval=1.0, rotation_grace=grace,
    )  # fmt: skip


async def _logs_in(server: RedisServer, user: NamespaceUser, password: str) -> bool:
    client = _as(server, user, password)
    try:
        return bool(await client.ping())
    except AuthenticationError:
        return False
    finally:
        await client.aclose()


async def test_the_password_survives_in_its_secret_and_the_user_comes_back_after_redis_lost_it(
    admin: Redis, redis_server: RedisServer, redises: Redises, stand_in: SecretsStandIn
) -> None:
    users = _keeper(redises, stand_in)
    user = await users.user(OURS, now=0.0)
    stored = stand_in.secrets[("floxide-system", secret_name(OURS))]["data"]
    assert base64.b64decode(stored["username"]).decode() == username(OURS) == user.name
    assert base64.b64decode(stored["password"]).decode() == user.password
    assert await _logs_in(redis_server, user, user.password)

    await admin.acl_deluser(user.name)  # as a Redis restarted without persistence
    assert not await _logs_in(redis_server, user, user.password)
    again = await users.user(OURS, now=0.5)  # within the check interval: not set yet
    assert again == user and not await _logs_in(redis_server, user, user.password)
    await users.user(OURS, now=1.0)
    assert await _logs_in(redis_server, user, user.password)

    restarted = _keeper(redises, stand_in)  # the operator restarted: same password, from the Secret
    assert await restarted.user(OURS, now=0.0) == user


async def test_rotation_keeps_the_previous_password_for_the_grace_then_drops_it(
    admin: Redis, redis_server: RedisServer, redises: Redises, stand_in: SecretsStandIn
) -> None:
    users = _keeper(redises, stand_in, grace=0.0)
    users.secret_interval = 0.0
    first = await users.user(OURS, now=0.0)
    stand_in.annotate("floxide-system", secret_name(OURS), {ROTATE_ANNOTATION: "2026-12-03"})
    slow = _keeper(redises, stand_in, grace=3600.0)
    slow.secret_interval = 0.0
    rotated = await slow.user(OURS, now=10.0)
    assert rotated.password != first.password and rotated.previous == first.password
    assert await _logs_in(redis_server, rotated, rotated.password)
    assert await _logs_in(redis_server, rotated, first.password)  # pods not yet rolled still log in
    assert await slow.user(OURS, now=20.0) == rotated  # the same request is not rotated twice

    later = await users.user(OURS, now=30.0)  # the grace (0 s here) is over
    assert later.password == rotated.password and later.previous is None
    assert await _logs_in(redis_server, later, rotated.password)
    assert not await _logs_in(redis_server, later, first.password)


async def test_deleting_the_secret_revokes_and_deleting_the_user_disconnects(
    admin: Redis, redis_server: RedisServer, redises: Redises, stand_in: SecretsStandIn
) -> None:
    users = _keeper(redises, stand_in)
    users.secret_interval = 0.0
    user = await users.user(OURS, now=0.0)
    await stand_in.delete_secret("floxide-system", secret_name(OURS))
    renewed = await users.user(OURS, now=5.0)
    assert renewed.password != user.password
    assert not await _logs_in(redis_server, user, user.password)
    assert await _logs_in(redis_server, renewed, renewed.password)

    connected = _as(redis_server, renewed)
    try:
        assert await connected.ping()
        assert await users.orphans([]) == [OURS] and await users.orphans([OURS]) == []
        await users.remove(OURS)
        assert ("floxide-system", secret_name(OURS)) not in stand_in.secrets
        assert renewed.name not in await admin.acl_users()
        with pytest.raises((AuthenticationError, ConnectionError, OSError, ResponseError)):
            await connected.ping()  # Redis closed the connection; logging in again is refused
    finally:
        await connected.aclose()


def test_the_rules_allow_nothing_beyond_the_namespace() -> None:
    rules = acl_rules(NamespaceUser("team-a", "secret"))
    assert rules[:2] == ["reset", "on"]
    assert [r for r in rules if r.startswith("~")] == ["~fx:{wf:team-a/*"]
    assert [r for r in rules if r.startswith("&")] == ["&fx:{wf:team-a/*"]
    assert "-@all" in rules and not any(r.startswith("+@") for r in rules)
    allowed = {r[1:] for r in rules if r.startswith("+")}
    assert not allowed & {"keys", "scan", "randomkey", "flushall", "flushdb", "config", "acl", "eval",
                          "client", "debug", "monitor", "shutdown", "publish", "subscribe"}  # fmt: skip
    assert json.dumps(rules).count("secret") == 1


async def test_the_sweep_deletes_only_users_of_namespaces_without_workflows(
    admin: Redis, redis_server: RedisServer, redises: Redises, stand_in: SecretsStandIn
) -> None:
    """For namespaces whose last Workflow went while the operator was down; a namespaced operator
    sweeps only its own namespace."""
    for served_only in ("", THEIRS):
        rt = Runtime(settings=OperatorSettings(redis_acl=True, namespace=served_only))
        rt.users = _keeper(redises, stand_in)
        for namespace in (OURS, THEIRS, "gone-too"):
            await rt.users.user(namespace, now=0.0)
        rt.workflows = {(OURS, "merge")}
        swept = await tenancy.sweep(rt)
        assert swept == ([THEIRS] if served_only else ["gone-too", THEIRS])
        left = {name for name in await admin.acl_users() if name.startswith("floxide-ns-")}
        assert username(OURS) in left and username(THEIRS) not in left
        assert ("floxide-system", secret_name(OURS)) in stand_in.secrets
        assert ("floxide-system", secret_name(THEIRS)) not in stand_in.secrets
        for name in left:
            await admin.acl_deluser(name)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """A 3-primary Redis Cluster on loopback for this module."""
    servers = ClusterServers(tmp_path_factory.mktemp("acl-cluster"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.mark.slow
async def test_on_a_redis_cluster_every_node_gets_the_user(
    redis_cluster: ClusterServers, stand_in: SecretsStandIn
) -> None:
    """ACLs are per node: the operator sets and deletes a namespace's user on every primary, and
    a worker's cluster client logs in wherever a key of its namespace lives."""
    operator = Redises(RedisSettings(url=redis_cluster.url), ttl=60)
    users = _keeper(operator, stand_in)
    try:
        user = await users.user(OURS, now=0.0)
        for node in redis_cluster.nodes:
            with node.sync_client() as direct:
                assert direct.acl_getuser(user.name)["keys"] == [f"~fx:{{wf:{OURS}/*"]
        settings = RedisSettings(url=redis_cluster.url, username=user.name, password=user.password)
        worker = settings.client()
        try:
            for workflow in ("a", "b", "c", "d", "e", "f"):  # keys on several slots, so several nodes
                key = KeySpace(OURS, workflow).graph
                await worker.set(key, "{}")
                assert await worker.get(key) == "{}"
            with pytest.raises(REFUSED):
                await worker.set(KeySpace(THEIRS, "a").graph, "{}")
        finally:
            await worker.aclose()
        assert await users.orphans([]) == [OURS]
        await users.remove(OURS)
        for node in redis_cluster.nodes:
            with node.sync_client() as direct:
                assert direct.acl_getuser(user.name) is None
    finally:
        await operator.close()


async def test_a_redis_that_refuses_acls_is_named_with_the_way_out(
    admin: Redis, redis_server: RedisServer, stand_in: SecretsStandIn
) -> None:
    """As a managed Redis that keeps ACLs to itself (or one without them): the Workflow is told why,
    and what to turn off, instead of workers failing to log in."""
    await admin.execute_command("ACL SETUSER", "no-acl-admin", "on", ">pw", "~*", "&*", "+@all", "-acl")
    limited = Redises(RedisSettings(url=redis_server.url, username="no-acl-admin", password="pw"), ttl=60)
    try:
        users = _keeper(limited, stand_in)
        with pytest.raises(RedisUserRefused) as refused:
            await users.user(OURS, now=0.0)
        message = str(refused.value)
        assert f"Redis refused to set the user {username(OURS)} of namespace {OURS}" in message
        assert "no permissions to run the 'acl|setuser' command" in message
        assert "redis.acl.namespaceUsers=false" in message
    finally:
        await limited.close()
