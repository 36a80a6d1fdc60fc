"""What the operator creates for a Workflow: the worker Deployment and the mirrored Redis Secret.

Pure functions from a Workflow's spec to Kubernetes manifests (plain dicts), so that they can be
tested without a server. The handlers add the owner reference (``kopf.adopt``) and send them.

The worker pods run the Workflow's image with ``floxide worker <entrypoint>``. Their Redis
connection comes from a Secret in the Workflow's namespace: the Workflow's own
(``spec.redis.secretRef``) or the operator's, mirrored there under :func:`secret_name`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from . import models

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "REDIS_HASH_ANNOTATION",
    "RESERVED_ENV",
    "TEMPLATE_HASH_ANNOTATION",
    "USERNAME_KEY",
    "WORKER_HTTP_PORT",
    "connection_hash",
    "deployment_name",
    "label_value",
    "mirrored_secret",
    "secret_name",
    "selector_labels",
    "selector_string",
    "worker_deployment",
    "worker_labels",
]

WORKER_HTTP_PORT = 9090
"""The worker's /metrics, /healthz and /readyz port (the container port named ``metrics``)."""

TEMPLATE_HASH_ANNOTATION = "floxide.io/template-hash"
"""Annotation on the Deployment: a hash of what the operator last wrote, to detect drift cheaply."""

REDIS_HASH_ANNOTATION = "floxide.io/redis-connection-hash"
"""Annotation on the worker pods: a hash of their Redis connection (the Secret's URL and password).

Pods read the Secret once, at start; when it changes (a rotated password, a reinstalled Redis),
the new hash changes the pod template, and the Deployment rolls its pods onto the new values.
"""

DEFAULT_SECRET_KEYS = models.RedisSecretRef(name="redis")
"""The key names of a Redis Secret: ``redis-url`` and ``redis-password``."""

USERNAME_KEY = "redis-username"
"""The key of a Redis Secret holding the Redis ACL user (optional; a namespace's own user)."""

RESERVED_ENV = (
    "FLOXIDE_REDIS_URL",
    "FLOXIDE_REDIS_PASSWORD",
    "FLOXIDE_REDIS_USERNAME",
    "FLOXIDE_NAMESPACE",
    "FLOXIDE_WORKER_CONCURRENCY",
    "FLOXIDE_WORKER_HTTP_PORT",
    "FLOXIDE_WORKER_DRAIN_SECONDS",
    "FLOXIDE_WORKER_SERVE_AS",
    "FLOXIDE_MAX_PAYLOAD_BYTES",
)
"""Variables the operator sets on workers; a Workflow's ``spec.env`` cannot override them."""

_MAX_NAME = 253
_MAX_LABEL = 63


def _fit(name: str, suffix: str, limit: int) -> str:
    """``name + suffix`` within ``limit`` characters: a long name is cut and made unique with a hash."""
    if len(name) + len(suffix) <= limit:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(suffix) - 9].rstrip('-.')}-{digest}{suffix}"


def deployment_name(workflow: str) -> str:
    """The worker Deployment of ``workflow``: ``<workflow>-workers``."""
    return _fit(workflow, "-workers", _MAX_NAME)


def secret_name(workflow: str) -> str:
    """The mirrored Redis Secret of ``workflow``: ``<workflow>-redis``."""
    return _fit(workflow, "-redis", _MAX_NAME)


def label_value(name: str) -> str:
    """``name`` as a label value (at most 63 characters)."""
    return _fit(name, "", _MAX_LABEL)


def selector_labels(workflow: str) -> dict[str, str]:
    """The labels that select the worker pods of ``workflow`` (immutable once the Deployment exists)."""
    return {
        "app.kubernetes.io/name": "floxide",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/instance": label_value(workflow),
    }


def worker_labels(workflow: str) -> dict[str, str]:
    """Every label of the worker Deployment and its pods."""
    return {**selector_labels(workflow), "app.kubernetes.io/part-of": "floxide"}


def selector_string(workflow: str) -> str:
    """:func:`selector_labels` as a label selector, for the scale subresource."""
    return ",".join(f"{key}={value}" for key, value in selector_labels(workflow).items())


def _secret_env(name: str, key: str, *, optional: bool) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "key": key}
    if optional:
        ref["optional"] = True
    return {"valueFrom": {"secretKeyRef": ref}}


