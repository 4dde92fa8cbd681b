"""Admission by quota: billing's CheckQuota before each billable operation.

Over the limit: 429 with Retry-After (until the period resets). Past the soft limit: the
request goes through with an `X-Quota-Warning` header. Billing unreachable: by default the
request goes through (and says so in the header), since usage is metered from the log either
way and billing charges it when it catches up; `quota_fail_open=False` answers 503 instead.
A generation asks for its max_tokens and gets what is left when that is less (`grant`): it
stops at the limit like any answer that reaches max_tokens, with its receipt and usage."""

from __future__ import annotations

import logging
from decimal import Decimal

import grpc
from fastapi import Response

from hartonomous.v1 import billing_pb2
from services.gateway.auth import Principal
from services.gateway.clients import CHECK_QUOTA
from services.gateway.deps import Gateway
from services.gateway.errors import PeerError
from services.gateway.problems import RETRY_AFTER_UNAVAILABLE, ProblemError
from services.gateway.ratelimit import retry_after

logger = logging.getLogger(__name__)

WARNING_HEADER = "X-Quota-Warning"

_BILLING_DOWN = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
)


async def admit(
    gw: Gateway, principal: Principal, operation: str, response: Response, quantity: int = 0
) -> None:
    """`quantity`: what the request will use in the operation's unit, when known (0: ask)."""
    decision = await _decide(gw, principal, operation, response, quantity)
    if decision is not None:
        _apply(decision, operation, response)


async def grant(
    gw: Gateway, principal: Principal, operation: str, response: Response, wanted: int
) -> int:
    """How much of `wanted` (a ceiling, in the operation's unit: a generation's max_tokens)
    the quota allows: all of it, or what is left of the limit when that is less (the request
    then stops there, cleanly, and says so in `X-Quota-Warning`), reserved either way."""
    decision = await _decide(gw, principal, operation, response, wanted)
    if decision is None:
        return wanted
    left = int(Decimal(decision.limit) - Decimal(decision.used)) if decision.limit else 0
    if decision.allowed or left < 1:
        _apply(decision, operation, response)  # raises when denied: nothing left to grant
        return wanted
    decision = await _decide(gw, principal, operation, response, left)
    if decision is None:
        return wanted
    _apply(decision, operation, response)
    response.headers[WARNING_HEADER] = (
        f"{operation}: capped at the {left} {decision.unit} left of the quota"
    )
    return left


async def _decide(
    gw: Gateway, principal: Principal, operation: str, response: Response, quantity: int
) -> billing_pb2.QuotaDecision | None:
    """Billing's answer; None when billing is unreachable and the gateway fails open."""
    request = billing_pb2.QuotaCheckRequest(
        tenant_id=principal.tenant_id, operation=operation, quantity=str(quantity)
    )
    try:
        decision: billing_pb2.QuotaDecision = await gw.peers.unary(CHECK_QUOTA, request)
    except PeerError as exc:
        if exc.code not in _BILLING_DOWN:
            raise
        if not gw.config.quota_fail_open:
            raise ProblemError(
                503,
                "the quota cannot be checked (billing is unavailable); retry shortly",
                kind="unavailable",
                headers={"Retry-After": RETRY_AFTER_UNAVAILABLE},
            ) from None
        logger.warning("quota not checked", extra={"tenant_id": principal.tenant_id})
        response.headers[WARNING_HEADER] = "quota not checked: billing is unavailable"
        return None
    return decision


def _apply(decision: billing_pb2.QuotaDecision, operation: str, response: Response) -> None:
    """429 when denied; the soft-limit warning when past it."""
    usage = f"{operation}: {decision.used} of {decision.limit} {decision.unit} used"
    if not decision.allowed:
        raise ProblemError(
            429,
            f"quota exceeded ({usage}); it resets with the next period",
            kind="quota-exceeded",
            title="Quota exceeded",
            headers={"Retry-After": retry_after(decision.retry_after_seconds)},
        )
    if decision.soft_limit_reached:
        response.headers[WARNING_HEADER] = f"soft limit reached ({usage})"
