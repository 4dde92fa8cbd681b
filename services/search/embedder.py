"""Query embedding: the inference service's Embed over gRPC (services never import each other).

The query's tokens are billed to the searching tenant with the search's receipt: Embed is asked
to leave that usage to search (one atomic write per search instead of two). A query answered
from the query cache (query_cache.py) never reaches inference, so it is not billed tokens."""

from __future__ import annotations

import grpc

from hartonomous.telemetry import current_traceparent
from hartonomous.v1 import inference_pb2, inference_pb2_grpc
from services.search.domain import EmbedUsage, QueryVector

EMBED_TIMEOUT_S = 10.0
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class EmbedderUnavailable(Exception):
    """The inference service cannot be reached (after the channel's retries)."""


class Embedder:
    def __init__(self, channel: grpc.aio.Channel, timeout: float = EMBED_TIMEOUT_S) -> None:
        # The generated gRPC module has no type stubs.
        self._stub = inference_pb2_grpc.InferenceStub(channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout

    async def embed(self, tenant_id: str, text: str, traceparent: str | None) -> QueryVector:
        # The current span (the query's embedding) is the call's parent when there is one.
        parent = current_traceparent() or traceparent
        metadata = (("traceparent", parent),) if parent else None
        try:
            reply = await self._stub.Embed(
                inference_pb2.EmbedRequest(
                    texts=[text], tenant_id=tenant_id, usage_appended_by_caller=True
                ),
                timeout=self._timeout,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _UNREACHABLE:
                raise EmbedderUnavailable(
                    f"cannot embed the query (inference: {exc.details()});"
                    " sparse mode does not need inference"
                ) from exc
            raise
        usage = EmbedUsage(reply.total_tokens, reply.model_version, reply.device)
        return QueryVector(list(reply.embeddings[0].vector), reply.model_version, usage)
