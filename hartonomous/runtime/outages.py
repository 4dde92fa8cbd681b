"""What an outage looks like from inside a service: the log or the database is down."""

from __future__ import annotations

from hartonomous import postgres
from hartonomous.eventlog.port import EventLogError

OUTAGES: tuple[type[Exception], ...] = (EventLogError, *postgres.UNREACHABLE)
"""Errors that mean the log or the database is unreachable now: a request gets UNAVAILABLE
(retry shortly) and a projection waits for the store, never dead-lettering for it."""