def worker_env(
    spec: models.WorkflowSpec,
    *,
    workflow: str,
    namespace: str,
    redis: models.RedisSecretRef,
    drain_seconds: int,
    max_payload_bytes: int | None = None,
    redis_ca: str | None = None,
) -> list[dict[str, Any]]:
    """The worker container's environment: the operator's variables, then ``spec.env``.

    ``max_payload_bytes`` (the operator's own limit) bounds node outputs and context fields;
    ``redis_ca`` (PEM text) verifies a ``rediss://`` Redis. ``spec.env`` overrides neither.

    ``FLOXIDE_WORKER_SERVE_AS`` is the Workflow resource's name: its workers serve the queue
    ``{wf:<namespace>/<workflow>}``, one per Workflow resource, whatever the code calls itself.
    """
    env: list[dict[str, Any]] = [
        {"name": "FLOXIDE_REDIS_URL", **_secret_env(redis.name, redis.url_key, optional=False)},
        {"name": "FLOXIDE_REDIS_PASSWORD", **_secret_env(redis.name, redis.password_key, optional=True)},
        {"name": "FLOXIDE_REDIS_USERNAME", **_secret_env(redis.name, USERNAME_KEY, optional=True)},
        {"name": "FLOXIDE_NAMESPACE", "value": namespace},
        {"name": "FLOXIDE_WORKER_CONCURRENCY", "value": str(spec.concurrency)},
        {"name": "FLOXIDE_WORKER_HTTP_PORT", "value": str(WORKER_HTTP_PORT)},
        {"name": "FLOXIDE_WORKER_DRAIN_SECONDS", "value": str(drain_seconds)},
        {"name": "FLOXIDE_WORKER_SERVE_AS", "value": workflow},
    ]
    if max_payload_bytes is not None:
        env.append({"name": "FLOXIDE_MAX_PAYLOAD_BYTES", "value": str(max_payload_bytes)})
    if redis_ca:
        env.append({"name": "FLOXIDE_REDIS_TLS_CA_DATA", "value": redis_ca})
    taken = {var["name"] for var in env}
    env += [var.to_body() for var in spec.env if var.name not in RESERVED_ENV and var.name not in taken]
    return env


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "metrics"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def pod_template(
    spec: models.WorkflowSpec,
    *,
    workflow: str,
    namespace: str,
    redis: models.RedisSecretRef,
    service_account: str = "",
    drain_seconds: int = 25,
    connection_hash: str = "",
    max_payload_bytes: int | None = None,
    redis_ca: str | None = None,
) -> dict[str, Any]:
    """The worker pod template: hardened, probed, and wired to Redis through a Secret.

    ``connection_hash`` (:func:`connection_hash`) ties the pods to the Secret's current values.
    """
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy.value,
        "args": ["worker", spec.entrypoint],
        "env": worker_env(
            spec,
            workflow=workflow,
            namespace=namespace,
            redis=redis,
            drain_seconds=drain_seconds,
            max_payload_bytes=max_payload_bytes,
            redis_ca=redis_ca,
        ),
        "ports": [{"name": "metrics", "containerPort": WORKER_HTTP_PORT, "protocol": "TCP"}],
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.resources is not None:
        container["resources"] = spec.resources.to_body()
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": drain_seconds + 5,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }
    account = spec.service_account_name or service_account
    if account:
        pod["serviceAccountName"] = account
    metadata: dict[str, Any] = {"labels": worker_labels(workflow)}
    if connection_hash:
        metadata["annotations"] = {REDIS_HASH_ANNOTATION: connection_hash}
    return {"metadata": metadata, "spec": pod}


def worker_deployment(
    spec: models.WorkflowSpec,
    *,
    workflow: str,
    namespace: str,
    replicas: int | None,
    redis_secret: str | None = None,
    service_account: str = "",
    drain_seconds: int = 25,
    connection_hash: str = "",
    max_payload_bytes: int | None = None,
    redis_ca: str | None = None,
) -> dict[str, Any]:
    """The worker Deployment of ``workflow`` (``replicas=None`` leaves the count to someone else).

    ``redis_secret`` names the mirrored operator Secret; a Workflow with ``spec.redis`` uses its own.
    """
    redis = (
        spec.redis.secret_ref
        if spec.redis is not None
        else DEFAULT_SECRET_KEYS.model_copy(update={"name": redis_secret or secret_name(workflow)})
    )
    template = pod_template(
        spec,
        workflow=workflow,
        namespace=namespace,
        redis=redis,
        service_account=service_account,
        drain_seconds=drain_seconds,
        connection_hash=connection_hash,
        max_payload_bytes=max_payload_bytes,
        redis_ca=redis_ca,
    )
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(workflow),
            "namespace": namespace,
            "labels": worker_labels(workflow),
            "annotations": {TEMPLATE_HASH_ANNOTATION: template_hash(template)},
        },
        "spec": {
            "selector": {"matchLabels": selector_labels(workflow)},
            "revisionHistoryLimit": 3,
            "template": template,
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def template_hash(template: dict[str, Any]) -> str:
    """A short, stable hash of a pod template."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def connection_hash(url: str, password: str | None, username: str | None = None) -> str:
    """A short hash of a Redis connection, for :data:`REDIS_HASH_ANNOTATION` (the values stay secret)."""
    text = f"{url}\0{password or ''}" + (f"\0{username}" if username else "")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mirrored_secret(
    *, workflow: str, namespace: str, url: str, password: str | None, username: str | None = None
) -> dict[str, Any]:
    """The Redis Secret of ``workflow``'s workers: the keys ``redis-url``, ``redis-password`` and,
    for a namespace's own Redis user, ``redis-username``.

    A missing password or user name is ``None``: as a merge patch, that removes it.
    """
    data: dict[str, str | None] = {
        DEFAULT_SECRET_KEYS.url_key: _b64(url),
        DEFAULT_SECRET_KEYS.password_key: _b64(password) if password else None,
        USERNAME_KEY: _b64(username) if username else None,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(workflow),
            "namespace": namespace,
            "labels": worker_labels(workflow),
        },
        "data": data,
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
