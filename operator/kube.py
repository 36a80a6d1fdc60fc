"""The operator's own calls to the Kubernetes API (beyond what kopf does for its handlers).

kopf watches the resources, patches their status and posts Events. The rest — worker
Deployments, mirrored Secrets, ``spec.inputFrom`` reads, deleting expired runs — goes through
the official client, whose calls block: every one runs in a thread (``asyncio.to_thread``), never
on the event loop.

:func:`login` configures both kopf and this client from the same source, read when it is called
(not when ``kubernetes`` was imported, which freezes ``$KUBECONFIG``): the pod's ServiceAccount
in a cluster, else the kubeconfig file named by ``$KUBECONFIG`` (or ``~/.kube/config``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from floxide.errors import FloxideError

__all__ = ["Kube", "KubeError", "login"]

log = logging.getLogger(__name__)


class KubeError(FloxideError):
    """A Kubernetes API call failed; the message names the call and the reason."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _configuration() -> kubernetes.client.Configuration:
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        try:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path.split(os.pathsep)[0], client_configuration=configuration
            )
        except (kubernetes.config.ConfigException, OSError) as exc:
            raise kopf.LoginError(f"no in-cluster ServiceAccount and no usable kubeconfig ({exc})") from exc
    return configuration


def _credentials(configuration: kubernetes.client.Configuration) -> kopf.ConnectionInfo:
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


async def login() -> tuple[kopf.ConnectionInfo, Kube]:
    """Credentials for kopf and a client for the operator, from one configuration."""
    configuration = await asyncio.to_thread(_configuration)
    return _credentials(configuration), Kube(kubernetes.client.ApiClient(configuration))


@dataclass
class Kube:
    """Blocking client calls, each run in a thread; API errors become :class:`KubeError`."""

    api: kubernetes.client.ApiClient

    @property
    def _core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    @property
    def _apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api)

    @property
    def _custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as exc:
            reason = exc.reason or ""
            raise KubeError(f"{what}: {exc.status} {reason}".strip(), status=exc.status) from exc
        except (OSError, ValueError) as exc:  # connection errors, or a response the client refused
            raise KubeError(f"{what}: {exc}") from exc

    async def secret(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """A Secret's labels and decoded entries, or None if it does not exist."""
        try:
            secret = await self._call(
                f"reading Secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        data = {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
        return dict(secret.metadata.labels or {}), data

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The decoded entries of a Secret, or None if it does not exist."""
        found = await self.secret(namespace, name)
        return None if found is None else found[1]

    async def secret_object(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """A Secret's annotations and decoded entries, or None if it does not exist."""
        found = await self._read_secret(namespace, name)
        if found is None:
            return None
        data = {key: base64.b64decode(value).decode() for key, value in (found.data or {}).items()}
        return dict(found.metadata.annotations or {}), data

    async def _read_secret(self, namespace: str, name: str) -> Any:
        try:
            return await self._call(
                f"reading Secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def delete_secret(self, namespace: str, name: str) -> None:
        """Delete a Secret; an absent one is fine."""
        try:
            await self._call(
                f"deleting Secret {namespace}/{name}", self._core.delete_namespaced_secret, name, namespace
            )
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def config_map(self, namespace: str, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
        """A ConfigMap's labels and entries, or None if it does not exist."""
        try:
            config_map = await self._call(
                f"reading ConfigMap {namespace}/{name}",
                self._core.read_namespaced_config_map,
                name,
                namespace,
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(config_map.metadata.labels or {}), dict(config_map.data or {})

    async def apply_secret(self, body: dict[str, Any]) -> None:
        """Create the Secret, or merge-patch it if it exists."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        created = {**body, "data": {k: v for k, v in body.get("data", {}).items() if v is not None}}
        try:
            await self._call(
                f"creating Secret {namespace}/{name}", self._core.create_namespaced_secret, namespace, created
            )
        except KubeError as exc:
            if exc.status != 409:
                raise
            await self._call(
                f"patching Secret {namespace}/{name}",
                self._core.patch_namespaced_secret,
                name,
                namespace,
                body,
                _content_type="application/merge-patch+json",
            )

    async def create_deployment(self, body: dict[str, Any]) -> bool:
        """Create the Deployment; False if it exists already (a 409)."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            await self._call(
                f"creating Deployment {namespace}/{name}",
                self._apps.create_namespaced_deployment,
                namespace,
                body,
            )
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch the Deployment (lists such as containers and env are replaced whole)."""
        await self._call(
            f"patching Deployment {namespace}/{name}",
            self._apps.patch_namespaced_deployment,
            name,
            namespace,
            patch,
            _content_type="application/merge-patch+json",
        )

    async def create_peering(self, name: str, namespace: str | None) -> bool:
        """Create kopf's peering object (a KopfPeering in ``namespace``, else a ClusterKopfPeering);
        False if it exists already."""
        kind = "KopfPeering" if namespace else "ClusterKopfPeering"
        body = {"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": {"name": name}}
        try:
            if namespace:
                await self._call(
                    f"creating {kind} {namespace}/{name}",
                    self._custom.create_namespaced_custom_object,
                    "kopf.dev", "v1", namespace, "kopfpeerings", body,
                )  # fmt: skip
            else:
                await self._call(
                    f"creating {kind} {name}",
                    self._custom.create_cluster_custom_object,
                    "kopf.dev", "v1", "clusterkopfpeerings", body,
                )  # fmt: skip
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def annotate(
        self, *, group: str, version: str, plural: str, namespace: str, name: str, annotations: dict[str, str]
    ) -> None:
        """Merge ``annotations`` into a custom resource's metadata."""
        await self.patch_custom(
            group=group,
            version=version,
            plural=plural,
            namespace=namespace,
            name=name,
            patch={"metadata": {"annotations": annotations}},
        )

    async def create_custom(
        self, *, group: str, version: str, plural: str, namespace: str, body: dict[str, Any]
    ) -> bool:
        """Create a custom resource; False if one of that name exists already (a 409)."""
        name = body["metadata"]["name"]
        try:
            await self._call(
                f"creating {plural}/{name} in {namespace}",
                self._custom.create_namespaced_custom_object,
                group, version, namespace, plural, body,
            )  # fmt: skip
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def patch_custom(
        self, *, group: str, version: str, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """Merge-patch a custom resource's spec or metadata."""
        await self._call(
            f"patching {plural}/{name} in {namespace}",
            self._custom.patch_namespaced_custom_object,
            group, version, namespace, plural, name, patch,
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    async def delete_custom(
        self, *, group: str, version: str, plural: str, namespace: str, name: str
    ) -> None:
        """Delete a custom resource; an absent one is fine."""
        try:
            await self._call(
                f"deleting {plural}/{name} in {namespace}",
                self._custom.delete_namespaced_custom_object,
                group,
                version,
                namespace,
                plural,
                name,
            )
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def close(self) -> None:
        """Release the client's connection pool."""
        await asyncio.to_thread(self.api.close)
