"""The hartonomous.v1.Inference gRPC servicer: translates messages and errors, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.runtime.grpc_server import metadata_value
from hartonomous.v1 import inference_pb2
from services.inference import decoding, domain, generation, handlers, verify

_ERRORS = GrpcErrors(
    "inference",
    {
        domain.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        domain.UnknownModel: grpc.StatusCode.NOT_FOUND,
        domain.ModelLoading: grpc.StatusCode.UNAVAILABLE,
        decoding.ContextTooLong: grpc.StatusCode.OUT_OF_RANGE,  # before its base class
        decoding.GenerationError: grpc.StatusCode.INVALID_ARGUMENT,
        decoding.Busy: grpc.StatusCode.RESOURCE_EXHAUSTED,
        verify.ReceiptNotFound: grpc.StatusCode.NOT_FOUND,
    },
    retry_elsewhere=(domain.ModelLoading,),  # another replica may have it loaded
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
                self._deps,
                texts,
                request.tenant_id,
                request.model,
                traceparent,
                usage_appended_by_caller=request.usage_appended_by_caller,
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
                device=model.device,
            )

    async def Generate(
        self, request: inference_pb2.GenerateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[inference_pb2.GenerateEvent]:
        async with _ERRORS.scope(context, "Generate"):
            parsed = generation.parse_request(
                tenant_id=request.tenant_id,
                model=request.model,
                prompt=request.prompt,
                messages=[(m.role, m.content) for m in request.messages],
                max_tokens=request.max_tokens,
                temperature=request.temperature if request.HasField("temperature") else None,
                top_p=request.top_p if request.HasField("top_p") else None,
                top_k=request.top_k,
                seed=request.seed if request.HasField("seed") else None,
                stop=list(request.stop),
                api_key_id=request.api_key_id,
                keep_input=not request.discard_input,
            )
            traceparent = metadata_value(context, "traceparent")
            events = generation.generate(
                self._deps.generator, self._deps.recorder, parsed, traceparent
            )
            async for event in events:
                yield _event(event)

    async def ListModels(
        self, request: inference_pb2.ListModelsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> inference_pb2.ListModelsReply:
        async with _ERRORS.scope(context, "ListModels"):
            embedder, generator = self._deps.model.now, self._deps.generator.now
            return inference_pb2.ListModelsReply(
                models=[
                    inference_pb2.ServedModel(
                        id=domain.MODEL_ID,
                        kind="embeddings",
                        version=embedder.info.version if embedder else "",
                        context_length=embedder.context_length if embedder else 0,
                        ready=embedder is not None,
                    ),
                    inference_pb2.ServedModel(
                        id=generation.GENERATION_MODEL,
                        kind="generation",
                        version=generator.info.version if generator else "",
                        context_length=generator.engine.context_length if generator else 0,
                        ready=generator is not None,
                    ),
                ]
            )

    async def Verify(
        self, request: inference_pb2.VerifyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> inference_pb2.VerifyReply:
        async with _ERRORS.scope(context, "Verify"):
            recorder = self._deps.recorder
            found = await verify.verify(
                recorder.receipts, recorder.blobs, self._deps.generator, request.generation_id
            )
            at = found.first_difference
            return inference_pb2.VerifyReply(
                generation_id=request.generation_id,
                verdict=found.verdict,
                reason=found.reason,
                model_version=found.model_version,
                recorded_tokens=len(found.recorded),
                rerun_tokens=len(found.rerun),
                first_difference=at,
                recorded_token=_token_at(found.recorded, at),
                rerun_token=_token_at(found.rerun, at),
            )


def _token_at(tokens: tuple[int, ...], at: int) -> int:
    return tokens[at] if 0 <= at < len(tokens) else -1


def _event(
    event: generation.Started | decoding.Step | decoding.Finished,
) -> inference_pb2.GenerateEvent:
    if isinstance(event, generation.Started):
        return inference_pb2.GenerateEvent(
            started=inference_pb2.GenerationStarted(
                id=event.id,
                model_id=event.info.model_id,
                model_version=event.info.version,
                seed=event.seed,
                prompt_tokens=event.prompt_tokens,
            )
        )
    if isinstance(event, decoding.Step):
        return inference_pb2.GenerateEvent(
            delta=inference_pb2.GenerationDelta(text=event.text, token=event.token)
        )
    return inference_pb2.GenerateEvent(
        done=inference_pb2.GenerationDone(
            finish_reason=event.reason,
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            text=event.text,
        )
    )
