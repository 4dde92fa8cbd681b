"""observe: telemetry windows → observations. Every number of every window feeds a change
detector (how much history it wants before judging: `ooda.min_baseline_samples`); a detected change becomes an ObservationMade with its evidence (baseline, current,
effect, sample counts, the windows it rests on).

A change found in windows older than STALE_S by the clock is history, not news: it is not
published. That happens when observe falls behind, and when a rebuild replays the recent past
from a horizon rather than from the start (the detector may then see a change the first run
did not, from a shorter baseline)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from hartonomous.events.ids import derived_event_id
from hartonomous.events.payloads import ConfigChanged, ObservationMade, Payload, TelemetryRecorded
from services.ooda import tunables as settings
from services.ooda.domain.detect import Detector, Tuning
from services.ooda.domain.metrics import samples_of
from services.ooda.domain.stage import Out, Stage

STALE_S = 300.0


class Observe(Stage):
    produces = (ObservationMade,)

    def __init__(self, tuning: Tuning | None = None) -> None:
        super().__init__()
        self.detector = Detector(tuning)
        self._oldest_news: datetime | None = None  # the clock, less STALE_S

    def due(self, now: datetime) -> list[Out]:
        self._oldest_news = now - timedelta(seconds=STALE_S)
        return []

    def on(self, payload: Payload, event_id: str, at: datetime) -> list[Out]:
        if isinstance(payload, ConfigChanged) and payload.key == settings.MIN_BASELINE_SAMPLES:
            tuning = self.detector.tuning
            self.detector.tuning = replace(tuning, min_baseline=int(payload.new_value))
        if not isinstance(payload, TelemetryRecorded):
            return []
        found = []
        for sample in samples_of(payload, event_id):
            change = self.detector.feed(sample)
            if change is None or (self._oldest_news and change.detected_at < self._oldest_news):
                continue
            observation_id = derived_event_id(event_id, f"observation:{change.metric}")
            observation = ObservationMade(
                observation_id=observation_id,
                service=payload.service,
                metric=str(change.metric),
                metric_name=change.metric.name,
                labels=dict(change.metric.labels),
                direction=change.direction,
                baseline=change.baseline,
                current=change.current,
                effect=change.effect,
                baseline_samples=change.baseline_samples,
                recent_samples=change.recent_samples,
                windows=list(change.sources),
                since=change.since,
                observed_at=change.detected_at,
            )
            found.append(Out(observation, observation_id, observation_id))
        return found
