"""The distributed topology for tests: `deploy/local/cluster.sh` on free ports and a directory of
the test's own, so it never meets a developer's cluster or the suite's own Kafka and Neo4j."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.platform import CLI, KEY, REPO, SHARED_COMPILATION_CACHE

LOCAL = REPO / "deploy" / "local"


UP_AT = re.compile(r"Hartonomous is up at (\S+)")


@dataclass(frozen=True)
class Cluster:
    env: dict[str, str]
    urls: tuple[str, ...]  # the gateways'

    banner: str  # what the first `up` printed: a gateway's URL, the admin key, a quick start

    @property
    def key(self) -> str:
        """The admin key of tenant `default`, printed by the first start."""
        return str(KEY.findall(self.banner)[0])

    @property
    def dir(self) -> Path:
        return Path(self.env["CLUSTER_DIR"])

    def script(self, name: str, command: str) -> subprocess.CompletedProcess[str]:
        """`deploy/local/<name> <command>` on this cluster (cluster.sh, or one of its servers)."""
        return subprocess.run(
            [str(LOCAL / name), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `hartonomous` command with the settings every process of the cluster has."""
        settings = dict(
            line.split("=", 1)
            for line in (self.dir / "cluster.env").read_text().replace("'", "").splitlines()
            if "=" in line
        )
        return subprocess.run(
            [str(CLI), *args, "--data-dir", str(self.dir / "data" / "cli")],
            env={**os.environ, **settings},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def grpc_port(self, process: str) -> int:
        """The gRPC port cluster.sh gave a process: its base plus the process's place in the
        topology, which `status` lists in order."""
        return int(self.env["CLUSTER_GRPC_PORT"]) + self._place(process)

    def metrics_port(self, process: str) -> int:
        """The port of a process's Prometheus exposition (/metrics)."""
        return int(self.env["CLUSTER_METRICS_PORT"]) + self._place(process)

    def _place(self, process: str) -> int:
        status = self.script("cluster.sh", "status").stdout.splitlines()
        return [line.split()[0] for line in status].index(process)

    def kill(self, process: str) -> None:
        """SIGKILL one process of the cluster (e.g. search-1), as a node failure would."""
        pid = int((self.dir / "run" / f"{process}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of no one of ours is reaped by init; a zombie still answers kill(0).
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


PROCESSES = 15
"""How many processes cluster.sh runs at most (each a gRPC and a metrics port)."""

# Below Linux's ephemeral range (32768 and up), where outgoing connections take their ports.
_PORT_RANGE = (20_000, 32_000)


def free_block(count: int) -> int:
    """The first of `count` consecutive loopback ports that are free now."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(_PORT_RANGE[0], _PORT_RANGE[1] - count)
        if all(_bindable(port) for port in range(base, base + count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports in {_PORT_RANGE}")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def running_cluster(cluster_dir: Path, settings: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Up in `cluster_dir` on a block of free ports (generation off: no SmolLM2 per inference
    replica, unless `settings`, set over the defaults here, say otherwise), down at the end,
    checked to leave nothing running."""
    base = free_block(2 * PROCESSES + 7)
    http, grpc, metrics = base, base + 2, base + 2 + PROCESSES
    servers = iter(range(metrics + PROCESSES, base + 2 * PROCESSES + 7))
    ports = {name: str(next(servers)) for name in ("KAFKA", "CONTROLLER", "POSTGRES", "NEO4J")}
    env = {
        **os.environ,
        **SHARED_COMPILATION_CACHE,
        "CLUSTER_DIR": str(cluster_dir),
        "CLUSTER_HTTP_PORT": str(http),
        "CLUSTER_GRPC_PORT": str(grpc),
        "CLUSTER_METRICS_PORT": str(metrics),
        "CLUSTER_S3_PORT": str(next(servers)),
        "CLUSTER_KAFKA_PORT": ports["KAFKA"],
        "CLUSTER_KAFKA_CONTROLLER_PORT": ports["CONTROLLER"],
        "CLUSTER_POSTGRES_PORT": ports["POSTGRES"],
        "CLUSTER_NEO4J_PORT": ports["NEO4J"],
        "CLUSTER_GENERATION_SLOTS": "0",
        # The tests drive more requests than one client's default rate: not what is under test.
        "HARTONOMOUS_GATEWAY_RATE_PER_SECOND": "1000",
        "HARTONOMOUS_GATEWAY_RATE_BURST": "1000",
        # What cluster.sh sets for its servers, so a test can stop and start one of them.
        "KAFKA_DIR": str(cluster_dir / "kafka"),
        "KAFKA_PORT": ports["KAFKA"],
        "POSTGRES_DIR": str(cluster_dir / "postgres"),
        "POSTGRES_PORT": ports["POSTGRES"],
        "NEO4J_DIR": str(cluster_dir / "neo4j"),
        "NEO4J_PORT": ports["NEO4J"],
        "KAFKA_CONTROLLER_PORT": ports["CONTROLLER"],
        **(settings or {}),
    }
    gateways = int(env.get("CLUSTER_REPLICAS", "2"))
    started = Cluster(env, tuple(f"http://127.0.0.1:{http + n}" for n in range(gateways)), "")
    up = started.script("cluster.sh", "up")
    try:
        assert up.returncode == 0, up.stderr[-6000:]
        assert UP_AT.findall(up.stdout)[0] in started.urls and KEY.search(up.stdout), up.stdout
        yield Cluster(env, started.urls, up.stdout)
    finally:
        down = started.script("cluster.sh", "down")
        assert down.returncode == 0, down.stderr[-4000:]
        stopped = started.script("cluster.sh", "status")  # every process gone
        assert stopped.returncode == 1 and "running" not in stopped.stdout, stopped.stdout


def eventually(probe: Callable[[], bool], timeout: float, every: float = 1.0) -> float:
    """Poll until `probe` holds; the seconds it took."""
    started = time.monotonic()
    while not probe():
        assert time.monotonic() - started < timeout, f"nothing after {timeout} s"
        time.sleep(every)
    return time.monotonic() - started
