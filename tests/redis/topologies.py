"""Real Redis topologies on loopback for the Redis tier: a Redis Cluster and a Sentinel set-up.

* :class:`ClusterServers`: 3 primaries (``redis-server --cluster-enabled yes`` on free ports,
  joined by ``redis-cli --cluster create ... --cluster-yes``), no replicas; its URL is
  ``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3``.
* :class:`SentinelServers`: a primary, one replica (``--replicaof``) and three sentinels
  (``redis-server sentinel.conf --sentinel``, quorum 2, ``down-after-milliseconds`` 1000), the
  primary named ``mymaster``; its URL is ``redis+sentinel://127.0.0.1:S1,...,S3/mymaster/0``.
  :meth:`SentinelServers.kill_primary` SIGKILLs the primary; :meth:`wait_failover` waits until
  the sentinels name the replica as the new primary; :meth:`pause_replica` (SIGSTOP) makes the
  replica lag behind, as a slow or partitioned one would.

Every process runs without persistence in its own directory and is stopped (SIGKILL if it
hangs) by :meth:`stop`. ``redis-cli`` comes with Debian's ``redis-tools`` (scripts/test.sh).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis as sync_redis

from tests.redis.conftest import RedisServer, free_port, require_redis_server

NO_PERSISTENCE = ["--save", "", "--appendonly", "no"]
MASTER = "mymaster"


def _wait(condition: object, what: str, *, timeout: float, logs: list[RedisServer]) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except sync_redis.RedisError as exc:
            last = exc
        time.sleep(0.1)
    tails = "\n".join(f"--- {s.directory.name}:\n{s.log_text()[-1500:]}" for s in logs)
    raise RuntimeError(f"{what} within {timeout}s (last error: {last}):\n{tails}")


class ClusterServers:
    """Three cluster primaries on loopback (see the module docstring)."""

    def __init__(self, directory: Path, *, primaries: int = 3) -> None:
        cluster = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        cluster += ["--cluster-node-timeout", "3000"]
        self.nodes = [
            RedisServer(directory / f"node-{n}", args=[*NO_PERSISTENCE, *cluster, "--cluster-port", port])
            for n, port in enumerate(str(free_port()) for _ in range(primaries))
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is missing (Debian: redis-tools, installed by scripts/test.sh)")
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")

        def ready() -> bool:
            for node in self.nodes:
                with node.sync_client() as client:
                    info = client.execute_command("CLUSTER", "INFO")
                    text = info if isinstance(info, str) else str(info)
                    if "cluster_state:ok" not in text or "cluster_known_nodes:3" not in text:
                        return False
            return True

        _wait(ready, "the cluster did not become ready", timeout=30, logs=self.nodes)

    def flushall(self) -> None:
        for node in self.nodes:
            node.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def slot_owner(self, key: str) -> int:
        """The port of the primary holding ``key``."""
        with self.nodes[0].sync_client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(primary[1])
        raise AssertionError(f"no primary holds the slot of {key!r}")


class _Sentinel(RedisServer):
    """A sentinel: ``redis-server sentinel.conf --sentinel`` (it rewrites its config file)."""

    def __init__(self, directory: Path, primary_port: int) -> None:
        super().__init__(directory)
        self.primary_port = primary_port

    def command(self) -> list[str]:
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\nlogfile {self.log}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n",
            encoding="utf-8",
        )
        return [self.executable, str(config), "--sentinel"]


class SentinelServers:
    """A primary, a replica and three sentinels on loopback (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        require_redis_server()
        self.primary = RedisServer(directory / "primary", args=NO_PERSISTENCE)
        self.replica = RedisServer(
            directory / "replica", args=[*NO_PERSISTENCE, "--replicaof", "127.0.0.1", str(self.primary.port)]
        )
        self.sentinels = [_Sentinel(directory / f"sentinel-{n}", self.primary.port) for n in range(3)]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, self.replica, *self.sentinels]

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        _wait(self._replica_synced, "the replica did not sync", timeout=30, logs=self.servers)
        for sentinel in self.sentinels:
            sentinel.start()

        def watching() -> bool:  # every sentinel knows the replica and the two other sentinels
            for sentinel in self.sentinels:
                with sentinel.sync_client() as client:
                    state = client.execute_command("SENTINEL", "MASTER", MASTER)
                    if isinstance(state, list):
                        state = dict(zip(state[::2], state[1::2], strict=True))
                    fields = state
                    if int(fields["num-slaves"]) < 1 or int(fields["num-other-sentinels"]) < 2:
                        return False
            return True

        _wait(watching, "the sentinels did not find each other and the replica", timeout=60,
              logs=self.servers)  # fmt: skip

    def _replica_synced(self) -> bool:
        with self.replica.sync_client() as client:
            info = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    def primary_port(self) -> int:
        """The port the sentinels name as the primary now."""
        with self.sentinels[0].sync_client() as client:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        return int(port)

    def kill_primary(self) -> None:
        """SIGKILL the primary: it dies at once, with whatever it had not replicated yet."""
        assert self.primary.process is not None
        self.primary.process.kill()
        self.primary.process.wait(10)

    def pause_replica(self) -> None:
        """Cut the replica off: SIGSTOP it, then have the primary drop its link (``CLIENT KILL TYPE
        replica``), so the primary's writes from now on reach no replica (a SIGSTOP alone would
        not do: the kernel keeps receiving them into the stopped replica's socket)."""
        assert self.replica.process is not None
        self.replica.process.send_signal(signal.SIGSTOP)
        with self.primary.sync_client() as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")

    def resume_replica(self) -> None:
        """SIGCONT the replica."""
        assert self.replica.process is not None
        self.replica.process.send_signal(signal.SIGCONT)

    def wait_failover(self, *, timeout: float = 60.0) -> float:
        """Wait until the sentinels name the replica as primary; the seconds it took."""
        started = time.monotonic()
        promoted = lambda: self.primary_port() == self.replica.port  # noqa: E731
        _wait(promoted, "no failover", timeout=timeout, logs=self.servers)
        return time.monotonic() - started

    def flushall(self) -> None:
        with self.sync_primary() as client:
            client.flushall()
            client.execute_command("WAIT", 1, 5000)

    def sync_primary(self) -> sync_redis.Redis:
        port = self.primary_port()
        return sync_redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
