"""Request body limits (GatewayConfig.body_limit): a declared Content-Length over the limit is
refused before a byte is read; a body without one (chunked) is counted as it streams, and
the request fails with 413 the moment it passes the limit."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.config import GatewayConfig
from services.gateway.problems import ProblemError


class BodyLimit:
    def __init__(self, app: ASGIApp, config: GatewayConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.config.body_limit(
            scope["method"], scope["path"], headers.get("content-type", "")
        )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit).response(scope["path"])(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> ProblemError:
    return ProblemError(413, f"the request body is over {limit} bytes", kind="too-large")
