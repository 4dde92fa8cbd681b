"""Wiring: the key store, the gRPC peers and the FastAPI app, served by uvicorn inside the
runtime's event loop on `http_host:http_port`. The host owns the signals: on SIGTERM / Ctrl-C
it calls `stop`, which lets in-flight requests finish before the listener goes away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from contextlib import AsyncExitStack

import uvicorn

from hartonomous.postgres import create_pool
from hartonomous.runtime.service import Service, ServiceContext, Wiring
from services.gateway.app import create_app
from services.gateway.auth import Authenticator
from services.gateway.banner import banner, public_url
from services.gateway.clients import Peers
from services.gateway.config import GatewayConfig
from services.gateway.deps import Gateway
from services.gateway.ratelimit import RateLimiter
from services.gateway.store import KeyStore

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: they would take SIGTERM / SIGINT from the host,
    which drains every service, not only this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class GatewayService(Service):
    name = "gateway"

    def __init__(self, config: GatewayConfig | None = None) -> None:
        self._config = config
        self.url = ""

    async def wire(self, ctx: ServiceContext, resources: AsyncExitStack) -> Wiring:
        config = self._config or GatewayConfig.from_env()
        listener = _bind(ctx.settings.http_host, ctx.settings.http_port)
        resources.callback(listener.close)
        pool = await create_pool(ctx.postgres_url, max_size=4)
        resources.push_async_callback(pool.close)
        store = KeyStore(pool)
        await store.setup()
        peers = Peers(ctx.settings)
        resources.push_async_callback(peers.close)
        gateway = Gateway(
            config=config,
            store=store,
            authenticator=Authenticator(store, config.key_cache_seconds),
            limiter=RateLimiter(config.rate_per_second, config.rate_burst),
            peers=peers,
            event_log=ctx.event_log,
            telemetry=ctx.telemetry,
        )
        await _serve(gateway, listener, resources)
        # Last, once serving: a key is only created when it can be printed and used.
        bootstrap = await store.bootstrap()
        self.url = public_url(ctx.settings.http_host, listener.getsockname()[1])
        logger.info("gateway listening", extra={"url": self.url})
        print(banner(self.url, bootstrap), flush=True)
        return Wiring()


async def _serve(gateway: Gateway, listener: socket.socket, resources: AsyncExitStack) -> None:
    """uvicorn on `listener`, running once this returns; on close it lets in-flight requests
    finish (for up to DRAIN_SECONDS) before the listener goes away."""
    server_config = uvicorn.Config(
        create_app(gateway),
        log_config=None,  # our JSON logging stays as configured
        log_level="warning",
        access_log=False,  # RequestTelemetry writes the access log, with trace ids
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=int(DRAIN_SECONDS),
    )
    server = _EmbeddedServer(server_config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))

    async def drain() -> None:
        gateway.stopping.set()
        server.should_exit = True
        await asyncio.wait_for(serving, DRAIN_SECONDS + 5.0)

    resources.push_async_callback(drain)
    while not server.started:
        if serving.done():
            serving.result()  # its startup error
            raise RuntimeError("the HTTP server stopped while starting")
        await asyncio.sleep(0.01)


def _bind(host: str, port: int) -> socket.socket:
    """Bind here rather than in uvicorn, whose bind failure is a sys.exit in the event loop."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio turns Nagle off only on sockets whose proto says TCP,
    # and with Nagle on, a response's body waits behind the delayed ACK of its headers (~40
    # ms on every request of a kept-alive connection).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        message = f"the gateway cannot listen on {host}:{port}: {exc.strerror}"
        raise OSError(exc.errno, message) from None
    return sock


service = GatewayService()
