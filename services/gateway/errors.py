"""A peer's gRPC status as an HTTP problem.

The caller's mistakes (INVALID_ARGUMENT, NOT_FOUND, ...) keep the peer's message, which is
written for the caller; server-side failures get a generic detail, and the peer's message
goes to the log only."""

from __future__ import annotations

import logging

import grpc

from services.gateway.problems import RETRY_AFTER_UNAVAILABLE, ProblemError

logger = logging.getLogger(__name__)

_CLIENT_ERRORS: dict[grpc.StatusCode, tuple[int, str | None]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (422, "invalid-request"),
    grpc.StatusCode.OUT_OF_RANGE: (422, "invalid-request"),
    grpc.StatusCode.NOT_FOUND: (404, None),
    grpc.StatusCode.PERMISSION_DENIED: (403, "forbidden"),
    grpc.StatusCode.ALREADY_EXISTS: (409, None),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "conflict"),
}


class PeerError(ProblemError):
    """A gRPC call to another service failed; raised as the problem it means over HTTP.
    `exhausted`: RESOURCE_EXHAUSTED is "too big" for an upload (413), "too many" elsewhere (429)."""

    def __init__(
        self, service: str, method: str, code: grpc.StatusCode, details: str, exhausted: int
    ) -> None:
        self.code = code
        if code in _CLIENT_ERRORS:
            status, kind = _CLIENT_ERRORS[code]
            super().__init__(status, details, kind=kind)
            return
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            kind = "too-large" if exhausted == 413 else "rate-limited"
            super().__init__(exhausted, details, kind=kind)
            return
        logger.warning(
            "%s.%s failed: %s: %s",
            service,
            method,
            code.name,
            details,
            extra={"peer": service, "grpc_status": code.name},
        )
        if code == grpc.StatusCode.UNAVAILABLE:
            super().__init__(
                503,
                f"the {service} service is unavailable; retry shortly",
                kind="unavailable",
                headers={"Retry-After": RETRY_AFTER_UNAVAILABLE},
            )
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            super().__init__(504, f"the {service} service did not answer in time")
        elif code == grpc.StatusCode.UNIMPLEMENTED:
            super().__init__(501, f"this platform does not serve {service}.{method}")
        else:
            super().__init__(500, f"the {service} service failed")
