"""A real Redis Cluster of three masters on 127.0.0.1, started and torn down by the tests.

Each node is a `RedisServer` in cluster mode on a free port, with its node file in its own
temporary directory; ``redis-cli --cluster create`` assigns the 16384 slots, and `start`
waits (bounded) until every node reports ``cluster_state:ok``. `close` always stops them all::

    with RedisCluster3(redis_server_binary, redis_cli_binary) as cluster:
        ...  # cluster.startup_nodes, cluster.url
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from types import TracebackType

from .._redis_server import RedisServer

__all__ = ["RedisCluster3", "free_cluster_port"]


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(taken: set[int]) -> int:
    """A free port P <= 55535 whose cluster bus port P + 10000 is free too (bounded search)."""
    for _ in range(1000):
        port = random.randint(20_000, 55_535)
        if taken.isdisjoint((port, port + 10_000)) and _bindable(port) and _bindable(port + 10_000):
            taken.update((port, port + 10_000))
            return port
    raise RuntimeError("no free pair of ports for a cluster node")


class RedisCluster3:
    """Three cluster-mode redis-servers joined into one cluster (no replicas)."""

    def __init__(self, server_binary: str, cli_binary: str, masters: int = 3) -> None:
        self.cli = cli_binary
        self.nodes: list[RedisServer] = []
        taken: set[int] = set()
        for _ in range(masters):
            port = free_cluster_port(taken)
            node = RedisServer(server_binary, port=port)
            node.extra_args = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node.directory / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
            )
            self.nodes.append(node)

    @property
    def url(self) -> str:
        """A URL of one node, e.g. for ``redis.cluster.RedisCluster.from_url``."""
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, create the cluster, wait until it is ``ok`` everywhere."""
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"{node.host}:{node.port}" for node in self.nodes]
            command = [self.cli, "--cluster", "create", *addresses]
            created = subprocess.run(
                [*command, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
            deadline = time.monotonic() + timeout
            while not all(self._ok(node) for node in self.nodes):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster was not ok within {timeout}s")
                time.sleep(0.05)
        except BaseException:
            self.close()
            raise

    def _ok(self, node: RedisServer) -> bool:
        info = subprocess.run(
            [self.cli, "-h", node.host, "-p", str(node.port), "CLUSTER", "INFO"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return "cluster_state:ok" in info.stdout

    def close(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisCluster3:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
