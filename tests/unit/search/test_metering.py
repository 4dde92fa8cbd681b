"""A search's receipt and usage payloads: what is asked is kept as a hash, what came back in
rank order, the usage is one request naming the receipt, and an embedded query's tokens are
billed as inference bills any Embed."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from hartonomous.events import AvroCodec, Envelope, Event
from hartonomous.events.payloads import UsageRecorded, to_avro
from services.search.domain import EmbedUsage, Hit, Mode, SearchQuery
from services.search.metering import embed_usage_payload, receipt_payload, usage_payload

CODEC = AvroCodec()
VERSION = "f" * 64


def hit(atom: str, score: float, index: int) -> Hit:
    payload = {
        "atom_id": atom * 64,
        "document_id": "d" * 64,
        "chunk_index": index,
        "model_version": VERSION,
        "snippet": "not part of the receipt",
    }
    return Hit(f"point-{atom}", score, payload)


def test_the_receipt_keeps_a_hash_of_the_query_and_the_results_in_order() -> None:
    query = SearchQuery("acme", "Grüße an Jörg", 5, Mode.HYBRID, "text", {"team": "a"})
    receipt = receipt_payload(query, [hit("a", 0.9, 2), hit("b", 0.5, 0)], "key-1")
    assert receipt.query_sha256 == hashlib.sha256("Grüße an Jörg".encode()).hexdigest()
    assert receipt.query_bytes == len("Grüße an Jörg".encode()) == 16
    assert "Grüße an Jörg" not in repr(receipt)
    assert (receipt.mode, receipt.k, receipt.modality) == ("hybrid", 5, "text")
    assert receipt.metadata_filter == {"team": "a"}
    assert receipt.model_version == VERSION
    assert [(r.atom_id[0], r.score, r.chunk_index) for r in receipt.results] == [
        ("a", 0.9, 2),
        ("b", 0.5, 0),
    ]
    CODEC.encode("SearchPerformed", to_avro(receipt))  # fits its schema


def test_a_sparse_or_empty_search_names_no_model() -> None:
    sparse = SearchQuery("acme", "avro", 10, Mode.SPARSE)
    assert receipt_payload(sparse, [hit("a", 3.2, 0)], None).model_version is None
    dense = SearchQuery("acme", "avro", 10, Mode.DENSE)
    empty = receipt_payload(dense, [], None)
    assert (empty.model_version, empty.results, empty.modality) == (None, [], None)


def test_the_usage_is_one_request_naming_the_receipt() -> None:
    query = SearchQuery("acme", "avro", 10, Mode.SPARSE)
    searched = Event(
        Envelope.new("SearchPerformed", "acme", "search"), receipt_payload(query, [], "key-1")
    )
    usage = usage_payload(searched)
    assert usage == UsageRecorded(
        tenant_id="acme",
        operation="search",
        unit="requests",
        quantity=Decimal(1),
        resource_id=searched.envelope.event_id,
        used_at=searched.envelope.occurred_at,
        api_key_id="key-1",
        dimensions={"mode": "sparse"},
    )
    CODEC.encode("UsageRecorded", to_avro(usage))


def test_the_query_tokens_are_billed_against_the_model_version_and_device() -> None:
    query = SearchQuery("acme", "avro", 10, Mode.DENSE)
    searched = Event(
        Envelope.new("SearchPerformed", "acme", "search"), receipt_payload(query, [], "key-1")
    )
    usage = embed_usage_payload(searched, EmbedUsage(7, VERSION, "cpu"))
    assert usage == UsageRecorded(
        tenant_id="acme",
        operation="embed",
        unit="tokens",
        quantity=Decimal(7),
        resource_id=VERSION,
        used_at=searched.envelope.occurred_at,
        api_key_id="key-1",
        dimensions={"device": "cpu"},
    )
    CODEC.encode("UsageRecorded", to_avro(usage))
