from __future__ import annotations

import time
import uuid

from hartonomous.events import derived_event_id, named_event_id, new_event_id
from hartonomous.events.ids import UuidV7Generator


def _unix_ms(event_id: str) -> int:
    return uuid.UUID(event_id).int >> 80


def test_version_variant_and_canonical_form() -> None:
    event_id = new_event_id()
    parsed = uuid.UUID(event_id)
    assert str(parsed) == event_id  # canonical lowercase 8-4-4-4-12
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert event_id[14] == "7"
    assert event_id[19] in "89ab"


def test_timestamp_is_unix_milliseconds_now() -> None:
    before = time.time_ns() // 1_000_000
    event_id = new_event_id()
    after = time.time_ns() // 1_000_000
    assert before <= _unix_ms(event_id) <= after


def test_ids_are_unique_and_strictly_increasing() -> None:
    ids = [new_event_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # canonical strings sort like the 128-bit values


def test_monotonic_within_one_millisecond() -> None:
    generate = UuidV7Generator(clock_ns=lambda: 1_700_000_000_123_456_789)
    ids = [generate() for _ in range(1_000)]
    assert {_unix_ms(i) for i in ids} == {1_700_000_000_123}
    assert [uuid.UUID(i).int for i in ids] == sorted({uuid.UUID(i).int for i in ids})


def test_clock_stepping_back_keeps_order() -> None:
    times = iter([5_000_000_000, 4_000_000_000, 3_000_000_000, 6_000_000_000])
    generate = UuidV7Generator(clock_ns=lambda: next(times))
    ids = [generate() for _ in range(4)]
    assert ids == sorted(ids)
    assert [_unix_ms(i) for i in ids] == [5_000, 5_000, 5_000, 6_000]


def test_random_bits_differ_between_generators() -> None:
    fixed = 1_700_000_000_000_000_000
    first, second = UuidV7Generator(lambda: fixed)(), UuidV7Generator(lambda: fixed)()
    assert first[:13] == second[:13]  # same 48-bit time prefix
    assert first != second


def test_derived_ids_never_change_across_versions() -> None:
    # A cause re-delivered after an upgrade must yield the ids it yielded before (billed once).
    cause = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"
    assert derived_event_id(cause, "UsageRecorded/acme") == "0190a1b2-c3d4-7fbb-b243-5ea546f29650"
    assert derived_event_id("not-a-uuid", "x") == "00000000-0000-79f8-9645-72a75c3676e8"


def test_named_ids_are_uuid7_at_the_given_time_and_differ_by_name() -> None:
    first = named_event_id(1_700_000_000_123, "acme/2026-01-01T00")
    assert first == named_event_id(1_700_000_000_123, "acme/2026-01-01T00")
    assert first != named_event_id(1_700_000_000_123, "acme/2026-01-01T01")
    parsed = uuid.UUID(first)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert _unix_ms(first) == 1_700_000_000_123
