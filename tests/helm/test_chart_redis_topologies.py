"""The chart pointed at an external Redis Cluster or Sentinel set-up (``redis.external.mode``).

Cases:
- mode ``cluster``: the connection Secret's URL is ``redis+cluster://`` over ``nodes``
  (``rediss+cluster://`` with ``tls``), or the given ``url``;
- mode ``sentinel``: ``redis+sentinel://<sentinels>/<masterName>/<database>``;
- ``waitReplicas``/``waitTimeoutMs`` become the URL's ``wait_replicas``/``wait_timeout_ms`` options;
- every rendered URL is one the operator and the workers read as that topology
  (``RedisSettings(url=...).topology()``): the Secret is all the operator mirrors to them, and the
  operator reads its own URL from it;
- missing sentinels or nodes fail the render naming the value; the schema refuses an unknown mode.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from floxide.redis import RedisSettings
from tests.helm.helmchart import HelmError, render_chart


def _url(tmp_path: Path, external: dict[str, Any]) -> str:
    text = yaml.safe_dump({"redis": {"enabled": False, "external": external}})
    values = (
        tmp_path / f"values-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    )  # (renders are cached by path)
    values.write_text(text)
    secret = render_chart(values).one("Secret", "-redis-connection")
    return base64.b64decode(secret["data"]["redis-url"]).decode()


def test_a_cluster_from_its_nodes(tmp_path: Path) -> None:
    url = _url(tmp_path, {"mode": "cluster", "nodes": ["redis-0.redis:6379", "redis-1.redis:6379"]})
    assert url == "redis+cluster://redis-0.redis:6379,redis-1.redis:6379"
    top = RedisSettings(url=url).topology()
    assert (top.mode, top.hosts, top.tls) == (
        "cluster",
        (("redis-0.redis", 6379), ("redis-1.redis", 6379)),
        False,
    )
    tls = _url(tmp_path, {"mode": "cluster", "nodes": ["c:6380"], "tls": True})
    assert tls == "rediss+cluster://c:6380"
    assert RedisSettings(url=tls).topology().tls


def test_a_cluster_from_a_url(tmp_path: Path) -> None:
    url = _url(tmp_path, {"mode": "cluster", "url": "redis+cluster://cfg.example:6379"})
    assert url == "redis+cluster://cfg.example:6379"


def test_a_sentinel_set_up_with_a_replica_wait(tmp_path: Path) -> None:
    external = {
        "mode": "sentinel",
        "sentinels": ["redis-node-0.redis-headless:26379", "redis-node-1.redis-headless:26379"],
        "masterName": "mymaster",
        "database": 2,
        "waitReplicas": 1,
        "waitTimeoutMs": 250,
    }
    url = _url(tmp_path, external)
    assert url == (
        "redis+sentinel://redis-node-0.redis-headless:26379,redis-node-1.redis-headless:26379/mymaster/2"
        "?wait_replicas=1&wait_timeout_ms=250"
    )
    top = RedisSettings(url=url).topology()
    assert (top.mode, top.master_name, top.db, top.wait_replicas, top.wait_timeout_ms) == (
        "sentinel",
        "mymaster",
        2,
        1,
        250,
    )


def test_a_standalone_url_keeps_its_query_and_gets_the_wait(tmp_path: Path) -> None:
    url = _url(tmp_path, {"url": "redis://r:6379/0?socket_keepalive=true", "waitReplicas": 2})
    assert url == "redis://r:6379/0?socket_keepalive=true&wait_replicas=2&wait_timeout_ms=1000"
    assert RedisSettings(url=url).topology().wait_replicas == 2
    assert _url(tmp_path, {"url": "redis://r:6379/0"}) == "redis://r:6379/0"  # no wait: the URL as given


@pytest.mark.parametrize(
    ("external", "message"),
    [
        ({"mode": "sentinel"}, "redis.external.sentinels (host:port list) is required"),
        ({"mode": "cluster"}, "redis.external.nodes (host:port list) or redis.external.url is required"),
        ({"mode": "replicated", "url": "redis://r"}, "redis.external.mode"),
        ({"mode": "sentinel", "sentinels": ["no-port"]}, "redis.external.sentinels.0"),
    ],
)
def test_a_topology_without_its_addresses_is_refused(
    tmp_path: Path, external: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        _url(tmp_path, external)
