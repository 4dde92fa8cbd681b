"""The hartonomous.v1.Inference gRPC servicer: translates messages, nothing more.

Validation is domain.validate_embed_request, embedding is the shared Batcher, and each call's
tokens are metered with one UsageRecorded on `usage` before the vectors are returned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc

from hartonomous.eventlog.port import EventLog
from hartonomous.events import AvroCodec, Envelope, Event, encode_event
from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.runtime.grpc_server import metadata_value
from hartonomous.v1 import inference_pb2
from services.inference import domain
from services.inference.batching import Batcher
from services.inference.domain import ModelInfo

_ERRORS = GrpcErrors(
    "inference",
    {
        domain.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        domain.UnknownModel: grpc.StatusCode.NOT_FOUND,
    },
)


class InferenceApi:
    def __init__(self, batcher: Batcher, log_: EventLog, codec: AvroCodec, model: ModelInfo):
        self._batcher = batcher
        self._log = log_
        self._codec = codec
        self._model = model

    async def Embed(
        self, request: inference_pb2.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> inference_pb2.EmbedResponse:
        async with _ERRORS.scope(context, "Embed"):
            texts = list(request.texts)
            domain.validate_embed_request(texts, request.tenant_id, request.model)
            return await self._embed(
                texts, request.tenant_id, metadata_value(context, "traceparent")
            )

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
