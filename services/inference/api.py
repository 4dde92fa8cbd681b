"""The hartonomous.v1.Inference gRPC servicer: translates messages, nothing more.

Validation is domain.validate_embed_request, embedding is the shared Batcher, and each call's
tokens are metered with one UsageRecorded on `usage` before the vectors are returned.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import grpc

from hartonomous.eventlog.port import EventLog
from hartonomous.events import AvroCodec, Envelope, Event, encode_event
from hartonomous.v1 import inference_pb2
from services.inference import domain
from services.inference.batching import Batcher
from services.inference.domain import ModelInfo

log = logging.getLogger(__name__)

_STATUS = {
    domain.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    domain.UnknownModel: grpc.StatusCode.NOT_FOUND,
}


class InferenceApi:
    def __init__(self, batcher: Batcher, log_: EventLog, codec: AvroCodec, model: ModelInfo):
        self._batcher = batcher
        self._log = log_
        self._codec = codec
        self._model = model

    async def Embed(
        self, request: inference_pb2.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> inference_pb2.EmbedResponse:
        texts = list(request.texts)
        try:
            domain.validate_embed_request(texts, request.tenant_id, request.model)
        except domain.RequestError as exc:
            await context.abort(_STATUS[type(exc)], str(exc))
        try:
            return await self._embed(texts, request.tenant_id, _traceparent(context))
        except Exception:
            # The client gets a status, never our stack trace; the log gets the trace.
            log.exception("Embed failed", extra={"tenant_id": request.tenant_id})
            await context.abort(
                grpc.StatusCode.INTERNAL, "embedding failed; see the inference service log"
            )
            raise  # abort raised already; this only tells type checkers

    async def _embed(
        self, texts: list[str], tenant_id: str, traceparent: str | None
    ) -> inference_pb2.EmbedResponse:
        embedded = await self._batcher.embed_counted(texts)
        total = int(embedded.tokens.sum())
        envelope = Envelope.new(
            "UsageRecorded", tenant_id, domain.PRODUCED_BY, traceparent=traceparent
        )
        usage = domain.usage_payload(tenant_id, "tokens", total, self._model, datetime.now(UTC))
        await self._log.append(
            [encode_event(self._codec, Event(envelope, usage), domain.USAGE_TOPIC, tenant_id)]
        )
        return inference_pb2.EmbedResponse(
            embeddings=[
                inference_pb2.Embedding(vector=vector, tokens=tokens, index=index)
                for index, (vector, tokens) in enumerate(
                    zip(embedded.vectors.tolist(), embedded.tokens.tolist(), strict=True)
                )
            ],
            model_id=self._model.model_id,
            model_version=self._model.version,
            total_tokens=total,
        )


def _traceparent(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The caller's W3C trace context, so the usage event joins the caller's trace."""
    for key, value in context.invocation_metadata() or ():
        if key == "traceparent" and isinstance(value, str):
            return value
    return None
