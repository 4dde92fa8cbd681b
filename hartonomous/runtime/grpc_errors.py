"""Errors -> gRPC statuses, one mapping per service: the caller's mistakes by type with their
message, failures whose details must stay in the log with a fixed message, and anything else as
INTERNAL — the trace goes to the log, never to the client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from hartonomous.runtime.outages import OUTAGES
from hartonomous.tenants import InvalidTenantId

logger = logging.getLogger(__name__)

# A service that answers UNAVAILABLE itself (its log or database is down) tells callers not to
# retry on the spot (gRPC retry pushback, gRFC A6): every replica shares that store, so an
# immediate retry would only spend the caller's deadline. A replica that is down answers
# nothing, and the channel's retry policy still tries another; so does one whose error is its
# own (GrpcErrors.retry_elsewhere).
NO_RETRY = (("grpc-retry-pushback-ms", "-1"),)


@dataclass(frozen=True)
class GrpcErrors:
    service: str
    # Checked in order; the first type the error is an instance of decides the status.
    statuses: Mapping[type[BaseException], grpc.StatusCode]
    # Types whose message is not for the client: it is logged, and the client gets this text.
    withheld: Mapping[type[BaseException], str] = field(default_factory=dict)
    # UNAVAILABLE for reasons of this replica's own (e.g. its model still loading): another
    # replica may answer, so callers retry at once.
    retry_elsewhere: tuple[type[BaseException], ...] = ()

    @asynccontextmanager
    async def scope(
        self, context: grpc.aio.ServicerContext[Any, Any], method: str
    ) -> AsyncIterator[None]:
        """`async with errors.scope(context, "GetAtom"): ...` around a servicer method's body."""
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except InvalidTenantId as exc:  # the rules every service shares
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except OUTAGES as exc:
            logger.warning("%s: %s: a store is unreachable: %r", self.service, method, exc)
            await _abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                f"the {self.service} service's log or database is unreachable; retry shortly",
            )
        except Exception as exc:
            for kind, code in self.statuses.items():
                if isinstance(exc, kind):
                    withheld = self.withheld.get(kind)
                    if withheld is not None:
                        logger.error("%s: %s: %s", self.service, method, exc)
                    details = str(exc) if withheld is None else withheld
                    elsewhere = isinstance(exc, self.retry_elsewhere)
                    await _abort(context, code, details, retry_elsewhere=elsewhere)
            logger.error("%s: %s failed", self.service, method, exc_info=exc)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"{method} failed; see the {self.service} service log"
            )


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    details: str,
    *,
    retry_elsewhere: bool = False,
) -> None:
    refused_here = code == grpc.StatusCode.UNAVAILABLE and not retry_elsewhere
    await context.abort(code, details, NO_RETRY if refused_here else ())
