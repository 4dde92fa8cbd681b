"""The real platform for a benchmark: `hartonomous up` on a scratch data dir, in its own
process, once it is ready and inference has compiled its warm-up shapes."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "hartonomous"

# The inference warm-up's progress, from the platform's Prometheus endpoint.
WARMING = re.compile(r"^hartonomous_inference_shapes_to_compile (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Platform:
    url: str
    grpc_target: str
    key: str
    tenant_id: str
    pid: int  # the platform process's, for what it costs in memory


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [str(CLI), *args, "--data-dir", str(data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def platform(
    data_dir: Path, env: Mapping[str, str], role: str = "writer", log: Path | None = None
) -> Iterator[Platform]:
    """`hartonomous up` on `data_dir` with `env` added, ready and warm, with a tenant and a
    key of `role`; stopped afterwards. Its log goes to `log` (JSON lines), or nowhere."""
    http_port, grpc_port, metrics_port = _free_port(), _free_port(), _free_port()
    ports = ["--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    ports += ["--metrics-port", str(metrics_port)]
    sink = log.open("wb") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        [str(CLI), "up", "--data-dir", str(data_dir), *ports],
        cwd=REPO,
        env={**os.environ, "HARTONOMOUS_GENERATION_SLOTS": "0", **env},  # none of these generate
        stdout=subprocess.DEVNULL,
        stderr=sink,
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_until(lambda: _ready(url), process, timeout=180, waiting_for=f"GET {url}/readyz")
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        _wait_until(
            lambda: warm(metrics_url), process, timeout=900, waiting_for="inference warm-up"
        )
        tenant_id = _cli(data_dir, "tenants", "create", "bench")
        key = _cli(data_dir, "keys", "create", "--tenant", "bench", "--role", role)
        yield Platform(url, f"127.0.0.1:{grpc_port}", key, tenant_id, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=300)  # a platform that just took thousands of documents drains a while
        if not isinstance(sink, int):
            sink.close()


def _wait_until(
    done: Callable[[], bool],
    process: subprocess.Popen[bytes],
    *,
    timeout: float,
    waiting_for: str,
) -> None:
    """Poll `done` (an HTTP error counts as not yet) until it holds; fail if the platform
    exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"the platform exited ({process.returncode}) waiting for {waiting_for}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if done():
                return
        time.sleep(0.5)
    raise SystemExit(f"no {waiting_for} in {timeout} s")


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/readyz", timeout=5).status_code == 200


def warm(metrics_url: str) -> bool:
    """Inference has compiled its warm-up shapes: the platform serves meanwhile, but a
    measurement would share the cores with the compiler (minutes on a fresh data dir)."""
    match = WARMING.search(httpx.get(metrics_url, timeout=5).text)
    return match is not None and float(match.group(1)) == 0
