"""The gateway's listening socket: connections accepted on it have Nagle's algorithm off.

With it on, a response's body (written after its headers) waits for the client's delayed ACK
of the headers: ~40 ms added to every request on a kept-alive connection. asyncio turns it
off only on sockets whose protocol says TCP, which a socket made as (family, SOCK_STREAM)
does not."""

from __future__ import annotations

import asyncio
import socket

from services.gateway.service import _bind


async def test_connections_on_the_gateways_listener_send_without_delay() -> None:
    listener = _bind("127.0.0.1", 0)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = writer.get_extra_info("socket")
        nodelay.set_result(served.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        assert await asyncio.wait_for(nodelay, 10) != 0
        writer.close()
