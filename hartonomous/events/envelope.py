"""The event envelope: the metadata every event carries in its Kafka headers (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from hartonomous.events.errors import EventDecodeError
from hartonomous.events.ids import new_event_id

_REQUIRED = ("event_type", "event_id", "tenant_id", "correlation_id", "produced_by", "occurred_at")


@dataclass(frozen=True)
class Envelope:
    event_type: str
    event_id: str
    tenant_id: str
    correlation_id: str
    causation_id: str | None
    traceparent: str | None
    produced_by: str
    occurred_at: datetime

    def __post_init__(self) -> None:
        if self.occurred_at.utcoffset() is None:
            raise ValueError(f"occurred_at must be timezone-aware, got {self.occurred_at!r}")
        # Normalise to UTC so equal instants compare and serialise identically.
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))

    @classmethod
    def new(
        cls,
        event_type: str,
        tenant_id: str,
        produced_by: str,
        correlation_id: str | None = None,
        traceparent: str | None = None,
    ) -> Envelope:
        """The envelope of an event that starts a chain (its own correlation id by default)."""
        event_id = new_event_id()
        return cls(
            event_type=event_type,
            event_id=event_id,
            tenant_id=tenant_id,
            correlation_id=correlation_id or event_id,
            causation_id=None,
            traceparent=traceparent,
            produced_by=produced_by,
            occurred_at=datetime.now(UTC),
        )

    def caused(self, event_type: str, produced_by: str, tenant_id: str | None = None) -> Envelope:
        """The envelope of an event this one caused: same correlation and trace, caused by us."""
        return Envelope(
            event_type=event_type,
            event_id=new_event_id(),
            tenant_id=self.tenant_id if tenant_id is None else tenant_id,
            correlation_id=self.correlation_id,
            causation_id=self.event_id,
            traceparent=self.traceparent,
            produced_by=produced_by,
            occurred_at=datetime.now(UTC),
        )

    def to_headers(self) -> dict[str, str]:
        headers = {
            "event_type": self.event_type,
            "event_id": self.event_id,
            "tenant_id": self.tenant_id,
            "correlation_id": self.correlation_id,
            "produced_by": self.produced_by,
            "occurred_at": self.occurred_at.isoformat(),
        }
        if self.causation_id is not None:
            headers["causation_id"] = self.causation_id
        if self.traceparent is not None:
            headers["traceparent"] = self.traceparent
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Envelope:
        """Read an envelope back; other headers (e.g. dead-letter error details) are ignored."""
        missing = [name for name in _REQUIRED if not headers.get(name)]
        if missing:
            raise EventDecodeError(f"missing envelope headers: {', '.join(missing)}")
        raw_time = headers["occurred_at"]
        try:
            occurred_at = datetime.fromisoformat(raw_time)
        except ValueError as exc:
            raise EventDecodeError(f"occurred_at header is not ISO 8601: {raw_time!r}") from exc
        if occurred_at.utcoffset() is None:
            raise EventDecodeError(f"occurred_at header has no UTC offset: {raw_time!r}")
        return cls(
            event_type=headers["event_type"],
            event_id=headers["event_id"],
            tenant_id=headers["tenant_id"],
            correlation_id=headers["correlation_id"],
            causation_id=headers.get("causation_id") or None,
            traceparent=headers.get("traceparent") or None,
            produced_by=headers["produced_by"],
            occurred_at=occurred_at,
        )
