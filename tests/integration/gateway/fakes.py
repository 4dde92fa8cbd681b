"""Scriptable stand-ins for the services behind the gateway, served over real gRPC: each
records what it received (requests and metadata) and answers as a test tells it to."""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health

from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


@dataclass
class Script:
    """Per method: a status to fail with, or seconds to wait first; and what was received."""

    failures: dict[str, tuple[grpc.StatusCode, str]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    requests: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    metadata: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    quota: billing_pb2.QuotaDecision = field(
        default_factory=lambda: billing_pb2.QuotaDecision(allowed=True)
    )

    def reset(self) -> None:
        self.failures.clear()
        self.delays.clear()
        self.requests.clear()
        self.metadata.clear()
        self.quota = billing_pb2.QuotaDecision(allowed=True)

    async def enter(self, method: str, request: Any, context: Context) -> None:
        self.requests[method].append(request)
        self.metadata[method].append({k: str(v) for k, v in (context.invocation_metadata() or ())})
        if method in self.delays:
            await asyncio.sleep(self.delays[method])
        if method in self.failures:
            await context.abort(*self.failures[method])


@dataclass
class Upload:
    """One IngestAtom call as the fake ingest saw it."""

    header: ingest_pb2.IngestHeader
    sizes: list[int] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    first_data: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: str = "streaming"  # then stored, rejected (a second header) or cancelled


class FakeIngest(ingest_pb2_grpc.IngestServicer):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.uploads: list[Upload] = []
        self.atoms: dict[tuple[str, str], tuple[bytes, str, str]] = {}  # -> data, mime, meta

    async def IngestAtom(
        self, requests: AsyncIterator[ingest_pb2.IngestRequest], context: Context
    ) -> ingest_pb2.IngestReply:
        first = await anext(requests)
        await self.script.enter("IngestAtom", first, context)
        upload = Upload(first.header)
        self.uploads.append(upload)
        try:
            async for message in requests:
                if message.WhichOneof("part") == "header":  # as ingest.proto says: refused
                    upload.outcome = "rejected"
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a second header")
                upload.sizes.append(len(message.data))
                upload.data.extend(message.data)
                upload.first_data.set()
        except asyncio.CancelledError:
            upload.outcome = "cancelled"
            raise
        upload.outcome = "stored"
        data = bytes(upload.data)
        atom_id = hashlib.sha256(data).hexdigest()
        mime = upload.header.mime_type or "text/plain"
        self.atoms[(upload.header.tenant_id, atom_id)] = (
            data,
            mime,
            upload.header.metadata_json or "{}",
        )
        return ingest_pb2.IngestReply(
            atom_id=atom_id,
            modality=upload.header.modality or "text",
            mime_type=mime,
            size_bytes=len(data),
            chunk_count=1,
            request_id="req-1",
        )

    async def GetAtom(
        self, request: ingest_pb2.GetAtomRequest, context: Context
    ) -> ingest_pb2.Atom:
        await self.script.enter("GetAtom", request, context)
        if (request.tenant_id, request.atom_id) not in self.atoms:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such atom")
        data, mime, meta = self.atoms[(request.tenant_id, request.atom_id)]
        return ingest_pb2.Atom(
            atom_id=request.atom_id,
            modality="text",
            mime_type=mime,
            size_bytes=len(data),
            metadata_json=meta,
        )

    async def ReadAtom(
        self, request: ingest_pb2.ReadAtomRequest, context: Context
    ) -> AsyncIterator[ingest_pb2.AtomData]:
        await self.script.enter("ReadAtom", request, context)
        data = self.atoms[(request.tenant_id, request.atom_id)][0]
        half = len(data) // 2
        for part in (data[:half], data[half:]):
            yield ingest_pb2.AtomData(data=part)


class FakeInference(inference_pb2_grpc.InferenceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def Embed(
        self, request: inference_pb2.EmbedRequest, context: Context
    ) -> inference_pb2.EmbedResponse:
        await self.script.enter("Embed", request, context)
        embeddings = [
            inference_pb2.Embedding(vector=[0.5, -0.25, 0.125], tokens=len(t.split()) + 2, index=i)
            for i, t in enumerate(request.texts)
        ]
        return inference_pb2.EmbedResponse(
            embeddings=embeddings,
            model_id=request.model or "sentence-transformers/all-MiniLM-L6-v2",
            total_tokens=sum(e.tokens for e in embeddings),
        )


class FakeSearch(search_pb2_grpc.SearchServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def Search(
        self, request: search_pb2.SearchRequest, context: Context
    ) -> search_pb2.SearchReply:
        await self.script.enter("Search", request, context)
        hit = search_pb2.SearchResult(
            atom_id="a" * 64, document_id="b" * 64, score=0.5, snippet=request.query
        )
        return search_pb2.SearchReply(results=[hit])


class FakeBilling(billing_pb2_grpc.BillingServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def CheckQuota(
        self, request: billing_pb2.QuotaCheckRequest, context: Context
    ) -> billing_pb2.QuotaDecision:
        await self.script.enter("CheckQuota", request, context)
        return self.script.quota

    async def GetUsage(
        self, request: billing_pb2.UsageRequest, context: Context
    ) -> billing_pb2.UsageReply:
        await self.script.enter("GetUsage", request, context)
        line = billing_pb2.UsageLine(
            operation="embed", unit="tokens", quantity="12", cost="0.0012", events=3
        )
        return billing_pb2.UsageReply(
            tenant_id=request.tenant_id, currency="USD", lines=[line], total_cost="0.0012"
        )

    async def PutQuota(
        self, request: billing_pb2.PutQuotaRequest, context: Context
    ) -> billing_pb2.Quota:
        await self.script.enter("PutQuota", request, context)
        return billing_pb2.Quota(
            tenant_id=request.tenant_id,
            operation=request.operation,
            limit=request.limit,
            unit=request.unit,
            period=request.period,
            soft_limit_ratio=request.soft_limit_ratio,
            plan=request.plan,
        )

    async def PutRates(
        self, request: billing_pb2.PutRatesRequest, context: Context
    ) -> billing_pb2.RateCard:
        await self.script.enter("PutRates", request, context)
        return billing_pb2.RateCard(
            version=7,
            effective_from=request.effective_from,
            currency=request.currency,
            rates=request.rates,
            multipliers=request.multipliers,
        )


@dataclass
class Peers:
    script: Script
    ingest: FakeIngest
    registrations: list[GrpcRegistration]
    health: health.aio.HealthServicer | None = None  # the harness's, once it serves them


SERVICES = {
    "ingest": "hartonomous.v1.Ingest",
    "inference": "hartonomous.v1.Inference",
    "search": "hartonomous.v1.Search",
    "billing": "hartonomous.v1.Billing",
    # Readiness only: the provenance routes are exercised end to end (tests/e2e/gateway).
    "provenance": "hartonomous.v1.Provenance",
}


def fake_peers() -> Peers:
    """The stand-ins, as registrations for the harness's gRPC server."""
    script = Script()
    ingest = FakeIngest(script)
    # The generated registration functions have no type stubs.
    registrations = [
        GrpcRegistration(ingest, ingest_pb2_grpc.add_IngestServicer_to_server, SERVICES["ingest"]),
        GrpcRegistration(
            FakeInference(script),
            inference_pb2_grpc.add_InferenceServicer_to_server,
            SERVICES["inference"],
        ),
        GrpcRegistration(
            FakeSearch(script), search_pb2_grpc.add_SearchServicer_to_server, SERVICES["search"]
        ),
        GrpcRegistration(
            FakeBilling(script), billing_pb2_grpc.add_BillingServicer_to_server, SERVICES["billing"]
        ),
    ]
    return Peers(script, ingest, registrations)
