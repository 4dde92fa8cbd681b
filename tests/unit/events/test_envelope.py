from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hartonomous.events import Envelope, EventDecodeError

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_new_starts_a_chain() -> None:
    env = Envelope.new("AtomIngested", "tenant-a", "ingest")
    assert uuid.UUID(env.event_id).version == 7
    assert env.correlation_id == env.event_id
    assert env.causation_id is None
    assert env.traceparent is None
    assert env.occurred_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - env.occurred_at) < timedelta(seconds=5)


def test_new_keeps_a_given_correlation_and_trace() -> None:
    env = Envelope.new(
        "AtomIngested", "t", "ingest", correlation_id="req-1", traceparent=TRACEPARENT
    )
    assert env.correlation_id == "req-1"
    assert env.traceparent == TRACEPARENT


def test_caused_links_child_to_parent() -> None:
    parent = Envelope.new("AtomIngested", "tenant-a", "ingest", traceparent=TRACEPARENT)
    child = parent.caused("EmbeddingComputed", "inference")
    assert child.event_type == "EmbeddingComputed"
    assert child.produced_by == "inference"
    assert child.event_id != parent.event_id
    assert child.event_id > parent.event_id
    assert child.correlation_id == parent.correlation_id == parent.event_id
    assert child.causation_id == parent.event_id
    assert child.traceparent == TRACEPARENT
    assert child.tenant_id == "tenant-a"
    assert parent.caused("UsageRecorded", "billing", tenant_id="tenant-b").tenant_id == "tenant-b"


def test_headers_round_trip() -> None:
    env = Envelope.new("AtomIngested", "tenant-a", "ingest", traceparent=TRACEPARENT).caused(
        "AtomChunked", "ingest"
    )
    headers = env.to_headers()
    assert set(headers) == {
        "event_type",
        "event_id",
        "tenant_id",
        "correlation_id",
        "causation_id",
        "traceparent",
        "produced_by",
        "occurred_at",
    }
    assert all(isinstance(v, str) for v in headers.values())
    assert datetime.fromisoformat(headers["occurred_at"]) == env.occurred_at
    assert Envelope.from_headers(headers) == env


def test_none_values_are_omitted_and_restored() -> None:
    env = Envelope.new("ConfigChanged", "system", "ooda.act")
    headers = env.to_headers()
    assert "causation_id" not in headers
    assert "traceparent" not in headers
    back = Envelope.from_headers({**headers, "dlq.error": "ignored"})
    assert back == env
    assert back.causation_id is None


def test_occurred_at_is_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    env = Envelope(
        "AtomIngested",
        "id",
        "t",
        "c",
        None,
        None,
        "ingest",
        datetime(2024, 5, 1, 12, tzinfo=plus_two),
    )
    assert env.occurred_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert env.occurred_at.utcoffset() == timedelta(0)
    assert env.to_headers()["occurred_at"] == "2024-05-01T10:00:00+00:00"


def test_naive_occurred_at_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Envelope("AtomIngested", "id", "t", "c", None, None, "ingest", datetime(2024, 5, 1))


@pytest.mark.parametrize(
    "name", ["event_type", "event_id", "tenant_id", "correlation_id", "produced_by", "occurred_at"]
)
def test_missing_required_header_raises(name: str) -> None:
    headers = Envelope.new("AtomIngested", "t", "ingest").to_headers()
    del headers[name]
    with pytest.raises(EventDecodeError, match=f"missing envelope headers: {name}"):
        Envelope.from_headers(headers)


def test_all_missing_headers_are_named() -> None:
    with pytest.raises(EventDecodeError) as info:
        Envelope.from_headers({"event_type": "AtomIngested", "tenant_id": ""})
    message = str(info.value)
    for name in ("event_id", "tenant_id", "correlation_id", "produced_by", "occurred_at"):
        assert name in message


@pytest.mark.parametrize("value", ["yesterday", "2024-05-01T10:00:00"])
def test_bad_occurred_at_raises(value: str) -> None:
    headers = {**Envelope.new("AtomIngested", "t", "ingest").to_headers(), "occurred_at": value}
    with pytest.raises(EventDecodeError, match="occurred_at"):
        Envelope.from_headers(headers)
