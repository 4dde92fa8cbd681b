"""What a search through the API cannot go under on this machine: each kind of step the request
path takes, measured alone in the bench's own process, in the same run as the budget.

- one HTTP request to the gateway (`GET /healthz` on a kept-alive connection: the client, the
  server and the middleware every request passes, no work of its own);
- one gRPC hop (a unary echo of 200 bytes, client and server on one event loop and one port,
  as the services call each other inside `hartonomous up`);
- one durable append (an insert of 500 bytes and its commit on the platform's own Postgres,
  which waits for the WAL's fsync, as every metered request does);
- one query's model call (six words through `MiniLM.encode`, its shape compiled), back to back,
  and after a pause as long as a search's other steps: in a request the model is never called
  back to back, and on a shared host its weights (~40 MB read per call) leave the cache within
  milliseconds of idling (measured: 5.3 ms back to back, 8.6 after 10 ms idle, 11 after 50).

A search's floor is the sum of what it must take: one HTTP request, a hop to billing (quota)
and one to search, one append; dense and hybrid add a hop to inference and the model call
(the one after a pause)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import httpx

from bench.common import percentile
from hartonomous.postgres import embedded_postgres_url
from hartonomous.settings import Settings
from services.inference.models.minilm import MiniLM

MODES = ("dense", "sparse", "hybrid")
SAMPLES = 300
WARMUP = 20


def _timed_sync(step: Callable[[], object], pause_ms: float = 0.0) -> list[float]:
    for _ in range(WARMUP):
        step()
    out = []
    for _ in range(SAMPLES):
        time.sleep(pause_ms / 1000)
        started = time.perf_counter()
        step()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def _timed(step: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(WARMUP):
        await step()
    out = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        await step()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def _grpc_hop() -> list[float]:
    async def echo(request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("floor", {"E": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/floor/E")
            return await _timed(lambda: call(b"x" * 200))
    finally:
        await server.stop(0)


async def _append(data_dir: Path) -> list[float]:
    url = embedded_postgres_url(Settings(data_dir=data_dir).postgres_dir)
    conn = await asyncpg.connect(url)
    table = "bench_floor_appends"
    await conn.execute(f"create table {table} (id bigserial primary key, value bytea)")
    row = b"x" * 500

    async def append() -> None:
        async with conn.transaction():
            await conn.execute(f"insert into {table} (value) values ($1)", row)

    try:
        return await _timed(append)
    finally:
        await conn.execute(f"drop table {table}")
        await conn.close()


def _other_steps(http: float, hop: float, append: float) -> float:
    """A dense search's steps but the model call: the request, three hops, the append."""
    return http + 3 * hop + append


@dataclass(frozen=True)
class Floors:
    """p50 ms of each step, measured alone while the platform is idle."""

    http: float
    hop: float
    append: float
    model: float
    model_paused: float

    @property
    def other_steps(self) -> float:
        return _other_steps(self.http, self.hop, self.append)

    def search(self, mode: str) -> float:
        """The least a search takes: the sum of the steps it cannot skip."""
        sparse = self.http + 2 * self.hop + self.append
        return sparse if mode == "sparse" else self.other_steps + self.model_paused

    def print(self) -> None:
        print("\nthe steps' floors on this machine (p50 ms, each measured alone):")
        rows = {
            "HTTP request (GET /healthz, kept alive)": self.http,
            "gRPC hop (unary echo, one event loop)": self.hop,
            "durable append (insert + commit, fsync)": self.append,
            "model call (one six-word query), back to back": self.model,
            f"model call after {self.other_steps:.1f} ms idle (the other steps)": self.model_paused,
        }
        rows |= {f"{mode} search: the sum of its steps": self.search(mode) for mode in MODES}
        for name, ms in rows.items():
            print(f"  {name:<52} {ms:>8.2f}")


def measure_floors(http: httpx.Client, data_dir: Path, model: MiniLM, query: str) -> Floors:
    def p50(ms: list[float]) -> float:
        return percentile(ms, 50)

    http_ms = p50(_timed_sync(lambda: http.get("/healthz")))
    hop_ms = p50(asyncio.run(_grpc_hop()))
    append_ms = p50(asyncio.run(_append(data_dir)))
    pause_ms = _other_steps(http_ms, hop_ms, append_ms)

    def encode() -> object:
        return model.encode([query])

    return Floors(
        http=http_ms,
        hop=hop_ms,
        append=append_ms,
        model=p50(_timed_sync(encode)),
        model_paused=p50(_timed_sync(encode, pause_ms)),
    )
