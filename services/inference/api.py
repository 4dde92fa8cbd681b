"""The hartonomous.v1.Inference gRPC servicer: translates messages and errors, nothing more."""

from __future__ import annotations

from typing import Any

import grpc

from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.runtime.grpc_server import metadata_value
from hartonomous.v1 import inference_pb2
from services.inference import domain, handlers

_ERRORS = GrpcErrors(
    "inference",
    {
        domain.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        domain.UnknownModel: grpc.StatusCode.NOT_FOUND,
        domain.ModelLoading: grpc.StatusCode.UNAVAILABLE,
    },
)


class InferenceApi:
    def __init__(self, deps: handlers.Deps) -> None:
        self._deps = deps

    async def Embed(
        self, request: inference_pb2.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> inference_pb2.EmbedResponse:
        async with _ERRORS.scope(context, "Embed"):
            traceparent = metadata_value(context, "traceparent")
            texts = list(request.texts)
            embedded, model = await handlers.embed(
                self._deps, texts, request.tenant_id, request.model, traceparent
            )
            return inference_pb2.EmbedResponse(
                embeddings=[
                    inference_pb2.Embedding(vector=vector, tokens=tokens, index=index)
                    for index, (vector, tokens) in enumerate(
                        zip(embedded.vectors.tolist(), embedded.tokens.tolist(), strict=True)
                    )
                ],
                model_id=model.model_id,
                model_version=model.version,
                total_tokens=int(embedded.tokens.sum()),
            )
