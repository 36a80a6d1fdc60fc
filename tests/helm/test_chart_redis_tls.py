"""TLS for the bundled Redis (redis.tls): the chart's side, rendered, and its redis-server command run.

Cases:
- off by default: a `redis://` URL, no certificate volume, plain probes, no CA for clients;
- from an existing Secret (ci/redis-tls-values.yaml): the connection URL is `rediss://` on the
  Service's fully qualified name; redis-server listens for TLS only on the Service port with the
  Secret's certificate, key and CA; the probes speak TLS; the operator and the `helm test` Pod mount
  only the Secret's `ca.crt` (never the key) and name it in FLOXIDE_REDIS_TLS_CA_FILE;
- from cert-manager: a Certificate for every name of the Service (the URL's host among them) and
  127.0.0.1 (the probes), into the Secret Redis mounts, from the configured issuer;
- half-configured TLS fails the render with a message naming the values to set;
- the rendered redis-server command and probes, run with a real redis-server on certificates made
  here: the probes answer, a `rediss://` client with the CA and the password connects, a plain one
  is refused.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helm.helmchart import NAMESPACE, VALUE_SETS, HelmError, render_chart
from tests.redis.conftest import free_port, require_redis_server
from tests.redis.tls import self_signed_certificate

VALUES = VALUE_SETS["redis-tls"]
CERT_MANAGER = {
    "redis.tls.enabled": True,
    "redis.tls.certManager.enabled": True,
    "redis.tls.certManager.issuerRef.name": "internal-ca",
    "redis.tls.certManager.issuerRef.kind": "ClusterIssuer",
}
FQDN = f"fx-floxide-redis.{NAMESPACE}.svc.cluster.local"


def _url(rendered: Any) -> str:
    return base64.b64decode(rendered.one("Secret", "-redis-connection")["data"]["redis-url"]).decode()


def _redis(rendered: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = rendered.one("StatefulSet", "-redis")["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def _ca_wiring(pod: dict[str, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    (container,) = pod["containers"]
    env = [e for e in container["env"] if e["name"] == "FLOXIDE_REDIS_TLS_CA_FILE"]
    mounts = [m for m in container["volumeMounts"] if m["name"] == "redis-ca"]
    volumes = [v for v in pod["volumes"] if v["name"] == "redis-ca"]
    return env, mounts, volumes


def _clients(rendered: Any) -> list[dict[str, Any]]:
    operator = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]
    test = next(doc for doc in rendered.docs if doc["kind"] == "Pod")["spec"]
    return [operator, test]


def test_plain_by_default() -> None:
    rendered = render_chart()
    assert _url(rendered) == f"redis://{FQDN}:6379/0"
    pod, container = _redis(rendered)
    assert "tls" not in {v["name"] for v in pod["volumes"]}
    assert "--tls-port" not in container["command"]
    assert "--tls" not in container["readinessProbe"]["exec"]["command"][-1]
    assert not rendered.has("Certificate")
    for client in _clients(rendered):
        assert _ca_wiring(client) == ([], [], [])


def test_tls_from_an_existing_secret() -> None:
    rendered = render_chart(VALUES)
    assert _url(rendered) == f"rediss://{FQDN}:6379/0"
    pod, container = _redis(rendered)
    script, zero, *flags = container["command"][2:]
    assert "--port 0 " in script and zero == "redis-server"
    assert flags == [
        "--tls-port", "6379", "--tls-cert-file", "/tls/tls.crt", "--tls-key-file", "/tls/tls.key",
        "--tls-ca-cert-file", "/tls/ca.crt", "--tls-auth-clients", "no",
    ]  # fmt: skip
    assert {"name": "tls", "mountPath": "/tls", "readOnly": True} in container["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "floxide-redis-certificate"
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert "redis-cli --tls --cacert /tls/ca.crt -p 6379 ping" in probe["exec"]["command"][-1]
    assert not rendered.has("Certificate")
    for client in _clients(rendered):
        env, mounts, volumes = _ca_wiring(client)
        assert env == [{"name": "FLOXIDE_REDIS_TLS_CA_FILE", "value": "/etc/floxide/redis-ca/ca.crt"}]
        assert mounts == [{"name": "redis-ca", "mountPath": "/etc/floxide/redis-ca", "readOnly": True}]
        assert volumes == [
            {
                "name": "redis-ca",
                "secret": {
                    "secretName": "floxide-redis-certificate",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],  # not the key
                },
            }
        ]


def test_tls_from_cert_manager() -> None:
    rendered = render_chart(**CERT_MANAGER)
    certificate = rendered.one("Certificate", "-redis-tls")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    spec = certificate["spec"]
    pod, _ = _redis(rendered)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert spec["secretName"] == volume["secret"]["secretName"] == "fx-floxide-redis-tls"
    host = _url(rendered).removeprefix("rediss://").split(":")[0]
    assert host == FQDN and host in spec["dnsNames"]
    assert spec["dnsNames"] == [
        "fx-floxide-redis", f"fx-floxide-redis.{NAMESPACE}", f"fx-floxide-redis.{NAMESPACE}.svc", FQDN,
    ]  # fmt: skip
    assert spec["ipAddresses"] == ["127.0.0.1"]
    assert spec["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert (spec["duration"], spec["renewBefore"]) == ("2160h", "360h")
    assert "server auth" in spec["usages"]
    for client in _clients(rendered):
        assert _ca_wiring(client)[2][0]["secret"]["secretName"] == "fx-floxide-redis-tls"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"redis.tls.enabled": True}, "redis.tls.enabled needs a certificate: set redis.tls.existingSecret"),
        (
            {**CERT_MANAGER, "redis.tls.existingSecret": "mine"},
            "set either redis.tls.existingSecret or redis.tls.certManager.enabled, not both",
        ),
        (
            {**CERT_MANAGER, "redis.tls.certManager.issuerRef.name": ""},
            "redis.tls.certManager.issuerRef.name is required",
        ),
    ],
)
def test_half_configured_tls_is_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError, match=message):
        render_chart(**values)


# -- the rendered command, run ---------------------------------------------------------------------


@pytest.fixture
def chart_redis(tmp_path: Path) -> Iterator[tuple[int, Path, Any]]:
    """redis-server started exactly as the rendered StatefulSet starts it (paths moved to tmp_path)."""
    require_redis_server()
    port = free_port()
    rendered = render_chart(VALUES, **{"redis.service.port": port})
    _, container = _redis(rendered)
    certs = tmp_path / "tls"
    certs.mkdir()
    cert, key = self_signed_certificate(certs)
    for name, source in (("tls.crt", cert), ("tls.key", key), ("ca.crt", cert)):
        shutil.copy(source, certs / name)
    data = tmp_path / "data"
    data.mkdir()

    def local(part: str) -> str:
        return part.replace("/tls/", f"{certs}/").replace("/data", str(data))

    command = [local(part) for part in container["command"]]
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": 'p"ss\\word'}
    log = (tmp_path / "redis.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)

    def probe(kind: str) -> int:
        script = local(container[kind]["exec"]["command"][-1])
        return subprocess.run(["/bin/sh", "-c", script], env=env, timeout=10, check=False).returncode

    deadline = time.monotonic() + 15
    while probe("readinessProbe") != 0:
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "redis.log").read_text()
        time.sleep(0.2)
    try:
        yield port, cert, probe
    finally:
        process.terminate()
        process.wait(10)
        log.close()


async def test_the_rendered_redis_serves_tls_only(chart_redis: tuple[int, Path, Any]) -> None:
    from pydantic import SecretStr
    from redis.exceptions import ConnectionError as RedisConnectionError

    from floxide.redis import RedisSettings

    port, cert, probe = chart_redis
    assert probe("livenessProbe") == 0 and probe("readinessProbe") == 0
    password = SecretStr('p"ss\\word')
    secure = RedisSettings(
        url=f"rediss://127.0.0.1:{port}/0", password=password, tls_ca_data=cert.read_text()
    )
    client = secure.client()
    try:
        assert await client.ping()
    finally:
        await client.aclose()
    plain = RedisSettings(url=f"redis://127.0.0.1:{port}/0", password=password, connect_timeout=2).client()
    try:
        with pytest.raises(RedisConnectionError):
            await plain.ping()
    finally:
        await plain.aclose()
