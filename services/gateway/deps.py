"""What route handlers receive: the gateway's parts, and the calling principal once it passed
authentication (401: a bearer key, or the console's session cookie with its CSRF token, 403),
the per-key rate limit (429) and the route's role (403), in that order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hartonomous.eventlog.port import EventLog
from hartonomous.runtime.windows import WindowRecorder
from hartonomous.telemetry import span
from services.gateway.auth import CHALLENGE, Authenticator, Principal, Unauthenticated
from services.gateway.clients import Peers
from services.gateway.config import GatewayConfig
from services.gateway.keys import Role
from services.gateway.problems import ProblemError
from services.gateway.ratelimit import RateLimiter, retry_after
from services.gateway.session import session_key
from services.gateway.store import KeyStore


@dataclass(frozen=True)
class Gateway:
    config: GatewayConfig
    store: KeyStore
    authenticator: Authenticator
    limiter: RateLimiter
    peers: Peers
    event_log: EventLog
    telemetry: WindowRecorder
    # Set when the gateway starts to drain: long-lived answers (the console's feed) end then.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


async def gateway(request: Request) -> Gateway:
    # async, though it awaits nothing: FastAPI runs a plain `def` dependency on its thread
    # pool, a thread hop on every request.
    parts = request.app.state.gateway
    assert isinstance(parts, Gateway)
    return parts


GatewayDep = Annotated[Gateway, Depends(gateway)]

_BEARER = HTTPBearer(
    auto_error=False, description="An API key (hk_...) from `hartonomous keys create`"
)


class Requires:
    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self,
        request: Request,
        gw: GatewayDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> Principal:
        presented = credentials.credentials if credentials else session_key(request)
        if presented is None:
            raise ProblemError(
                401,
                "send an API key: Authorization: Bearer hk_... (or sign in at /console/)",
                kind="unauthenticated",
                headers=CHALLENGE,
            )
        try:
            with span("gateway: auth"):
                principal = await gw.authenticator.authenticate(presented)
        except Unauthenticated as exc:
            raise ProblemError(401, str(exc), kind="unauthenticated", headers=CHALLENGE) from None
        request.state.principal = principal  # for the access log
        wait = gw.limiter.acquire(principal.key_id)
        if wait > 0:
            raise ProblemError(
                429,
                f"over the rate limit of this API key; retry in {wait:.2f} s",
                kind="rate-limited",
                headers={"Retry-After": retry_after(wait)},
            )
        if not principal.role.allows(self.role):
            raise ProblemError(
                403,
                f"this needs the {self.role} role; the API key has {principal.role}",
                kind="forbidden",
            )
        return principal


Reader = Annotated[Principal, Depends(Requires(Role.READER))]
Writer = Annotated[Principal, Depends(Requires(Role.WRITER))]
Admin = Annotated[Principal, Depends(Requires(Role.ADMIN))]
