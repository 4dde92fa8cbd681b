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


@dataclass(frozen=True)
class GrpcErrors:
    service: str
    # Checked in order; the first type the error is an instance of decides the status.
    statuses: Mapping[type[BaseException], grpc.StatusCode]
    # Types whose message is not for the client: it is logged, and the client gets this text.
    withheld: Mapping[type[BaseException], str] = field(default_factory=dict)

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
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the {self.service} service's log or database is unreachable; retry shortly",
            )
        except Exception as exc:
            for kind, code in self.statuses.items():
                if isinstance(exc, kind):
                    withheld = self.withheld.get(kind)
                    if withheld is not None:
                        logger.error("%s: %s: %s", self.service, method, exc)
                        await context.abort(code, withheld)
                    await context.abort(code, str(exc))
            logger.error("%s: %s failed", self.service, method, exc_info=exc)
            await context.abort(
                grpc.StatusCode.INTERNAL, f"{method} failed; see the {self.service} service log"
            )
