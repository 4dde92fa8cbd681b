"""Start the real platform process (`hartonomous up`) on a temporary data dir for e2e tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).parent / "hartonomous"
KEY = re.compile(r"hk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")
"""An API key as the platform prints it."""

# Every platform process a test run starts (`up`, each inference replica of a cluster) compiles
# the same ~150 embedding shapes and the decoder's in the background: over a minute of a core
# each, on the two cores the tests share. They share one compilation cache for the run, as one
# platform's restarts share theirs: the first to compile a shape writes it, the rest load it.
# (Tests of the platform's own cache, `<data dir>/inference/xla-cache`, run in their own
# processes without this.) A positive size makes JAX read and write entries under a file lock.
_XLA_CACHE = tempfile.TemporaryDirectory(prefix="hartonomous-test-xla-")
SHARED_COMPILATION_CACHE = {
    "JAX_COMPILATION_CACHE_DIR": _XLA_CACHE.name,
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_COMPILATION_CACHE_MAX_SIZE": str(1 << 30),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(
    *args: str, data_dir: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a `hartonomous` command against `data_dir` (with `env` over this process's
    environment) and return its output."""
    return subprocess.run(
        [str(CLI), *args, "--data-dir", str(data_dir)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())


def wait_serving(port: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the platform did not report SERVING on :{port}")
            time.sleep(0.3)


def start_platform(
    data_dir: Path,
    grpc_port: int,
    metrics_port: int = 0,
    *extra: str,
    http_port: int | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[str] = subprocess.PIPE,
    stderr: int | IO[str] = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """`http_port`: the gateway's (a free one unless given, so a running `make run` on 8000
    never collides). Output goes to files rather than pipes where a test makes many requests:
    an unread pipe fills up and blocks the platform's logging."""
    environment = {
        **os.environ,
        **SHARED_COMPILATION_CACHE,
        "HARTONOMOUS_LOG_LEVEL": "INFO",
        **(env or {}),
    }
    ports = ["--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port)]
    ports += ["--http-port", str(free_port() if http_port is None else http_port)]
    return subprocess.Popen(
        [str(CLI), "up", "--data-dir", str(data_dir), *ports, *extra],
        cwd=REPO,
        env=environment,
        stdout=stdout,
        stderr=stderr,
        text=True,
    )
