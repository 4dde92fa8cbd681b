"""Admission by quota: billing's CheckQuota before each billable operation.

Over the limit: 429 with Retry-After (until the period resets). Past the soft limit: the
request goes through with an `X-Quota-Warning` header. Billing unreachable: by default the
request goes through (and says so in the header), since usage is metered from the log either
way and billing charges it when it catches up; `quota_fail_open=False` answers 503 instead."""

from __future__ import annotations

import logging

import grpc
from fastapi import Response

from hartonomous.v1 import billing_pb2
from services.gateway.auth import Principal
from services.gateway.clients import CHECK_QUOTA
from services.gateway.deps import Gateway
from services.gateway.errors import RETRY_AFTER_UNAVAILABLE, PeerError
from services.gateway.problems import ProblemError
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
        return
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
