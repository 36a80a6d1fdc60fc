"""The kopf handlers of the operator, registered on a registry by :func:`register`.

No handler is registered when this module is imported: :func:`register` binds them to one
:class:`~.runtime.Runtime` (settings, clients, caches) and one ``kopf.OperatorRegistry``, so
that two operators in one process (as in tests) never share state.

* startup: kopf's settings (peering, persistence, posting), the Redis clients, ``/metrics``;
* login: the cluster credentials, for kopf and for the operator's own client (:mod:`.kube`);
* watch events of Workflows, WorkflowRuns and worker Deployments fill the runtime's views;
* one timer per Workflow (:mod:`.workflows`) and per active WorkflowRun (:mod:`.runs`);
* the WorkflowRun deletion handler removes the run's Redis data. It is optional: it does not
  hold a finalizer of its own, so a finished run is deleted even while the operator is down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import kopf

from . import deployment as manifests
from . import kube, models, tenancy
from .kube import KubeError
from .models import Phase
from .runs import cleanup_run, needs_timer, reconcile_run
from .runtime import DeploymentView, RunSeen, Runtime, phase_in
from .schedule_models import SCHEDULE_LABEL
from .schedules import register_schedules
from .settings import OperatorSettings
from .store import Redises, RedisUnavailable
from .workflows import reconcile_workflow

__all__ = ["FINALIZER", "WORKER_LABELS", "NoDiffBase", "configure_kopf", "register"]

log = logging.getLogger(__name__)

FINALIZER = models.FINALIZER

WORKER_LABELS = {"app.kubernetes.io/part-of": "floxide", "app.kubernetes.io/component": "worker"}
"""The labels of the Deployments the operator watches: its worker Deployments."""

WORKFLOWS = (models.GROUP, models.VERSION, models.WORKFLOW_PLURAL)
RUNS = (models.GROUP, models.VERSION, models.WORKFLOW_RUN_PLURAL)


class NoDiffBase(kopf.DiffBaseStorage):
    """Keep no last-handled copy of a resource: no handler here reacts to a diff."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure_kopf(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """Apply our settings to kopf's (called in the startup handler).

    * Peering: the chart's peering object, so that two operator pods never act at once;
      standalone when no name is set.
    * Diff-base storage: none (:class:`NoDiffBase`). kopf keeps the last handled spec to detect
      changes for its create and update handlers; the operator has none (its reconcilers are
      level-triggered timers), so that copy would only cost one more API write per resource.
    * Posting: only warnings and the operator's own Events reach the Kubernetes Event API.
    * Deletion: a run deleted while its timer is busy (its own TTL deletion, for one) waits for
      that tick to end; kopf looks again after ``cancellation_polling`` seconds (60 by default,
      which held such deletions for a minute), here 1.
    """
    if ours.peering_name:
        settings.peering.name = ours.peering_name
        settings.peering.mandatory = True
    else:
        settings.peering.standalone = True
    settings.persistence.finalizer = FINALIZER
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.execution.max_workers = 8
    settings.background.cancellation_polling = 1.0


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> Runtime:
    """Register every handler of one operator on ``registry``; the runtime they share."""
    rt = Runtime(settings=settings)
    _register_activities(registry, rt)
    _register_views(registry, rt)
    _register_reconcilers(registry, rt)
    register_schedules(registry, rt)
    return rt


def _register_activities(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """Startup, cleanup, login and the probe of the health endpoint."""

    @kopf.on.startup(id="startup", registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, rt.settings)
        if rt.settings.peering_name and rt.settings.create_peering:
            await _create_peering(rt)
        rt.redises = Redises(rt.settings.redis, ttl=rt.settings.redis_ttl)
        tenancy.start(rt)
        port = await rt.metrics.serve(rt.settings.metrics_port)
        log.info("serving /metrics on port %d; Redis at %s", port, rt.redises.default.where())

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(**_: Any) -> None:
        await tenancy.stop(rt)
        await rt.metrics.close()
        if rt.redises is not None:
            await rt.redises.close()
        if rt.kube is not None:
            await rt.kube.close()

    @kopf.on.login(id="login", registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        credentials, client = await kube.login()
        previous, rt.kube = rt.kube, client
        if previous is not None:
            await previous.close()
        if rt.settings.redis_secret and rt.operator_secret is None:
            await _read_operator_secret(rt)
        return credentials

    @kopf.on.probe(id="redis", registry=registry)
    async def redis_probe(**_: Any) -> str:
        try:
            await rt.require_redis().ping()
        except (RedisUnavailable, RuntimeError) as exc:
            return f"unavailable: {exc}"  # reported, never fatal: the operator keeps running
        return "ok"


def _register_views(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """The watch events that keep the runtime's views of Workflows, runs and Deployments."""

    @kopf.on.event(*WORKFLOWS, id="workflow-seen", registry=registry)
    async def workflow_seen(event: Any, name: str, namespace: str | None, **_: Any) -> None:
        key = (_namespaced(namespace), name)
        if event.get("type") == "DELETED":
            rt.workflows.discard(key)
            rt.connections.pop(key, None)
            await tenancy.workflow_deleted(rt, key[0])
            return
        rt.workflows.add(key)

    @kopf.on.event(*RUNS, id="run-seen", registry=registry)
    async def run_seen(
        event: Any, body: Any, spec: Any, status: Any, namespace: str | None, uid: str, **_: Any
    ) -> None:
        if event.get("type") == "DELETED":
            rt.runs.pop(uid, None)
            rt.metrics.run_phase(uid, None)
            return
        phase = phase_in(status)
        metadata = body.get("metadata", {})
        rt.runs[uid] = RunSeen(
            namespace=_namespaced(namespace),
            workflow=str(spec.get("workflow", "")),
            phase=phase,
            seeded=bool(status.get("seeded")),
            name=str(metadata.get("name", "")),
            schedule=(metadata.get("labels") or {}).get(SCHEDULE_LABEL),
            created=str(metadata.get("creationTimestamp") or ""),
            finished=str(status.get("finishedAt") or ""),
        )
        rt.metrics.run_phase(uid, phase or Phase.PENDING)

    @kopf.on.event("apps", "v1", "deployments", id="deployment-seen", labels=WORKER_LABELS, registry=registry)
    async def deployment_seen(event: Any, body: Any, name: str, namespace: str | None, **_: Any) -> None:
        key = (_namespaced(namespace), name)
        if event.get("type") == "DELETED":
            rt.deployments.pop(key, None)
            return
        spec, status = body.get("spec") or {}, body.get("status") or {}
        annotations = body.get("metadata", {}).get("annotations") or {}
        rt.deployments[key] = DeploymentView(
            spec_replicas=spec.get("replicas"),
            replicas=int(status.get("replicas") or 0),
            ready=int(status.get("readyReplicas") or 0),
            template_hash=annotations.get(manifests.TEMPLATE_HASH_ANNOTATION),
        )


