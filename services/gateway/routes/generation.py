"""POST /v1/chat/completions, POST /v1/completions and GET /v1/models, shaped like OpenAI's
API so its clients work unchanged (point `base_url` at <gateway>/v1), streaming included:
`stream: true` answers with server-sent events, one chunk per token, then `data: [DONE]`.

The first event of the generation (or its refusal) is awaited before the response starts, so
a bad request is still a problem document with its status, never a broken stream. A client
that goes away cancels the call, which frees its decoding slot."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import grpc
from fastapi import APIRouter, Path, Response
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hartonomous.v1 import inference_pb2
from services.gateway import quota
from services.gateway.clients import GENERATE, LIST_MODELS, VERIFY
from services.gateway.deps import Admin, GatewayDep, Reader, Writer
from services.gateway.errors import PeerError
from services.gateway.problems import ProblemError, documented

router = APIRouter(prefix="/v1", tags=["generation"])
admin_router = APIRouter(prefix="/v1/admin/inference", tags=["generation"])

DEFAULT_MODEL = "smollm2-135m-instruct"
INT32 = 2**31 - 1  # the gRPC fields' range: beyond it a request is a 422, not a crash


def _utf8(text: str) -> str:
    """JSON may carry lone surrogates (\\ud800), which are no UTF-8: a 422, not a crash."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the text is not valid Unicode (a lone surrogate)") from None
    return text


Text = Annotated[str, AfterValidator(_utf8)]
Stop = Text | Annotated[list[Text], Field(max_length=4)]


class Sampling(BaseModel):
    # OpenAI clients send fields we do not use (`user`, `n` = 1, ...): accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    model: Text = Field(DEFAULT_MODEL, examples=[DEFAULT_MODEL])
    max_tokens: int | None = Field(
        None, ge=1, le=INT32, description="Default: 256 (chat), 16 (completions)"
    )
    max_completion_tokens: int | None = Field(
        None, ge=1, le=INT32, description="Same as max_tokens"
    )
    temperature: float | None = Field(None, ge=0, le=2, description="Default 1; 0 is greedy")
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int = Field(0, ge=0, le=INT32, description="An extension: 0 keeps every token")
    seed: int | None = Field(
        None, ge=-(2**63), lt=2**63, description="Unset: random (reported as system_fingerprint)"
    )
    stop: Stop | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None

    def limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Text = Field(examples=["user"])
    content: Text


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(Sampling):
    prompt: Text = Field(min_length=1)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatChoice(BaseModel):
    index: int = 0
    message: Message
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str = Field(description="The model version and the seed used")
    choices: list[ChatChoice]
    usage: Usage


class TextChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str
    choices: list[TextChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "hartonomous"
    kind: str = Field(description="embeddings or generation")
    version: str
    context_length: int
    ready: bool


class Verification(BaseModel):
    generation_id: str
    verdict: Literal["identical", "different", "cannot_rerun"]
    reason: str
    model_version: str
    recorded_tokens: int
    rerun_tokens: int
    first_difference: int | None = Field(description="The first position that differs")
    recorded_token: int | None
    rerun_token: int | None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.post(
    "/chat/completions",
    summary="Chat with a model (OpenAI-compatible; stream: true for server-sent events)",
    response_model=ChatCompletion,
    responses=documented(400, 401, 403, 404, 422, 429, 503, 504),
)
async def chat_completions(
    body: ChatRequest, response: Response, gw: GatewayDep, principal: Writer
) -> Response | ChatCompletion | Completion:
    request = _request(body, principal.tenant_id, principal.key_id, 256)
    request.messages.extend(
        inference_pb2.ChatMessage(role=m.role, content=m.content) for m in body.messages
    )
    return await _answer(gw, principal, response, request, body, chat=True)


@router.post(
    "/completions",
    summary="Continue a prompt (OpenAI-compatible; stream: true for server-sent events)",
    response_model=Completion,
    responses=documented(400, 401, 403, 404, 422, 429, 503, 504),
)
async def completions(
    body: CompletionRequest, response: Response, gw: GatewayDep, principal: Writer
) -> Response | ChatCompletion | Completion:
    request = _request(body, principal.tenant_id, principal.key_id, 16)
    request.prompt = body.prompt
    return await _answer(gw, principal, response, request, body, chat=False)


@router.get("/models", summary="The models this platform serves", responses=documented(401, 429))
async def list_models(gw: GatewayDep, principal: Reader) -> ModelList:
    reply: inference_pb2.ListModelsReply = await gw.peers.unary(
        LIST_MODELS, inference_pb2.ListModelsRequest()
    )
    return ModelList(
        data=[
            ModelCard(
                id=m.id,
                kind=m.kind,
                version=m.version,
                context_length=m.context_length,
                ready=m.ready,
            )
            for m in reply.models
        ]
    )


@admin_router.post(
    "/{generation_id}/verify",
    summary="Re-run a past generation from its receipt and compare it token for token",
    responses=documented(401, 403, 404, 422, 429, 503, 504),
)
async def verify(
    generation_id: Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")],
    gw: GatewayDep,
    principal: Admin,
) -> Verification:
    reply: inference_pb2.VerifyReply = await gw.peers.unary(
        VERIFY, inference_pb2.VerifyRequest(generation_id=generation_id)
    )
    differs = reply.first_difference >= 0
    return Verification(
        generation_id=reply.generation_id,
        verdict=reply.verdict,  # type: ignore[arg-type]
        reason=reply.reason,
        model_version=reply.model_version,
        recorded_tokens=reply.recorded_tokens,
        rerun_tokens=reply.rerun_tokens,
        first_difference=reply.first_difference if differs else None,
        recorded_token=reply.recorded_token if differs and reply.recorded_token >= 0 else None,
        rerun_token=reply.rerun_token if differs and reply.rerun_token >= 0 else None,
    )


def _request(
    body: Sampling, tenant_id: str, key_id: str, default_limit: int
) -> inference_pb2.GenerateRequest:
    request = inference_pb2.GenerateRequest(
        tenant_id=tenant_id,
        model="" if body.model == DEFAULT_MODEL else body.model,
        max_tokens=body.limit(default_limit),
        top_k=body.top_k,
        stop=body.stops(),
        api_key_id=key_id,
    )
    if body.temperature is not None:
        request.temperature = body.temperature
    if body.top_p is not None:
        request.top_p = body.top_p
    if body.seed is not None:
        request.seed = body.seed
    return request


async def _answer(
    gw: GatewayDep,
    principal: Any,
    response: Response,
    request: inference_pb2.GenerateRequest,
    body: Sampling,
    *,
    chat: bool,
) -> Response | ChatCompletion | Completion:
    # A quota on generate counts completion tokens: an answer stops where the quota does.
    request.max_tokens = await quota.grant(gw, principal, "generate", response, request.max_tokens)
    tenant = await gw.store.find_tenant(principal.tenant_id)
    request.discard_input = tenant is not None and not tenant.keep_generation_inputs
    events = gw.peers.stream(GENERATE, request)
    started = await _first(events)
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        chunks = _chunks(started, events, body.model, chat=chat, include_usage=include_usage)
        headers = _no_buffering()
        if quota.WARNING_HEADER in response.headers:  # a streamed answer has its own headers
            headers[quota.WARNING_HEADER] = response.headers[quota.WARNING_HEADER]
        return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)
    text, done = "", inference_pb2.GenerationDone()
    async for event in events:
        if event.HasField("delta"):
            text += event.delta.text
        elif event.HasField("done"):
            done = event.done
    usage = _usage(done)
    fingerprint = _fingerprint(started)
    created = int(time.time())
    if chat:
        return ChatCompletion(
            id=started.id,
            created=created,
            model=body.model,
            system_fingerprint=fingerprint,
            choices=[
                ChatChoice(
                    message=Message(role="assistant", content=done.text),
                    finish_reason=done.finish_reason,
                )
            ],
            usage=usage,
        )
    return Completion(
        id=started.id,
        created=created,
        model=body.model,
        system_fingerprint=fingerprint,
        choices=[TextChoice(text=done.text, finish_reason=done.finish_reason)],
        usage=usage,
    )


async def _first(events: AsyncIterator[inference_pb2.GenerateEvent]) -> Any:
    """The Started event; a refusal before it becomes the problem it is (a context too long
    is a 400 that says the limit)."""
    try:
        first = await anext(events)
    except PeerError as exc:
        if exc.code == grpc.StatusCode.OUT_OF_RANGE:
            raise ProblemError(400, exc.detail, kind="context-too-long") from None
        raise
    return first.started


async def _chunks(
    started: Any,
    events: AsyncIterator[inference_pb2.GenerateEvent],
    model: str,
    *,
    chat: bool,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    created, fingerprint = int(time.time()), _fingerprint(started)
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(choice: dict[str, Any], usage: Usage | None = None) -> bytes:
        body = {
            "id": started.id,
            "object": kind,
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint,
            "choices": [choice] if choice else [],
        }
        if usage is not None:
            body["usage"] = usage.model_dump()
        return f"data: {json.dumps(body)}\n\n".encode()

    piece: Callable[[str, str | None], dict[str, Any]]
    if chat:
        yield chunk(
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        )

        def piece(text: str, finish: str | None) -> dict[str, Any]:
            delta = {"content": text} if text else {}
            return {"index": 0, "delta": delta, "finish_reason": finish}
    else:

        def piece(text: str, finish: str | None) -> dict[str, Any]:
            return {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}

    async for event in events:
        if event.HasField("delta") and event.delta.text:
            yield chunk(piece(event.delta.text, None))
        elif event.HasField("done"):
            yield chunk(piece("", event.done.finish_reason))
            if include_usage:
                yield chunk({}, _usage(event.done))
    yield b"data: [DONE]\n\n"


def _usage(done: inference_pb2.GenerationDone) -> Usage:
    return Usage(
        prompt_tokens=done.prompt_tokens,
        completion_tokens=done.completion_tokens,
        total_tokens=done.prompt_tokens + done.completion_tokens,
    )


def _fingerprint(started: Any) -> str:
    return f"{started.model_version[:16]}-seed{started.seed}"


def _no_buffering() -> dict[str, str]:
    return {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
