"""The Generate command: a request checked and turned into prompt tokens (a chat rendered with
the model's own template), submitted to the decoder's engine, its tokens streamed back, and
its prompt and completion tokens metered when it ends (however it ends)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hartonomous.events import new_event_id
from hartonomous.modelfiles import SMOLLM2_NAME
from hartonomous.runtime.publisher import Publisher
from hartonomous.tenants import parse_tenant_id
from services.inference import domain
from services.inference.decoding import Engine, Finished, Step
from services.inference.domain import InvalidArgument, ModelInfo, UnknownModel
from services.inference.sampling import SamplingParams
from services.inference.slot import Slot

GENERATION_MODEL = SMOLLM2_NAME
ROLES = frozenset({"system", "user", "assistant"})
MAX_STOPS = 4


@dataclass(frozen=True)
class Served:
    engine: Engine
    info: ModelInfo


@dataclass(frozen=True)
class Started:
    id: str
    info: ModelInfo
    seed: int
    prompt_tokens: int


@dataclass(frozen=True)
class GenerateRequest:
    tenant_id: str
    model: str
    prompt: str | None
    messages: Sequence[tuple[str, str]]
    params: SamplingParams
    api_key_id: str | None = None


def parse_request(
    *,
    tenant_id: str,
    model: str,
    prompt: str,
    messages: Sequence[tuple[str, str]],
    max_tokens: int,
    temperature: float | None,
    top_p: float | None,
    top_k: int,
    seed: int | None,
    stop: Sequence[str],
    api_key_id: str = "",
) -> GenerateRequest:
    """Raise InvalidArgument or UnknownModel naming the first problem."""
    tenant = parse_tenant_id(tenant_id)
    if model not in ("", GENERATION_MODEL):
        raise UnknownModel(f"model {model!r} is not served; available: {GENERATION_MODEL!r}")
    if bool(prompt) == bool(messages):
        raise InvalidArgument("send either a prompt or messages")
    for role, content in messages:
        if role not in ROLES:
            raise InvalidArgument(f"unknown role {role!r}: use one of {sorted(ROLES)}")
        if not content.strip():
            raise InvalidArgument(f"a {role} message is empty")
    temperature = 1.0 if temperature is None else temperature
    top_p = 1.0 if top_p is None else top_p
    if not 0 <= temperature <= 2:
        raise InvalidArgument("temperature must be between 0 and 2")
    if not 0 < top_p <= 1:
        raise InvalidArgument("top_p must be in (0, 1]")
    if top_k < 0:
        raise InvalidArgument("top_k must be 0 (off) or positive")
    if max_tokens < 1:
        raise InvalidArgument("max_tokens must be at least 1")
    if len(stop) > MAX_STOPS or not all(stop):
        raise InvalidArgument(f"stop takes up to {MAX_STOPS} non-empty strings")
    params = SamplingParams(
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=secrets.randbits(63) if seed is None else seed,
        max_tokens=max_tokens,
        stop=tuple(stop),
    )
    return GenerateRequest(tenant, model, prompt or None, messages, params, api_key_id or None)


async def generate(
    slot: Slot[Served], publisher: Publisher, request: GenerateRequest, traceparent: str | None
) -> AsyncIterator[Started | Step | Finished]:
    """Started, each Step, then Finished. Raises ContextTooLong or Busy before Started; a
    caller that stops listening cancels the generation (its slot is freed at the next
    step). Whatever was generated is metered."""
    served = await slot.get()
    tokenizer = served.engine.model.tokenizer
    if request.prompt is not None:
        text = request.prompt
    else:
        text = tokenizer.render([{"role": r, "content": c} for r, c in request.messages])
    ids = tokenizer.encode(text)
    generation = served.engine.submit(ids, request.params)
    finished: Finished | None = None
    try:
        yield Started(new_event_id(), served.info, request.params.seed, len(ids))
        async for event in generation.stream():
            if isinstance(event, Finished):
                finished = event
            yield event
    finally:
        if finished is None:
            generation.cancel()
            finished = await _last(generation.stream())
        await _meter(publisher, request, served.info, finished, traceparent)


async def _last(events: AsyncIterator[Step | Finished]) -> Finished:
    async for event in events:
        if isinstance(event, Finished):
            return event
    raise RuntimeError("a generation ended without Finished")


async def _meter(
    publisher: Publisher,
    request: GenerateRequest,
    info: ModelInfo,
    finished: Finished,
    traceparent: str | None,
) -> None:
    now = datetime.now(UTC)
    events = [
        publisher.new(
            domain.usage_payload(request.tenant_id, unit, n, info, now, operation="generate"),
            tenant_id=request.tenant_id,
            traceparent=traceparent,
        )
        for unit, n in (
            ("prompt_tokens", finished.prompt_tokens),
            ("completion_tokens", finished.completion_tokens),
        )
    ]
    await publisher.publish(*events)