def _register_reconcilers(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """The timers of Workflows and active runs, and the deletion handler of runs."""
    settings = rt.settings

    @kopf.timer(*WORKFLOWS, id="reconcile", interval=settings.workflow_interval, registry=registry)
    async def workflow_timer(
        body: Any,
        spec: Any,
        status: Any,
        name: str,
        namespace: str | None,
        meta: Any,
        patch: kopf.Patch,
        memo: Any,
        **_: Any,
    ) -> None:
        await _guarded(
            rt,
            "Workflow",
            f"{namespace}/{name}",
            reconcile_workflow(
                rt,
                body=body,
                spec=spec,
                status=status,
                name=name,
                namespace=_namespaced(namespace),
                meta=meta,
                patch=patch,
                memo=memo,
            ),
        )

    @kopf.timer(*RUNS, id="reconcile", interval=settings.run_interval, when=needs_timer, registry=registry)
    async def run_timer(
        body: Any,
        spec: Any,
        status: Any,
        name: str,
        namespace: str | None,
        uid: str,
        meta: Any,
        patch: kopf.Patch,
        memo: Any,
        **_: Any,
    ) -> None:
        await _guarded(
            rt,
            "WorkflowRun",
            f"{namespace}/{name}",
            reconcile_run(
                rt,
                body=body,
                spec=spec,
                status=status,
                name=name,
                namespace=_namespaced(namespace),
                uid=uid,
                meta=meta,
                patch=patch,
                memo=memo,
            ),
        )

    @kopf.on.delete(*RUNS, id="cleanup", optional=True, timeout=60, backoff=2, registry=registry)
    async def run_deleted(
        spec: Any, status: Any, name: str, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        try:
            await cleanup_run(
                rt, spec=spec, status=status, name=name, namespace=_namespaced(namespace), memo=memo
            )
        except KubeError as exc:  # the tombstone could not be left: try again
            raise kopf.TemporaryError(f"cannot record the run's deletion yet: {exc}", delay=5) from exc


def _namespaced(namespace: str | None) -> str:
    """The namespace kopf gives a handler of our namespaced resources (None only for cluster-scoped ones)."""
    assert namespace is not None, "Workflows, WorkflowRuns and Deployments are namespaced"
    return namespace


async def _guarded(rt: Runtime, kind: str, where: str, reconciliation: Awaitable[None]) -> None:
    """Run one reconciliation; log a failure instead of letting kopf back the timer off for a minute.

    The next tick tries again: reconciliations are level-triggered.
    """
    try:
        await reconciliation
    except (KubeError, RedisUnavailable) as exc:
        log.warning("%s %s: %s", kind, where, exc)
    except Exception:
        rt.metrics.reconcile_errors.labels(kind.lower()).inc()
        log.exception("%s %s: reconciliation failed", kind, where)


async def _create_peering(rt: Runtime) -> None:
    """Create the peering object before kopf looks for it (startup runs before kopf's peering).

    The operator, not the chart, creates it: the chart installs the peering CRD in the same
    release, and Helm cannot map a kind whose CRD it has only just created.
    """
    _, client = await kube.login()
    rt.kube = client  # replaced (and closed) by the login handler
    namespace = rt.settings.namespace or None
    try:
        if await client.create_peering(rt.settings.peering_name, namespace):
            log.info("created the peering object %s", rt.settings.peering_name)
    except KubeError as exc:
        log.warning("cannot create the peering object %s: %s", rt.settings.peering_name, exc)


async def _read_operator_secret(rt: Runtime) -> None:
    """Read the operator's Redis Secret once, to mirror it into Workflow namespaces."""
    namespace = rt.settings.own_namespace()
    try:
        rt.operator_secret = await rt.require_kube().secret_data(namespace, rt.settings.redis_secret)
    except KubeError as exc:
        log.warning("cannot read the Redis Secret %s/%s: %s", namespace, rt.settings.redis_secret, exc)
        return
    if rt.operator_secret is None:
        log.warning(
            "the Redis Secret %s/%s does not exist: Workflows get the operator's own Redis settings",
            namespace,
            rt.settings.redis_secret,
        )
