"""Runs deleted while Redis was away: a tombstone on their Workflow, cleared once Redis answers.

Deleting a WorkflowRun must neither wait for Redis nor strand the run's data there. When the
deletion handler cannot reach Redis, it leaves a tombstone, an annotation
``cleanup.floxide.io/<hash of the run id>: <run id>`` on the run's Workflow (kept in etcd, one key
per run so concurrent deletions never race), and lets the deletion finish. The Workflow's timer
deletes each tombstoned run's data as soon as Redis answers, then removes the annotation.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import kopf

from . import models
from .kube import Kube, KubeError
from .store import RedisUnavailable, WorkflowStore

__all__ = ["TOMBSTONE_PREFIX", "clear", "leave", "tombstone_key"]

log = logging.getLogger(__name__)

TOMBSTONE_PREFIX = "cleanup.floxide.io/"


def tombstone_key(run_id: str) -> str:
    """The annotation of one run's tombstone (a run id may be longer than an annotation name)."""
    return TOMBSTONE_PREFIX + hashlib.sha256(run_id.encode()).hexdigest()[:20]


async def leave(kube: Kube, *, namespace: str, workflow: str, run_id: str) -> bool:
    """Put the run's tombstone on its Workflow; False if the Workflow is gone (nothing to hold it)."""
    try:
        await kube.annotate(
            group=models.GROUP,
            version=models.VERSION,
            plural=models.WORKFLOW_PLURAL,
            namespace=namespace,
            name=workflow,
            annotations={tombstone_key(run_id): run_id},
        )
    except KubeError as exc:
        if exc.status == 404:
            return False
        raise
    return True


async def clear(store: WorkflowStore, annotations: Any, patch: kopf.Patch) -> int:
    """Delete the data of every tombstoned run of the Workflow and drop its tombstone (through
    ``patch``); how many were cleared. Stops at the first Redis error: the next tick goes on."""
    cleared = 0
    for key, run_id in dict(annotations or {}).items():
        if not key.startswith(TOMBSTONE_PREFIX):
            continue
        try:
            deleted = await store.delete(str(run_id))
        except RedisUnavailable:
            break
        log.info("deleted %d Redis keys of run %s, deleted while Redis was away", deleted, run_id)
        patch.metadata.annotations[key] = None
        cleared += 1
    return cleared
