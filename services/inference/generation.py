"""The Generate command: a request checked and turned into prompt tokens (a chat rendered with
the model's own template), submitted to the decoder's engine, its tokens streamed back, and,
when it ends (however it ends), its receipt recorded and its tokens metered."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from hartonomous.blobs import BlobStore
from hartonomous.events import new_event_id
from hartonomous.events.payloads import InferencePerformed
from hartonomous.modelfiles import SMOLLM2_NAME
from hartonomous.runtime.publisher import Publisher
from hartonomous.tenants import parse_tenant_id
from services.inference import receipts
from services.inference.decoding import Engine, Finished, Step
from services.inference.domain import InvalidArgument, ModelInfo, UnknownModel
from services.inference.receipt_store import ReceiptStore
from services.inference.sampling import SamplingParams
from services.inference.slot import Slot

GENERATION_MODEL = SMOLLM2_NAME
ROLES = frozenset({"system", "user", "assistant"})
MAX_STOPS = 4


@dataclass(frozen=True)
class Served:
    engine: Engine
    info: ModelInfo
    tokenizer_atom_id: str  # the GGUF header atom: vocabulary, merges, chat template


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
    keep_input: bool = True  # the tenant's setting (and the platform's tunable) decide

    @property
    def kind(self) -> str:
        return "completion" if self.prompt is not None else "chat"


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
    keep_input: bool = True,
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
    return GenerateRequest(
        tenant, model, prompt or None, messages, params, api_key_id or None, keep_input
    )


@dataclass(frozen=True)
class Recorder:
    """Where a generation's receipt goes, and whether the platform keeps inputs at all."""

    blobs: BlobStore
    publisher: Publisher
    receipts: ReceiptStore
    store_inputs: Callable[[], bool]


def prompt_ids(served: Served, request: GenerateRequest) -> list[int]:
    """The input as the model reads it: a chat rendered with its template, or the prompt."""
    tokenizer = served.engine.model.tokenizer
    if request.prompt is not None:
        return tokenizer.encode(request.prompt)
    return tokenizer.encode(
        tokenizer.render([{"role": r, "content": c} for r, c in request.messages])
    )


async def generate(
    slot: Slot[Served], recorder: Recorder, request: GenerateRequest, traceparent: str | None
) -> AsyncIterator[Started | Step | Finished]:
    """Started, each Step, then Finished. Raises ContextTooLong or Busy before Started; a
    caller that stops listening cancels the generation (its slot is freed at the next
    step). Whatever was generated gets its receipt and is metered."""
    served = await slot.get()
    ids = prompt_ids(served, request)
    generation = served.engine.submit(ids, request.params)
    generation_id = new_event_id()
    finished: Finished | None = None
    try:
        yield Started(generation_id, served.info, request.params.seed, len(ids))
        async for event in generation.stream():
            if isinstance(event, Finished):
                finished = event
            yield event
    finally:
        if finished is None:
            generation.cancel()
            finished = await _last(generation.stream())
        await _record(recorder, served, request, generation_id, finished, traceparent)


async def _last(events: AsyncIterator[Step | Finished]) -> Finished:
    async for event in events:
        if isinstance(event, Finished):
            return event
    raise RuntimeError("a generation ended without Finished")


async def _record(
    recorder: Recorder,
    served: Served,
    request: GenerateRequest,
    generation_id: str,
    finished: Finished,
    traceparent: str | None,
) -> None:
    input_bytes = receipts.input_document(request.prompt, list(request.messages))
    output_bytes = receipts.output_document(finished)
    p = request.params
    keep_input = request.keep_input and recorder.store_inputs()
    input_sha256 = hashlib.sha256(input_bytes).hexdigest()
    receipt = InferencePerformed(
        generation_id=generation_id,
        tenant_id=request.tenant_id,
        model_id=served.info.model_id,
        model_version=served.info.version,
        tokenizer_atom_id=served.tokenizer_atom_id,
        kind=request.kind,
        input_atom_id=input_sha256 if keep_input else None,
        input_sha256=input_sha256,
        output_atom_id=hashlib.sha256(output_bytes).hexdigest(),
        temperature=p.temperature,
        top_p=p.top_p,
        top_k=p.top_k,
        seed=p.seed,
        max_tokens=p.max_tokens,
        stop=list(p.stop),
        finish_reason=finished.reason,
        prompt_tokens=finished.prompt_tokens,
        completion_tokens=finished.completion_tokens,
        first_token_ms=round(finished.first_token_s * 1000, 3),
        total_ms=round(finished.total_s * 1000, 3),
    )
    stored_input = input_bytes if receipt.input_atom_id is not None else None
    event = await receipts.record(
        recorder.blobs,
        recorder.publisher,
        receipt,
        stored_input,
        output_bytes,
        served.info,
        traceparent,
    )
    await recorder.receipts.put(event)  # read-your-writes: verifiable at once
