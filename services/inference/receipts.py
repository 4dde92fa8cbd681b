"""A generation's receipt: its input and output stored as content-addressed atoms of the
tenant, and one InferencePerformed naming them with the exact model version and every
sampling parameter, appended atomically with the AtomIngested of the two atoms and the usage
it caused. From the receipt alone the generation can be re-run (verify.py).

The input is canonical JSON ({"messages": [{"role", "content"}...]} or {"prompt": "..."}),
the output too ({"text": "...", "tokens": [...]}): sorted keys, no spaces, UTF-8."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from hartonomous.blobs import BlobStore
from hartonomous.events import Event
from hartonomous.events.payloads import AtomIngested, InferencePerformed, Payload
from hartonomous.runtime.publisher import Publisher
from services.inference import domain
from services.inference.decoding import Finished

INPUT_MIME = "application/vnd.hartonomous.generation-input+json"
OUTPUT_MIME = "application/vnd.hartonomous.generation-output+json"


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def input_document(prompt: str | None, messages: list[tuple[str, str]]) -> bytes:
    if prompt is not None:
        return canonical({"prompt": prompt})
    return canonical({"messages": [{"role": r, "content": c} for r, c in messages]})


def output_document(finished: Finished) -> bytes:
    return canonical({"text": finished.text, "tokens": list(finished.tokens)})


async def record(
    blobs: BlobStore,
    publisher: Publisher,
    receipt: InferencePerformed,
    input_bytes: bytes | None,
    output_bytes: bytes,
    info: domain.ModelInfo,
    traceparent: str | None,
) -> Event[InferencePerformed]:
    """Store the atoms (durable before any event names them), then append the receipt, the
    atoms' AtomIngested and the usage in one write. The receipt's event id is its
    generation id."""
    atoms = [(OUTPUT_MIME, output_bytes)]
    if input_bytes is not None:
        atoms.insert(0, (INPUT_MIME, input_bytes))
    for _, data in atoms:
        await blobs.put(_single(data))
    tenant = receipt.tenant_id
    performed = publisher.new(
        receipt, tenant_id=tenant, traceparent=traceparent, event_id=receipt.generation_id
    )
    now = datetime.now(UTC)
    caused: list[Payload] = [
        AtomIngested(
            atom_id=hashlib.sha256(data).hexdigest(),
            tenant_id=tenant,
            modality="binary",
            mime_type=mime,
            size_bytes=len(data),
            blob_key=hashlib.sha256(data).hexdigest(),
            source_uri=f"generation:{receipt.generation_id}",
        )
        for mime, data in atoms
    ]
    for unit, n in (
        ("prompt_tokens", receipt.prompt_tokens),
        ("completion_tokens", receipt.completion_tokens),
    ):
        caused.append(domain.usage_payload(tenant, unit, n, info, now, operation="generate"))
    await publisher.publish(performed, *(publisher.caused(performed, p) for p in caused))
    return performed


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data
