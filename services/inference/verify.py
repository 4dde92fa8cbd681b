"""Verify: a past generation re-run from its receipt alone (the model version, the input atom,
every sampling parameter and the seed) and its tokens compared with the recorded ones. The
engine's logits do not depend on what else is in the batch and the sampler's generator is
seeded, so a receipt that is intact reproduces token for token; one with a parameter changed
does not."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from hartonomous.blobs import BlobStore
from hartonomous.events.payloads import InferencePerformed
from services.inference.decoding import Finished
from services.inference.domain import RequestError
from services.inference.generation import GenerateRequest, Served, prompt_ids
from services.inference.receipt_store import ReceiptStore
from services.inference.sampling import SamplingParams
from services.inference.slot import Slot


class ReceiptNotFound(RequestError):
    pass


@dataclass(frozen=True)
class Verdict:
    verdict: str  # identical, different, cannot_rerun
    reason: str
    model_version: str
    recorded: tuple[int, ...] = ()
    rerun: tuple[int, ...] = ()

    @property
    def first_difference(self) -> int:
        for i, (a, b) in enumerate(zip(self.recorded, self.rerun, strict=False)):
            if a != b:
                return i
        return (
            -1
            if len(self.recorded) == len(self.rerun)
            else min(map(len, (self.recorded, self.rerun)))
        )


async def verify(
    receipts: ReceiptStore, blobs: BlobStore, slot: Slot[Served], generation_id: str
) -> Verdict:
    receipt = await receipts.get(generation_id)
    if receipt is None:
        raise ReceiptNotFound(f"no generation {generation_id!r}")
    version = receipt.model_version
    if receipt.input_atom_id is None:
        return Verdict("cannot_rerun", "the tenant did not store the input", version)
    served = await slot.get()
    if served.info.version != version:
        reason = f"model version {version} is not the one served ({served.info.version})"
        return Verdict("cannot_rerun", reason, version)
    raw_input = await blobs.get(receipt.input_atom_id)
    if hashlib.sha256(raw_input).hexdigest() != receipt.input_sha256:
        return Verdict("different", "the input atom does not hash to the receipt's", version)
    recorded = tuple(json.loads(await blobs.get(receipt.output_atom_id))["tokens"])
    finished = await _rerun(served, receipt, json.loads(raw_input))
    rerun = finished.tokens
    if receipt.finish_reason == "cancelled":  # the client left: only its prefix was produced
        rerun = rerun[: len(recorded)]
    if rerun == recorded:
        return Verdict("identical", "every token matches", version, recorded, rerun)
    verdict = Verdict("different", "", version, recorded, rerun)
    at = verdict.first_difference
    return Verdict("different", f"the tokens differ from position {at}", version, recorded, rerun)


async def _rerun(served: Served, receipt: InferencePerformed, document: dict[str, Any]) -> Finished:
    messages: list[dict[str, str]] = document.get("messages") or []
    request = GenerateRequest(
        tenant_id=receipt.tenant_id,
        model=receipt.model_id,
        prompt=str(document["prompt"]) if "prompt" in document else None,
        messages=[(m["role"], m["content"]) for m in messages],
        params=SamplingParams(
            temperature=receipt.temperature,
            top_p=receipt.top_p,
            top_k=receipt.top_k,
            seed=receipt.seed,
            max_tokens=receipt.max_tokens,
            stop=tuple(receipt.stop),
        ),
    )
    generation = served.engine.submit(prompt_ids(served, request), request.params)
    async for event in generation.stream():
        if isinstance(event, Finished):
            return event
    raise RuntimeError("a re-run ended without Finished")
